"""Random reads of a parquet store: PLAIN parts read in place (``_parquet_plain``); in other
parts only the row groups a batch needs, decoded once into a least-recently-used cache
bounded by bytes.

A reader never decodes a whole part for a sample: each part's footer is read once (and
checked), the batch's positions are mapped to (part, row group), and each row group not
cached is read alone (``ParquetFile.read_row_group``: its column chunks by byte range).
Decoded row groups are kept up to ``cache_bytes()`` decoded bytes
(``RLDATA_PARQUET_CACHE_BYTES``, default 2 GiB): a store that fits is decoded group by
group into one dense column per key (one gather per key per batch), a larger one into a
least-recently-used set of groups (the least recently used go first).
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np
import pyarrow.parquet as pq

from rldata._env import env_bytes, map_bytes
from rldata.stores.backend import _columns as col
from rldata.stores.backend._parquet_plain import PlainPart

# above it, a random row costs one small row group's read (~1.5 ms in pyarrow, whatever its
# size: 1.1 batches/s at 3M HalfCheetah rows with 256 MiB), so the default stays at 2 GiB
DEFAULT_CACHE_BYTES = 2 << 30
ENV = "RLDATA_PARQUET_CACHE_BYTES"


def cache_bytes() -> int:
    """The decoded row-group cache's size in bytes (``RLDATA_PARQUET_CACHE_BYTES``)."""
    return env_bytes(ENV, DEFAULT_CACHE_BYTES)


Decode = Callable[[pq.ParquetFile, dict, int, list[str] | None], dict[str, np.ndarray]]
Plain = Callable[[pq.ParquetFile, dict], "PlainPart | None"]


