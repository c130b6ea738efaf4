"""A byte progress bar (bytes done, total, rate) for long transfers, or nothing when quiet.

It follows the one convention of :mod:`rldata._progress`: stderr, a bar on a terminal,
plain lines otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rldata._progress import Bar


@contextmanager
def byte_bar(label: str, total: int, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(nbytes)``: it moves a bar on stderr, or does nothing when disabled."""
    if not enabled:
        yield lambda nbytes: None
        return
    with Bar(label, total=total, unit="bytes") as bar:
        bar.update(0)
        yield bar.advance
