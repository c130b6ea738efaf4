"""Random rows of a zarr shard read in place: no decode for keys stored uncompressed.

Shards of a store created since issue 19 store every key but ``uint8`` ones (by default:
:func:`rldata.stores.backend._zarr.compressed`) with the codec chain ``bytes`` alone inside
the sharding codec: an inner chunk is its rows' raw little-endian bytes, so row ``r`` of
inner chunk ``j`` lies at ``offset[j] + r * row_bytes`` of the shard file. Above the
decoded cache a sample then copies its rows out of the (already hashed) shard, mapped
read-only, with one numpy gather per shard and key, instead of a pread and a blosc decode
of a whole inner chunk per row and key (~800 decodes a sample(256) at 3M HalfCheetah rows).

Nothing unchecked is served: a shard is hashed against the manifest the first time a
handle reads it (:meth:`~rldata.stores.backend._zarr_checks.ZarrObjectChecks._check_objects`)
and mapped only through a file of that identity; its index was bounds-checked then (each
stored inner chunk exactly ``inner * row_bytes`` bytes inside the file's data bytes:
:func:`~rldata.stores.backend._zarr_shards._shard_index`). Keys stored compressed, writers,
and older stores keep the decode path; a store whose decoded rows fit the cache serves the
rows it holds decoded already (a small store is decoded whole for ``columns()``), and reads
the others in place too rather than decoding units to fill the cache. Mapped
pages count as this process's memory: past ``RLDATA_MAP_BYTES`` of them they are released
(they stay in the page cache), as memmap's and parquet's readers bound theirs.
"""

from __future__ import annotations

import numpy as np

from rldata._env import map_bytes
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._zarr_cache import IMPLIED, ZarrChunks
from rldata.stores.backend._zarr_shards import Layout, StaleObjectError

RSS_EVERY = 8  # in-place reads between two looks at the resident mapped bytes (~20 us each)
PASS_BYTES = 64 << 20
"""Bytes range reads (verify, the digest, push, convert) serve in place before the mapped
shards' pages are dropped from this process: a pass over the whole store otherwise keeps up
to ``RLDATA_MAP_BYTES`` of it resident, its peak growing with the store."""


