"""One streaming reader of a store's rows: consecutive readable rows, block by block.

Every whole-store pass (verify, the dataset card, the content digest, convert) goes through
:func:`row_blocks`, so its memory is one block (a checksum chunk, capped at
:data:`BLOCK_BYTES` of decoded rows), not the store: no ``readable()`` tensor of every
position, no whole decoded column. Blocks come in write order (oldest first), each a
contiguous range of positions (a ring's wrap and a sharded store's shard boundary start a
new block).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tensordict import TensorDict

from rldata.stores.format import schema as sch

BLOCK_BYTES = 8 << 20
"""Decoded bytes one block holds at most (a row larger than this is a block of its own)."""
BLOCK_ROWS = 1 << 16
"""Rows in a block when the store has no checksum chunk size."""


@dataclass(frozen=True)
class Block:
    """``rows`` are the readable rows ``[offset, offset + n)`` in write order, held at the
    store's positions ``[position, position + n)``."""

    offset: int
    position: int
    rows: TensorDict

    @property
    def n(self) -> int:
        return int(self.rows.batch_size[0])


def block_rows(store: Any, rows: int | None = None) -> int:
    """Rows per block: ``rows``, else the store's checksum chunk size (else
    :data:`BLOCK_ROWS`), never more than :data:`BLOCK_BYTES` of decoded rows."""
    if rows is None:
        chunk = getattr(store, "chunk_rows", None)
        rows = int(chunk) if isinstance(chunk, int) and chunk > 0 else BLOCK_ROWS
    width = sum(sch.row_bytes(e) for e in (store.schema or {}).values())
    return max(1, min(int(rows), BLOCK_BYTES // max(1, width)))


def serial_ranges(a: int, b: int, capacity: int | None) -> list[tuple[int, int]]:
    """Serials ``[a, b)`` as position ranges that do not wrap (a ring of ``capacity``)."""
    if a >= b:
        return []
    if capacity is None:
        return [(a, b)]
    if b - a >= capacity:
        a = b - capacity
    p, q = a % capacity, (b - 1) % capacity + 1
    return [(p, q)] if p < q else [(p, capacity), (0, q)]


def _is_row_table(store: Any) -> bool:
    """A store built on :class:`~rldata.stores.backend.rows.RowTable` (known by its serials,
    not by an import: the row table itself streams through this module)."""
    return hasattr(store, "_visible_end") and hasattr(store, "_read_range")


def runs(store: Any) -> list[tuple[int, int]]:
    """A row store's readable positions as contiguous ``[a, b)`` ranges, oldest first (by
    arithmetic on serials: no tensor of every position)."""
    return serial_ranges(store._start, store._visible_end(), store.capacity)


def row_blocks(store: Any, rows: int | None = None) -> Iterator[Block]:
    """Every readable row of ``store``, oldest first, at most ``rows`` (see :func:`block_rows`)
    a block. A sharded store yields its shards' blocks in shard order, with offsets and
    positions of the sharded view."""
    own = getattr(store, "row_blocks", None)  # a store of stores (sharded) yields its own
    if own is not None:
        yield from own(rows)
        return
    if store.schema is None or not len(store):
        return
    step = block_rows(store, rows)
    if _is_row_table(store):
        offset = 0
        for a, b in runs(store):
            for lo in range(a, b, step):
                hi = min(b, lo + step)
                yield Block(offset, lo, store._read_range(lo, hi))
                offset += hi - lo
        return
    pos = store.readable()  # no other kind ships with rldata: a store a plugin defines
    for lo in range(0, pos.numel(), step):
        yield Block(lo, int(pos[lo]), store.get(pos[lo : lo + step]))
