"""Random rows of a parquet part read in place: no decode for columns stored PLAIN.

New parts of a store whose keys are all 4/8-byte numbers or booleans are written with
their full columns uncompressed and PLAIN-encoded, one data page per column chunk
(:func:`plain_columns`): a row's value then lies at a fixed byte offset inside its row
group's page, so a sample reads ``256 x columns`` small byte ranges through a mapping of
the (already hashed) part file, gathered with numpy, instead of decoding 256 row groups
with pyarrow (~1.4 ms each). A ``next`` column stored once stays compressed (it is almost
all nulls): the first time a row group is read, its explicit rows and their values are
read from that group's page (``_parquet_page``; pyarrow where the page is not the layout
it reads) and merged into one sorted array per part (~0.1% of the rows), the others taken
from the observation one row on. Nothing is read for row groups a batch does not touch,
so a store's first batch costs the same at any size.

The layout is checked chunk by chunk the first time a row group is read: the footer's
compression, the chunk's bounds inside the file, and the page header (a Thrift compact
struct parsed here, at most ``HEADER_BYTES``): one data page, PLAIN, not compressed, as
many values as rows x width, ending where the chunk ends. A part that does not match
(written before, or by another writer) is read by row-group decodes instead. A store with
block digests skips the header (``footer_only``: one random read a chunk, most of a cold
first batch): its rows are hashed before they are served, and blocks that fail are read
again with every header checked (:meth:`PlainPart.check_headers`).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from rldata.stores.backend import _columns as col
from rldata.stores.backend._parquet_codec import PLAIN_KINDS
from rldata.stores.backend._parquet_page import HEADER_BYTES, Thrift, explicit_rows


def plain_columns(fields: dict, once: list[str]) -> list[str] | None:
    """The columns a new part stores uncompressed and PLAIN (every key but the ``next``
    columns stored once), or None when a key's dtype has no such layout (uint8 pixels are
    INT32 values in parquet: 4x the bytes; those parts stay compressed)."""
    skip = {f"next.{k}" for k in once}
    names = [k for k in fields if k not in skip]
    if any(fields[k]["dtype"] not in PLAIN_KINDS for k in names):
        return None
    return names


def value_start(
    read: Callable[[int, int], bytes],
    chunk: pq.ColumnChunkMetaData,
    rows: int,
    width: int,
    size: int,
    dtype: str,
    header: bool = True,
) -> int | None:
    """Where a PLAIN column chunk's values begin in the file (None: not that layout).

    ``header=False``: from the footer alone, without reading the page header (one random
    read a chunk, most of a cold first batch): for parts whose rows are checked against
    block digests, where values at a wrong offset are refused, then read again with it."""
    if chunk.compression != "UNCOMPRESSED" or chunk.dictionary_page_offset is not None:
        return None
    first, total = chunk.data_page_offset, chunk.total_compressed_size
    end = first + total
    nbytes = -(-rows * width // 8) if dtype == "bool" else rows * width * _itemsize(dtype)
    if first < 4 or total <= nbytes or end > size:
        return None
    if not header:
        return end - nbytes if chunk.num_values == rows * width else None
    try:
        t = Thrift(read(first, min(HEADER_BYTES, total)))
        head = t.struct()
        page, body = head.get(5), head.get(3)
        ok = (
            head.get(1) == 0  # DATA_PAGE
            and isinstance(page, dict)
            and isinstance(body, int)
            and head.get(2) == body  # not compressed
            and t.pos + body == total  # one page fills the chunk
            and page.get(1) == rows * width  # no nulls: one value a leaf slot
            and page.get(2) == 0  # PLAIN
        )
    except (IndexError, OSError):
        return None
    return end - nbytes if ok else None


def _levels(meta: pq.FileMetaData, leaf: int) -> tuple[int, int]:
    column = meta.schema.column(leaf)
    return column.max_definition_level, column.max_repetition_level


def _itemsize(dtype: str) -> int:
    d = col.np_dtype(dtype)
    return d.itemsize // 2 if d.kind == "c" else d.itemsize  # complex: float pairs


class PlainPart:
    """One part's PLAIN columns, read in place: value offsets found per row group on first
    use; ``next`` columns stored once rebuilt from their explicit rows, read in one
    streaming pass over that column on first use (it is almost all nulls)."""

    def __init__(
        self,
        path: Path,
        meta: pq.FileMetaData,
        fields: dict,
        once: list[str],
        next_group: Callable[[str, int], tuple[np.ndarray, np.ndarray]],
        footer_only: bool = False,
    ) -> None:
        self.fields, self.once = fields, once
        # value offsets from the footer alone (rows checked against block digests)
        self.footer_only = footer_only
        self._next_group = next_group  # (key, group) -> pyarrow's (explicit rows, values)
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        names = [meta.schema.column(i).path.split(".list.")[0] for i in range(meta.num_columns)]
        leaf = {n: i for i, n in enumerate(names)}
        self.direct = plain_columns(fields, once) or []
        # per direct column: (leaf index, values a row, bytes a value, dtype name)
        self.cols = [
            (
                leaf[k],
                self._width(k),
                _itemsize(fields[k]["dtype"]),
                fields[k]["dtype"],
                col.np_dtype(fields[k]["dtype"]),
                tuple(fields[k]["shape"]),
            )
            for k in self.direct
        ]
        self._views: dict[int, np.ndarray] = {}
        self._flags = [c for c, e in enumerate(self.cols) if e[3] == "bool" and e[1] == 1]
        self.meta = meta
        sizes = np.array([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # a footer whose groups do not add up to its rows is left to the checked decode
        self.valid = bool((sizes >= 0).all()) and int(self.starts[-1]) == meta.num_rows
        self.offsets = np.full((len(sizes), len(self.direct)), -1, dtype=np.int64)
        self.ok = np.zeros(len(sizes), dtype=bool)
        # per key stored once: its next column's leaf, (max definition, max repetition) level
        self.next_leaf = {k: (leaf[f"next.{k}"], *_levels(meta, leaf[f"next.{k}"])) for k in once}
        # explicit rows (part rows, sorted) of the groups learnt, and their values
        self.next_rows = {k: np.zeros(0, np.int64) for k in once}
        self.next_vals = {k: col.empty({k: fields[k]}, 0)[k] for k in once}
        self.page_reads = 0  # row groups whose explicit rows came from the page (tests)
        self._map: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None

    def __del__(self) -> None:
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def _width(self, name: str) -> int:
        e = self.fields[name]
        d = col.np_dtype(e["dtype"])
        return int(np.prod(e["shape"], dtype=np.int64)) * (2 if d.kind == "c" else 1)

    def _learn_next(self, groups: list[int], read: Callable[[int, int], bytes]) -> bool:
        """The explicit rows of each ``next`` column stored once in ``groups``, merged into
        ``next_rows``; False unless each group's last row is one (a group must read alone)
        and its rows and values agree (then the part is decoded by row group instead)."""
        for k in self.once:
            leaf, max_def, max_rep = self.next_leaf[k]
            dtype, shape = col.np_dtype(self.fields[k]["dtype"]), self.fields[k]["shape"]
            found, vals = [self.next_rows[k]], [self.next_vals[k]]
            for g in groups:
                chunk = self.meta.row_group(g).column(leaf)
                n = int(self.starts[g + 1] - self.starts[g])
                width = self._width(k)
                got = explicit_rows(read, chunk, (max_def, max_rep), n, width, dtype, self.size)
                if got is None:
                    rows, values = self._next_group(k, g)
                else:
                    self.page_reads += 1
                    rows, values = got[0], got[1].view(dtype)
                ok = (
                    len(rows) == len(values)
                    and len(rows) > 0
                    and rows[-1] == n - 1
                    and bool((np.diff(rows) > 0).all())
                    and rows[0] >= 0
                )
                if not ok:
                    return False
                found.append(rows + self.starts[g])
                vals.append(values.reshape(len(rows), *shape))
            merged = np.concatenate(found)
            order = np.argsort(merged, kind="stable")
            self.next_rows[k] = merged[order]
            self.next_vals[k] = np.concatenate(vals)[order]
        return True

    def learn(self, groups: np.ndarray) -> bool:
        """Find the value offsets of row groups not yet read; False if one is not PLAIN."""
        if not self.valid:
            return False
        self._mapped()
        m = self._map
        assert m is not None

        def read(at: int, n: int) -> bytes:
            return m[at : at + n]  # through the mapping: no system call a chunk

        new = groups[~self.ok[groups]].tolist()
        self._prefetch(new)
        for g in new:
            rg = self.meta.row_group(g)
            rows = rg.num_rows
            for c, (leaf, width, _, dtype, _, _) in enumerate(self.cols):
                chunk = rg.column(leaf)
                start = value_start(
                    read, chunk, rows, width, self.size, dtype, not self.footer_only
                )
                if start is None:
                    return False
                self.offsets[g, c] = start
        if new and not self._learn_next(new, read):
            return False
        self.ok[new] = True
        return True

    def _prefetch(self, groups: list[int]) -> None:
        """Ask for the small chunks of ``groups`` a first read needs whole (the ``next``
        pages, the one-bit flags) in one go, so their reads overlap instead of queueing."""
        assert self._map is not None
        leaves = [v[0] for v in self.next_leaf.values()] + [self.cols[c][0] for c in self._flags]
        for g in groups:
            rg = self.meta.row_group(g)
            for leaf in leaves:
                chunk = rg.column(leaf)
                at, n = chunk.data_page_offset, chunk.total_compressed_size
                if at >= 0 and n > 0 and at + n <= self.size:
                    page = at & ~(mmap.PAGESIZE - 1)
                    self._map.madvise(mmap.MADV_WILLNEED, page, at + n - page)

    def check_headers(self) -> bool:
        """Read value offsets from the page headers from now on (rows at the footer's
        offsets failed their digests); False if they were read so already."""
        if not self.footer_only:
            return False
        self.footer_only = False
        self.ok[:] = False
        self.offsets[:] = -1
        return True

    def _mapped(self) -> np.ndarray:
        if self._bytes is None:
            self._map = mmap.mmap(self.fd, self.size, prot=mmap.PROT_READ)
            # a fault reads its page, not the device's read-ahead around it (8 MiB on some
            # disks: a cold first batch read most of the store); blocks ask for theirs
            self._map.madvise(mmap.MADV_RANDOM)
            self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        return self._bytes

    def _items(self, c: int) -> np.ndarray:
        """Direct column ``c``'s rows as opaque items starting at every byte of the file
        (an overlapping view, no copy): ``items[offsets]`` copies whole rows with one index
        a row, as memmap's gather does (``take`` would first copy the view contiguous)."""
        got = self._views.get(c)
        if got is None:
            data = self._mapped()
            row = self.cols[c][1] * self.cols[c][2]
            got = np.ndarray((self.size - row + 1,), np.dtype((np.void, row)), data, 0, (1,))
            self._views[c] = got
        return got

    def release(self) -> None:
        """Drop the mapping's pages from this process (they stay in the page cache)."""
        if self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)

    def span_bytes(self, name: str, lo: int, hi: int) -> memoryview | None:
        """Part rows ``[lo, hi)`` of direct column ``name`` as the bytes in the page (no
        copy), when they lie in one learnt row group and are stored one value a byte-aligned
        slot (None: a bit-packed boolean, a ``next`` column stored once, or rows across
        groups, which the caller reads by gather instead). Block digests hash them in place."""
        if name not in self.direct or hi <= lo:
            return None
        c = self.direct.index(name)
        g = int(np.searchsorted(self.starts, lo, side="right")) - 1
        if self.cols[c][3] == "bool" or hi > self.starts[g + 1] or not self.learn(np.array([g])):
            return None
        row = self.cols[c][1] * self.cols[c][2]
        at = int(self.offsets[g, c]) + (lo - int(self.starts[g])) * row
        assert self._map is not None  # learn() mapped the file
        page = at & ~(mmap.PAGESIZE - 1)
        self._map.madvise(mmap.MADV_WILLNEED, page, at + (hi - lo) * row - page)
        return memoryview(self._map)[at : at + (hi - lo) * row]

    def gather(self, local: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Rows ``local`` (part rows, their groups learnt) of columns ``names``."""
        g = np.searchsorted(self.starts, local, side="right") - 1
        r = local - self.starts[g]
        base = self.offsets[g]  # (rows, direct columns): where each row's group's values start
        out: dict[str, np.ndarray] = {}
        need = set(names) | {k for k in self.once if f"next.{k}" in names}
        flags = [c for c in self._flags if self.direct[c] in need]
        if flags:  # one-value booleans (the TED flags): every column in one pass
            bits = base[:, flags] * 8 + r[:, None]
            got = (self._mapped()[bits >> 3] >> (bits & 7).astype(np.uint8)) & 1
            got = np.ascontiguousarray(got.T.astype(bool))
            for j, c in enumerate(flags):
                out[self.direct[c]] = got[j].reshape(len(r), *self.cols[c][5])
        for c, name in enumerate(self.direct):
            if name in need and name not in out:
                out[name] = self._take(base[:, c], r, c)
        for k in self.once:
            name = f"next.{k}"
            if name not in names:
                continue
            # implied rows: the observation one row on (never past a group: its last row
            # is stored); explicit rows from the sorted array
            rows, vals = self.next_rows[k], self.next_vals[k]
            at = np.minimum(np.searchsorted(rows, local), max(len(rows) - 1, 0))
            hit = rows[at] == local if len(rows) else np.zeros(len(local), bool)
            succ = np.where(hit, r, r + 1)  # an explicit row's successor is never read
            c = self.direct.index(k)
            got = self._take(base[:, c], succ, c)
            if hit.any():
                got[hit] = vals[at[hit]]
            out[name] = got
        return {k: out[k] for k in names}

    def _take(self, base: np.ndarray, r: np.ndarray, c: int) -> np.ndarray:
        """Rows ``r`` of direct column ``c`` whose row groups' values start at ``base``."""
        _, width, size, dtype, np_type, shape = self.cols[c]
        n = len(r)
        if dtype == "bool":
            bits = (base * 8 + r * width)[:, None] + np.arange(width)
            values = (self._mapped()[bits >> 3] >> (bits & 7).astype(np.uint8)) & 1
            return values.astype(bool).reshape(n, *shape)
        got = self._items(c)[base + r * (width * size)]  # (take() would copy the view whole)
        return got.view(np_type).reshape(n, *shape)