class ZarrPlainReads(ZarrChunks):
    """Reads of a sharded zarr store that gather uncompressed keys in place."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # array -> [chunks, inner chunks] offsets in its shard (-1 not stored, -2 not mapped
        # yet) and the shards' mapped bytes; rebuilt when the handle forgets an object
        self._ptab: dict[str, np.ndarray] = {}
        self._pbuf: dict[str, dict[int, np.ndarray]] = {}
        self._pgen = -1
        self._reads = 0  # in-place reads by this handle
        self._rss0: int | None = None  # file-backed resident bytes before the first one
        self._passed = 0  # bytes served in place by range reads since mapped pages were dropped

    def _columns_at(
        self, index: np.ndarray, names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        keys = list(names) if names else list(self._fields)
        plain = self._in_place_keys(keys) if index.size else []
        if not plain or int(index.min()) < 0 or int(index.max()) >= self._rows:
            return super()._columns_at(index, names)
        n = len(index)
        run = (
            n > 1 and int(index[-1]) - int(index[0]) == n - 1 and bool((np.diff(index) == 1).all())
        )
        # a store that fits the cache: a take; a pass's run of rows (verify, convert) reads in
        # place rather than filling the cache with the whole store (memory, time: issue 19)
        if self._dense is not None and (
            self._have[index // self._unit].all() or (not run and self._fill_dense_in_place())
        ):
            return super()._columns_at(index, names)
        if self._rss0 is None:
            self._rss0 = _rss_file() or 0
        if run:
            got = self._range_keys(int(index[0]), int(index[-1]) + 1, plain)  # verify's reads
        else:
            got = self._gather_keys(index, plain)
        self._reads += 1
        if self._reads % RSS_EVERY == 0:
            self._bound_resident()
        rest = [k for k in keys if k not in got]
        if rest:
            got.update(super()._columns_at(index, rest))
        return {k: got[k] for k in keys}

    def _fill_dense_in_place(self) -> bool:
        """Copy every raw array's rows not cached yet into the decoded cache (a store that
        fits it), slice by slice from the checked shards: no decode, ~a memcpy of the store,
        after which samplers gather from the whole cache (``rows_view``), as from memmap.
        False (nothing done) when some array is compressed: those fill unit by unit."""
        dense = self._dense
        names = self._array_names()
        if dense is None or not all(getattr(self._layouts.get(n), "plain", False) for n in names):
            return False
        rows = min(self._rows, len(next(iter(dense.values()))))
        per = self._chunk // self._unit
        for c in range(-(-rows // self._chunk)):
            a, b = c * self._chunk, min((c + 1) * self._chunk, rows)
            if self._have[c * per : -(-b // self._unit)].all():
                continue
            for k, v in self._range_keys(a, b, list(self._fields)).items():
                dense[k][a:b] = v
            for k in self._masks:
                dense[f"{IMPLIED}/{k}"][a:b] = self._raw_rows(f"{IMPLIED}/{k}", c, a, b) != 0
            self._have[c * per : -(-b // self._unit)] = True
        return True

    def _range_keys(self, start: int, stop: int, keys: list[str]) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` of in-place ``keys``: slices of the shards, chunk by chunk
        (a gather would index every byte)."""
        out = {}
        for k in keys:
            lay: Layout = self._layouts[k]
            parts = []
            for c in range(start // self._chunk, (stop - 1) // self._chunk + 1):
                a, b = max(start, c * self._chunk), min(stop, (c + 1) * self._chunk)
                raw = self._plain_raw(k, a, b)
                got = np.frombuffer(super()._raw(k, a, b) if raw is None else raw, lay.dtype)
                parts.append(got.reshape(b - a, *lay.shape))
            rows = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
            out[k] = rows.view(np.uint8) != 0 if lay.dtype == np.bool_ else rows
        return out

    def _raw(self, name: str, start: int, stop: int) -> memoryview:
        """Key ``name``'s rows ``[start, stop)`` as bytes (what verify hashes): for a raw
        array, within one chunk and not cached, the checked shard's bytes themselves, one
        slice when its inner chunks lie back to back (no decode, no copy)."""
        got = self._plain_raw(name, start, stop)
        if got is None and stop > start and (stop - 1) // self._chunk != start // self._chunk:
            ch = self._chunk  # a pass's block across shards (verify's and the digest's steps)
            cuts = range(start // ch, (stop - 1) // ch + 1)
            parts = [
                self._plain_raw(name, max(start, c * ch), min(stop, c * ch + ch)) for c in cuts
            ]
            if all(p is not None for p in parts):
                return memoryview(b"".join(parts))  # type: ignore[arg-type]
        return super()._raw(name, start, stop) if got is None else got

    def _plain_raw(self, name: str, start: int, stop: int) -> memoryview | None:
        """:meth:`_raw` read in place, or None where it reads another way."""
        c = start // self._chunk
        if (
            stop <= start
            or (
                self._dense is not None
                and self._have[start // self._unit : stop // self._unit + 1].all()
            )
            or (stop - 1) // self._chunk != c
            or stop > self._rows
            or not self._in_place_keys([name])
        ):
            return None
        self._passed += (stop - start) * self._layouts[name].row_bytes
        if self._passed > PASS_BYTES:  # a whole-store pass: its mapped pages are done with
            self._passed = 0
            self._objects.release_maps()
        base = name[len("next.") :] if name.startswith("next.") else None
        if base not in self._masks:
            return memoryview(self._raw_rows(name, c, start, stop)).cast("B")  # type: ignore[arg-type]
        # a next value stored once: row t + 1's observation where implied, as the decode path
        end = min(stop + 1, (c + 1) * self._chunk, self._rows)
        nxt = self._raw_rows(name, c, start, stop).copy()
        cur = self._raw_rows(base, c, start, end)
        use = self._raw_rows(f"{IMPLIED}/{base}", c, start, stop).view(np.bool_).copy()
        use[len(cur) - 1 :] = False  # the last row of a chunk or of the arrays: never implied
        col.fill_implied(cur, nxt, use != 0)
        return memoryview(nxt).cast("B")  # type: ignore[arg-type]

    def _raw_rows(self, name: str, c: int, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of raw array ``name`` inside chunk ``c``, read from its
        checked, mapped shard (a view when they lie in one run of stored bytes)."""
        lay: Layout = self._layouts[name]
        buf, offs = self._plain_map(name, c, lay)
        rb, inner = lay.row_bytes, lay.inner
        a, b = start - c * self._chunk, stop - c * self._chunk
        j0, j1 = a // inner, (b - 1) // inner
        o = offs[j0 : j1 + 1]
        if (o >= 0).all() and (np.diff(o) == lay.nbytes).all():  # one run of bytes
            at = int(o[0]) + (a - j0 * inner) * rb
            flat = buf[at : at + (b - a) * rb]
        else:
            flat = np.zeros((b - a) * rb, dtype=np.uint8)
            for j in range(j0, j1 + 1):
                lo, hi = max(a, j * inner), min(b, (j + 1) * inner)
                if offs[j] >= 0:
                    at = int(offs[j]) + (lo - j * inner) * rb
                    flat[(lo - a) * rb : (hi - a) * rb] = buf[at : at + (hi - lo) * rb]
        return flat.view(lay.dtype).reshape(b - a, *lay.shape)

    def _bound_resident(self) -> None:
        """Release the mapped shards' pages once they hold more than ``RLDATA_MAP_BYTES``
        resident (as memmap and parquet readers bound theirs): random rows all over a store
        would otherwise keep the whole store in this process's memory."""
        rss = _rss_file()
        if rss is not None and rss - (self._rss0 or 0) > map_bytes():
            self._objects.release_maps()

    def _in_place_keys(self, keys: list[str]) -> list[str]:
        """Of ``keys``, those whose stored arrays are all uncompressed shards (a stored-once
        ``next.k`` needs ``k`` and ``_implied/k`` too); none for a writer, whose rows since
        the last commit live only in its cache."""
        if self.writable or self._inner is None:
            return []
        lays = self._layouts

        def plain(name: str) -> bool:
            lay = lays.get(name)
            return lay is not None and lay.plain

        out = []
        for k in keys:
            base = k[len("next.") :] if k.startswith("next.") else None
            need = [k] + ([base, f"{IMPLIED}/{base}"] if base in self._masks else [])
            if all(plain(n) for n in need):
                out.append(k)
        return out

    def _gather_keys(self, index: np.ndarray, keys: list[str]) -> dict[str, np.ndarray]:
        """Rows ``index`` of ``keys`` (in-place keys only), stored-once next values rebuilt."""
        chunks = index // self._chunk
        order = np.argsort(chunks, kind="stable")
        groups = _groups(chunks[order])
        local = index - chunks * self._chunk
        sorted_at = (chunks[order], (local // self._inner)[order], (local % self._inner)[order])
        out = {k: self._plain_gather(k, index, order, groups, sorted_at) for k in keys}
        for k in keys:
            base = k[len("next.") :]
            if not k.startswith("next.") or base not in self._masks:
                continue
            bits = self._plain_gather(f"{IMPLIED}/{base}", index, order, groups, sorted_at)
            # implied only inside a chunk and below the arrays' end, as the decode path says
            use = bits & ((index + 1) % self._chunk != 0) & (index + 1 < self._rows)
            if use.any():
                out[k][use] = self._columns_at(index[use] + 1, [base])[base]
        return out

    def _plain_gather(
        self,
        name: str,
        index: np.ndarray,
        order: np.ndarray,
        groups: list[tuple[int, int, int]],
        sorted_at: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Array ``name``'s rows ``index``: one gather of bytes per shard the batch touches."""
        lay: Layout = self._layouts[name]
        c, j, r = sorted_at
        offs = self._plain_offsets(name, c, j, groups, lay)
        rb = lay.row_bytes
        stored = offs >= 0
        pos = np.where(stored, offs, 0) + r * rb  # not stored: any in-bounds row, zeroed below
        at = pos[:, None] + np.arange(rb)
        bufs = self._pbuf[name]
        parts = [bufs[chunk][at[a:b]] for chunk, a, b in groups]
        raw = np.empty((len(index), rb), dtype=np.uint8)
        raw[order] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if not stored.all():
            raw[order[~stored]] = 0
        if lay.dtype == np.bool_:  # any byte but 0 is True (what numpy's cast would say)
            return (raw != 0).reshape(len(index), *lay.shape)
        return raw.view(lay.dtype).reshape(len(index), *lay.shape)

    def _plain_offsets(
        self, name: str, c: np.ndarray, j: np.ndarray, groups: list, lay: Layout
    ) -> np.ndarray:
        """Each sorted row's inner chunk offset in its shard (-1: not stored), mapping the
        shards not mapped yet (each checked against the manifest first)."""
        for _ in range(3):
            if self._pgen != self._objects.generation:  # objects forgotten: start over
                self._ptab.clear()
                self._pbuf.clear()
                self._pgen = self._objects.generation
            tab = self._ptab.get(name)
            need = int(c[-1]) + 1
            if tab is None or len(tab) < need:
                grown = np.full((max(need, -(-self._rows // self._chunk)), lay.count), -2)
                if tab is not None:
                    grown[: len(tab)] = tab
                tab = self._ptab[name] = grown
            offs = tab[c, j]
            if not (offs == -2).any():
                return offs
            bufs = self._pbuf.setdefault(name, {})
            for chunk, _a, _b in groups:
                if chunk not in bufs:
                    bufs[chunk], tab[chunk] = self._plain_map(name, chunk, lay)
            if self._pgen == self._objects.generation:
                return tab[c, j]
        raise CorruptStoreError(f"{self._object_file(name, int(c[0]))}: keeps changing while read")

    def _plain_map(self, name: str, c: int, lay: Layout) -> tuple[np.ndarray, np.ndarray]:
        path = self._object_file(name, c)
        for _ in range(2):
            self._check_objects(c, [name])  # hashed against the manifest, once a handle
            try:
                return self._objects.mapped((name, c), path, lay)
            except StaleObjectError:
                continue  # replaced since it was checked: check the new file
        raise CorruptStoreError(f"{path}: the object keeps changing while being read")


def _rss_file() -> int | None:
    """This process's resident file-backed bytes (``RssFile``; None where not Linux)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssFile:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _groups(sorted_chunks: np.ndarray) -> list[tuple[int, int, int]]:
    """``(chunk, start, stop)`` runs of a sorted chunk array."""
    edges = np.flatnonzero(np.diff(sorted_chunks)) + 1
    starts = [0, *edges.tolist()]
    stops = [*edges.tolist(), len(sorted_chunks)]
    return [(int(sorted_chunks[a]), a, b) for a, b in zip(starts, stops)]
