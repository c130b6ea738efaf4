"""Old name of :mod:`rldata.collectors.policy_checkpoint` (the policy checkpoint format).

Kept so that code importing ``rldata.collectors.policies`` keeps working; import from
``policy_checkpoint`` in new code.
"""

from __future__ import annotations

from rldata.collectors.policy_checkpoint import (
    FORMAT,
    RUN_POLICY,
    VERSION,
    _unbatched,
    check_policy_matches,
    load_policy,
    mlp_policy,
    save_policy,
)

__all__ = [
    "FORMAT",
    "RUN_POLICY",
    "VERSION",
    "_unbatched",
    "check_policy_matches",
    "load_policy",
    "mlp_policy",
    "save_policy",
]
