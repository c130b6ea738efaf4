"""Test helpers shipped with rldata: TED factories and the store contract suite.

``rldata.testing.ted_factory`` builds valid TED batches; ``rldata.testing.store_contract``
holds the tests every store backend subclasses (it imports pytest, so import it only from tests).
"""

from __future__ import annotations

from rldata.testing.ted_factory import (
    marked_serial,
    ted_batch,
    ted_episode,
    ted_marked,
    ted_rollout,
    ted_transitions,
)

__all__ = [
    "marked_serial",
    "ted_batch",
    "ted_episode",
    "ted_marked",
    "ted_rollout",
    "ted_transitions",
]