class RowGroups:
    """The row groups of a store's listed parts and an LRU of decoded ones.

    ``opener(part)`` returns the part's checked :class:`pyarrow.parquet.ParquetFile`;
    ``decode(file, part, group, names)`` returns the group's rows of columns ``names``
    (every column when None) as numpy arrays, next values stored once already rebuilt.
    """

    def __init__(
        self,
        opener: Callable[[dict], pq.ParquetFile],
        decode: Decode,
        fields: Callable[[], dict],
        plain: Plain | None = None,
    ) -> None:
        self._opener = opener
        self._decode = decode
        self._plain_of = plain  # a part's in-place reader, None where it is not PLAIN
        self._plain: dict[int, PlainPart | None] = {}
        self._part_bytes = 0
        self._map_bytes = map_bytes()
        self._parts: list[dict] = []
        self._files: dict[str, pq.ParquetFile] = {}
        self._part_starts = np.zeros(0, dtype=np.int64)
        self._groups: dict[int, np.ndarray] = {}  # part number -> row-group starts (global)
        self._lru: collections.OrderedDict[tuple[int, int], dict[str, np.ndarray]] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self._fields = fields
        # a store whose decoded rows fit the cache: one column per key, filled group by group
        # (fresh anonymous pages: untouched rows cost nothing), gathered with one take per key
        self._dense: dict[str, np.ndarray] | None = None
        self._have: set[tuple[int, int]] = set()
        self.limit = cache_bytes()
        self.decodes = 0  # row groups decoded by this handle (for tests and benchmarks)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def complete(self) -> dict[str, np.ndarray] | None:
        """The dense columns once every row group is decoded into them (else None)."""
        if self._dense is None or len(self._groups) < len(self._parts):
            return None
        if len(self._have) < sum(len(s) for s in self._groups.values()):
            return None
        return self._dense

    def update(self, parts: list[dict]) -> None:
        """Adopt the manifest's parts (a refresh appends parts; earlier ones never change)."""
        known = len(self._parts)
        if parts[:known] != self._parts:  # not an extension of what we read: start over
            self._files.clear()
            self._plain.clear()
            self._groups.clear()
            self._lru.clear()
            self._bytes = 0
            self._dense, self._have = None, set()
        self._parts = list(parts)
        self._part_starts = np.array([p["start"] for p in parts], dtype=np.int64)
        self._part_bytes = sum(int(p.get("bytes") or 0) for p in parts)
        total = sum(p["rows"] for p in parts)
        fields = self._fields()
        row = sum(
            int(np.prod(e["shape"], dtype=object)) * col.np_dtype(e["dtype"]).itemsize
            for e in fields.values()
        )
        if total * row > self.limit:
            if self._dense is not None:  # grown past the cache: group by group from now on
                self._dense, self._have, self._bytes = None, set(), 0
        elif self._dense is None:
            self._dense = col.empty(fields, total)
            self._have = set()
        elif next(iter(self._dense.values())).shape[0] < total:
            have = next(iter(self._dense.values())).shape[0]
            # nothing decoded yet (a writer's handle): fresh pages, no copy that touches them
            grown = col.grow(self._dense, total, have) if self._have else col.empty(fields, total)
            self._dense = grown

    def _file(self, i: int) -> pq.ParquetFile:
        part = self._parts[i]
        f = self._files.get(part["path"])
        if f is None:
            f = self._files[part["path"]] = self._opener(part)
            meta = f.metadata
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            self._groups[i] = part["start"] + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(
                np.int64
            )
        return f

    def spans(self, start: int, stop: int) -> list[tuple[pq.ParquetFile, dict, int, int, int]]:
        """The row groups holding rows ``[start, stop)``: per part touched, ``(file, part,
        first group, last group + 1, global row of the first group)`` (footers only)."""
        out: list[tuple[pq.ParquetFile, dict, int, int, int]] = []
        if stop <= start:
            return out
        first = int(np.searchsorted(self._part_starts, start, side="right")) - 1
        last = int(np.searchsorted(self._part_starts, stop - 1, side="right")) - 1
        for i in range(first, last + 1):
            f = self._file(i)
            starts = self._groups[i]
            g0 = int(np.searchsorted(starts, max(start, int(starts[0])), side="right")) - 1
            g1 = int(np.searchsorted(starts, stop - 1, side="right"))
            out.append((f, self._parts[i], g0, g1, int(starts[g0])))
        return out

    def _block(self, i: int, g: int) -> dict[str, np.ndarray]:
        key = (i, g)
        got = self._lru.get(key)
        if got is not None:
            self._lru.move_to_end(key)
            return got
        got = self._decode(self._file(i), self._parts[i], g, None)
        self.decodes += 1
        size = sum(a.nbytes for a in got.values())
        self._lru[key] = got
        self._bytes += size
        while self._bytes > self.limit and len(self._lru) > 1:
            _, old = self._lru.popitem(last=False)
            self._bytes -= sum(a.nbytes for a in old.values())
        return got

    def _plain_part(self, i: int) -> PlainPart | None:
        if i not in self._plain:
            f = self._file(i)  # hashed against the manifest, footer checked
            self._plain[i] = None if self._plain_of is None else self._plain_of(f, self._parts[i])
        return self._plain[i]

    def check_headers(self) -> bool:
        """Every in-place part reads its value offsets from the page headers from now on;
        False if every one did already (see :meth:`PlainPart.check_headers`)."""
        return any([p.check_headers() for p in self._plain.values() if p is not None])

    def plain_span(self, start: int, stop: int) -> tuple[PlainPart, int, int] | None:
        """The PLAIN part holding all of rows ``[start, stop)`` and their rows in it (None:
        the rows span parts, or their part is decoded by row group)."""
        i = int(np.searchsorted(self._part_starts, start, side="right")) - 1
        if i < 0 or stop > self._parts[i]["start"] + self._parts[i]["rows"]:
            return None
        plain = self._plain_part(i)
        first = int(self._part_starts[i])
        return None if plain is None else (plain, start - first, stop - first)

    def gather(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Rows ``index`` of columns ``names``: read in place from PLAIN parts
        (:mod:`._parquet_plain`), decoded by row group from the others."""
        if index.size == 0:
            return {}
        part_of = np.searchsorted(self._part_starts, index, side="right") - 1
        parts = np.unique(part_of).tolist()
        got: list[tuple[np.ndarray | None, dict[str, np.ndarray]]] = []
        rest: list[np.ndarray | None] = []
        used: list[PlainPart] = []
        for i in parts:
            sel = np.flatnonzero(part_of == i) if len(parts) > 1 else None
            rows = index if sel is None else index[sel]
            plain = self._plain_part(i)
            if plain is not None:
                local = rows - self._part_starts[i]
                groups = np.unique(np.searchsorted(plain.starts, local, side="right") - 1)
                if plain.learn(groups):
                    got.append((sel, plain.gather(local, names)))
                    used.append(plain)
                    continue
                self._plain[i] = None  # not that layout after all: decode its row groups
            rest.append(sel)
        if rest:
            sel = None if rest[0] is None else np.concatenate([r for r in rest if r is not None])
            got.append((sel, self._gather_decoded(index if sel is None else index[sel], names)))
        if used and self._part_bytes > self._map_bytes:  # resident memory: the batch
            for p in used:
                p.release()
        if len(got) == 1 and got[0][0] is None:
            return got[0][1]
        out = {k: np.empty((len(index), *a.shape[1:]), a.dtype) for k, a in got[0][1].items()}
        for sel, cols in got:
            for k, a in cols.items():
                out[k][sel] = a
        return out

    def _gather_decoded(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Rows ``index`` of columns ``names`` (allocated from the first decoded group, so a
        schema the files do not hold fails as corruption before anything large is made)."""
        out: dict[str, np.ndarray] = {}
        if self._dense is not None:
            return self._gather_dense(index, names)
        part_of = np.searchsorted(self._part_starts, index, side="right") - 1
        for i in np.unique(part_of).tolist():
            in_part = np.flatnonzero(part_of == i)
            self._file(i)
            starts = self._groups[i]
            rows = index[in_part]
            group_of = np.searchsorted(starts, rows, side="right") - 1
            for g in np.unique(group_of).tolist():
                sel = np.flatnonzero(group_of == g)
                block = self._block(i, g)
                if not out:
                    out = {
                        k: np.empty((len(index), *block[k].shape[1:]), block[k].dtype)
                        for k in names
                    }
                local = rows[sel] - starts[g]
                dst = in_part[sel]
                for name, a in out.items():
                    a[dst] = block[name][local]
        return out

    def _gather_dense(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        dense = self._dense
        assert dense is not None
        part_of = np.searchsorted(self._part_starts, index, side="right") - 1
        for i in np.unique(part_of).tolist():
            self._file(i)
            starts = self._groups[i]
            rows = index[part_of == i]
            for g in np.unique(np.searchsorted(starts, rows, side="right") - 1).tolist():
                if (i, g) in self._have:
                    continue
                block = self._decode(self._file(i), self._parts[i], g, None)
                self.decodes += 1
                a = int(starts[g])
                for name, values in block.items():
                    dense[name][a : a + len(values)] = values
                self._bytes += sum(v.nbytes for v in block.values())
                self._have.add((i, g))
        return {name: np.take(dense[name], index, axis=0) for name in names}
