"""The order of a verify scan's reads: which checksum chunks each visit reads, and the rows
of each key one visit covers (the hull of its hash jobs and its readable piece)."""

from __future__ import annotations

from rldata.stores.backend.base import Store
from rldata.stores.backend.blocks import runs

Job = tuple[str, int, int, int]
"""``(key, chunk, a, b)``: hash rows ``[a, b)`` of ``key``, checksum chunk ``chunk``."""
Piece = tuple[int, int, int]
"""``(lo, hi, offset)``: readable positions ``[lo, hi)`` of one chunk, the ``offset``-th
readable row first."""


def visits(
    store: Store, rows: int, duties: dict[int, list[int]], rows_too: bool
) -> list[tuple[int, Piece | None]]:
    """The chunks to read, in write order: each readable piece of a chunk (hashing the
    chunk on its first visit), then the chunks that are only hashed (rows not readable)."""
    out: list[tuple[int, Piece | None]] = []
    seen: set[int] = set()
    offset = 0
    if rows_too and len(store):
        for a, b in runs(store):
            p = a
            while p < b:
                c = p // rows
                q = min(b, (c + 1) * rows)
                out.append((c, (p, q, offset)))
                seen.add(c)
                offset, p = offset + q - p, q
    out.extend((c, None) for c in sorted(duties) if c not in seen)
    return out


def spans_of(
    jobs: list[Job], mine: list[int], piece: Piece | None, names: list[str]
) -> dict[str, tuple[int, int]]:
    """Rows to read of each key for one visit: the hull of its hash jobs and the piece."""
    spans: dict[str, tuple[int, int]] = {}

    def add(name: str, a: int, b: int) -> None:
        lo, hi = spans.get(name, (a, b))
        spans[name] = (min(lo, a), max(hi, b))

    for i in mine:
        name, _, a, b = jobs[i]
        add(name, a, b)
    if piece is not None:
        for name in names:
            add(name, piece[0], piece[1])
    return spans
