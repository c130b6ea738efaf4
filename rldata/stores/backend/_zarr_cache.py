"""The zarr payload read back: arrays opened, chunks decoded once into a bounded cache.

Every read path of the zarr backend and its decoded-chunk cache; the writer
(:class:`rldata.stores.backend._zarr.ZarrStore`) adds array creation, writes and the
commit's chunk checksums.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import zarr
from tensordict import TensorDict
from zarr.api import asynchronous as zarr_async
from zarr.core.sync import sync as zarr_sync
from zarr.storage import LocalStore  # a missing package: the registry names the extra

from rldata._env import env_bytes
from rldata.errors import CorruptStoreError, RowIndexError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._zarr_checks import DATA_DIR, IMPLIED, ZarrObjectChecks
from rldata.stores.backend._zarr_shards import Layout, Objects, decode_inner, layout
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format import schema as sch
from rldata.stores.format.files import inside

# bit shuffle: smaller and faster than byte shuffle on float rows, measured (format 1.3.0)
SHUFFLE: Final = "bitshuffle"
CACHE_BYTES = 512 << 20
"""Decoded rows a handle keeps (all when the store fits; ``RLDATA_ZARR_CACHE_BYTES``: see
:func:`cache_bytes`); a read decodes only the units it touches into this budget."""
EAGER_BYTES = 32 << 20
"""Largest decoded store a reader hands out whole (``columns()``/``tensordict()``, which
decode every chunk); above it, samples decode only the chunks they touch."""
STACK_BYTES = 64 << 20
"""A read's decoded units are stacked and gathered once per key up to this size, when that
copies at most 512 rows per row read (a sample(256) of 128-row inner chunks: ~6 MB, ~10x
faster than a gather per unit and key; whole 65,536-row chunks keep the gather per unit)."""


class ZarrChunks(ZarrObjectChecks, RowStore):
    """The zarr arrays of a store and the decoded chunks cached from them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._arrays: dict[str, zarr.Array] = {}
        self._rows = 0  # rows the zarr arrays have (their shape)
        self._dense: dict[str, np.ndarray] | None = None  # decoded rows [0, len) per key
        self._have = np.zeros(0, dtype=bool)  # dense mode: which chunks are decoded
        self._lru: collections.OrderedDict[int, dict[str, np.ndarray]] = collections.OrderedDict()
        self._dirty: set[int] = set()  # chunks written since the last flush
        self._seen_filled = 0  # a reader's filled rows when its cache was filled
        self._masks: dict[str, zarr.Array] = {}  # obs key -> rows whose next value is implied
        self._objects = Objects()  # stored objects checked against the manifest, once each
        self._layouts: dict[str, Layout] = {}  # a sharded store's arrays (read by byte range)
        self._inner: int | None = None  # rows of an inner chunk, when every array is sharded
        self._bases: dict[str, tuple[str, str]] = {}  # array -> its object paths around "<c>"
        self._zero_blocks: dict[str, np.ndarray] = {}  # array -> an unstored inner chunk

    @property
    def _unit(self) -> int:
        """Rows of one decode: a reader of a sharded store decodes inner chunks; a writer, and
        any reader of an older store, whole chunks."""
        return self._inner if self._inner is not None and not self.writable else self._chunk

    # --- layout ---------------------------------------------------------------------------
    def _group_store(self) -> LocalStore:
        return LocalStore(self.root / DATA_DIR, read_only=not self.writable)

    def _row_bytes(self) -> int:
        return sum(sch.row_bytes(e) for e in self._fields.values())

    def _chunk_count(self, rows: int) -> int:
        """Decode units (see :attr:`_unit`) covering ``rows`` rows."""
        return -(-rows // self._unit)

    def _attach_payload(self) -> None:
        files = self._m["payload"].get("files")
        if not isinstance(files, dict) or set(files) != set(self._fields):
            got = sorted(files) if isinstance(files, dict) else files
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.files': expected one zarr array per "
                f"schema key {sorted(self._fields)}, got {got}"
            )
        filled = self._filled()
        if not self._arrays:
            for name in self._fields:
                rel = files[name]
                inside(self.root, rel, f"the zarr array of key {name!r}")
                path = "/".join(sch.key_tuple(name))
                if rel != f"{DATA_DIR}/{path}":
                    raise CorruptStoreError(
                        f"{self.root}: manifest names zarr array {rel!r} for key {name!r}; "
                        f"expected {DATA_DIR}/{path}"
                    )
            once = self._once()
            paths = [*("/".join(sch.key_tuple(n)) for n in self._fields)]
            paths += [f"{IMPLIED}/{k}" for k in once]
            opened = _open_arrays(self._group_store(), paths, "r+" if self.writable else "r")
            for name, entry in self._fields.items():
                arr = opened.pop(0)
                if isinstance(arr, BaseException):  # zarr.json that does not parse, unknown codecs
                    raise CorruptStoreError(
                        f"{self.root / files[name]}: zarr array of key {name!r} is missing or "
                        f"unreadable ({arr})"
                    )
                want = (*entry["shape"],)
                if arr.shape[1:] != want or arr.dtype != col.np_dtype(entry["dtype"]):
                    raise CorruptStoreError(
                        f"{self.root / files[name]}: zarr array of key {name!r} is {arr.dtype}{list(arr.shape[1:])}, "
                        f"schema says {entry['dtype']}{entry['shape']}"
                    )
                self._arrays[name] = arr
            for k, arr in zip(once, opened):
                if isinstance(arr, BaseException):
                    raise CorruptStoreError(
                        f"{self.root / DATA_DIR / IMPLIED / k}: implied-rows array of key "
                        f"'next.{k}' is missing ({arr})"
                    )
                self._masks[k] = arr
            self._rows = min(a.shape[0] for a in [*self._arrays.values(), *self._masks.values()])
            self._find_layouts()
            if self.writable:
                _remove_partials(self.root / DATA_DIR)
            self._reset_cache(max(self._rows, filled))
        else:  # a reader refreshing: the writer may have rewritten chunks past what we saw
            arrays, masks = list(self._arrays.items()), list(self._masks.items())
            both = [*arrays, *masks]
            again = _open_arrays(both[0][1].store, [a.path for _, a in both], "r")
            for arr in again:
                if isinstance(arr, BaseException):
                    raise arr
            self._arrays = {k: a for (k, _), a in zip(arrays, again)}
            self._masks = {k: a for (k, _), a in zip(masks, again[len(arrays) :])}
            self._rows = min(a.shape[0] for a in [*self._arrays.values(), *self._masks.values()])
            if self.capacity is not None:
                self._objects.forget(0)
                self._reset_cache(self._rows)
            else:
                self._objects.forget(self._seen_filled // self._chunk)
                self._forget_from(self._seen_filled // self._unit, max(self._rows, filled))
        if self._rows < filled:
            raise CorruptStoreError(
                f"{self.root / DATA_DIR}: zarr arrays hold {self._rows} rows, the manifest "
                f"lists {filled} committed rows (truncated)"
            )
        self._seen_filled = filled

    def _find_layouts(self) -> None:
        """Every array's inner-chunk layout when all are sharded alike (format 1.4), so
        readers decode inner chunks by byte range; else whole chunks as before."""
        names = self._array_names()
        found = {n: layout(self._array(n), self._chunk) for n in names}
        inners = {lay.inner for lay in found.values() if lay is not None}
        if all(lay is not None for lay in found.values()) and len(inners) == 1:
            self._layouts = {n: lay for n, lay in found.items() if lay is not None}
            self._inner = inners.pop()
        else:
            self._layouts, self._inner = {}, None

    def _array(self, name: str) -> zarr.Array:
        if name.startswith(IMPLIED + "/"):
            return self._masks[name[len(IMPLIED) + 1 :]]
        return self._arrays[name]

    def close(self) -> None:
        self._objects.close()
        super().close()

    def _decode_unit_arrays(self, u: int, names: list[str]) -> dict[str, np.ndarray]:
        """Inner chunk ``u`` (rows ``[u * inner, (u + 1) * inner)``) of arrays ``names``: a
        pread and a blosc call each (a shared read-only zero block when not stored)."""
        inner = self._unit
        c, j = divmod(u * inner, self._chunk)
        j //= inner
        out = {}
        for name in names:
            lay = self._layouts[name]
            raw = self._inner_bytes(name, c, j)
            if raw is None:
                out[name] = self._zeros(name, lay)
            else:
                out[name] = decode_inner(raw, lay, functools.partial(self._where, name, u))
        return out

    def _where(self, name: str, u: int) -> str:
        a, b = u * self._unit, (u + 1) * self._unit
        return f"{self._object_file(name, a // self._chunk)} (key {name!r}, rows [{a}, {b}))"

    def _zeros(self, name: str, lay: Layout) -> np.ndarray:
        """An inner chunk zarr did not store (all fill value), shared and read-only."""
        z = self._zero_blocks.get(name)
        if z is None:
            z = self._zero_blocks[name] = np.zeros((lay.inner, *lay.shape), dtype=lay.dtype)
            z.flags.writeable = False
        return z

    def _decode_unit(self, u: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Decode unit ``u`` of keys ``names`` (all when None), next values stored once
        rebuilt, in ``_unit``-row blocks (rows past the arrays are zero)."""
        if self._unit == self._chunk:
            return self._decode(u)
        keys = list(self._fields) if names is None else list(names)
        want = set(keys)
        for k in self._masks:
            if f"next.{k}" in want:
                want |= {k, f"{IMPLIED}/{k}"}
        if names is None:
            want |= {f"{IMPLIED}/{k}" for k in self._masks}
        arrays = [n for n in self._array_names() if n in want]
        try:
            out = self._decode_unit_arrays(u, arrays)
        except (CorruptStoreError, RowIndexError):
            raise
        except Exception as exc:  # an OSError reading a checked shard
            raise CorruptStoreError(
                f"{self.root / DATA_DIR}: inner chunk {u} does not read ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        inner = self._unit
        a, b = u * inner, min((u + 1) * inner, self._rows)
        for k in self._masks:
            if f"next.{k}" not in out or b <= a:
                continue
            bits = out[f"{IMPLIED}/{k}"][: b - a]
            use = bits.copy()
            nxt = out[f"next.{k}"] = out[f"next.{k}"].copy()
            cur = out[k]
            last_in_chunk = b % self._chunk == 0 or b >= self._rows
            if use[-1] and not last_in_chunk and b == (u + 1) * inner:
                near = self._lru.get(u + 1)  # the next unit, when cached: no decode
                head = (near if near is not None else self._decode_unit_arrays(u + 1, [k]))[k][:1]
                cur = np.concatenate([cur[: b - a], head])
            else:
                use[-1] = False
            col.fill_implied(cur, nxt[: b - a], use)
        return {n: out[n] for n in out if n in want or names is None}

    # --- the decoded cache ----------------------------------------------------------------
    def _dense_bytes(self) -> int:
        """Largest store kept decoded whole: ``CACHE_BYTES``; an append-only writer's only
        ``EAGER_BYTES`` (it reads back what it wrote, flushed rows need not stay in memory)."""
        if self.writable and self.capacity is None:
            return min(cache_bytes(), EAGER_BYTES)
        return cache_bytes()

    def _reset_cache(self, rows: int) -> None:
        self._lru.clear()
        if rows * self._row_bytes() <= self._dense_bytes():
            self._dense = col.empty(self._cache_fields(), rows)
            self._have = np.zeros(self._chunk_count(rows), dtype=bool)
        else:
            self._dense = None
            self._have = np.zeros(0, dtype=bool)

    def _cache_fields(self) -> dict[str, dict]:
        """The schema plus each stored-once key's implied-rows bits (decoded like a key)."""
        bits = {f"{IMPLIED}/{k}": {"shape": [], "dtype": "bool"} for k in self._masks}
        return {**self._fields, **bits}

    def _forget_from(self, chunk: int, rows: int) -> None:
        """Drop decoded chunks ``>= chunk`` (a writer may have extended them) and make room."""
        for c in [c for c in self._lru if c >= chunk]:
            del self._lru[c]
        if self._dense is not None:
            self._have[chunk:] = False
            self._grow_dense(rows)

    def _grow_dense(self, rows: int) -> None:
        dense = self._dense
        if dense is None:
            return
        have = next(iter(dense.values())).shape[0]
        if rows <= have:
            return
        limit = self._dense_bytes()
        if rows * self._row_bytes() > limit:  # too big to keep whole: chunk by chunk
            self._to_lru(have)
            return
        target = max(rows, 2 * have) if self.capacity is None else rows
        target = min(target, max(rows, limit // max(1, self._row_bytes())))
        self._dense = col.grow(dense, target, have)
        count = self._chunk_count(target)
        self._have = np.concatenate([self._have, np.zeros(count - len(self._have), dtype=bool)])

    def _to_lru(self, rows: int) -> None:
        dense = self._dense
        assert dense is not None
        for i in {*np.flatnonzero(self._have).tolist(), *self._dirty}:
            # dirty chunks may never have been decoded: their rows live only in dense
            self._lru[i] = self._chunk_from_dense(dense, i)
        self._dense, self._have = None, np.zeros(0, dtype=bool)

    def _chunk_from_dense(self, dense: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
        """Chunk ``i`` as a full ``chunk``-row block: dense may end inside the last chunk, and
        the LRU's blocks are always whole (later writes land anywhere in them)."""
        c = self._unit
        out = {}
        for k, a in dense.items():
            block = np.zeros((c, *a.shape[1:]), dtype=a.dtype)
            part = a[i * c : (i + 1) * c]
            block[: len(part)] = part
            out[k] = block
        return out

    def _decode(self, c: int) -> dict[str, np.ndarray]:
        """Chunk ``c`` of every key, read and decompressed (rows past the arrays are zero).

        A chunk file that does not decode (a flipped or cut compressed byte) is corruption,
        named as such, whatever the codec raised.
        """
        try:
            self._check_objects(c, self._array_names())
            return self._decode_chunk(c)
        except (CorruptStoreError, RowIndexError):
            raise
        except Exception as exc:  # codecs raise RuntimeError, ValueError, OSError, ...
            raise CorruptStoreError(
                f"{self.root / DATA_DIR}: chunk {c} does not decode ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None

    def _decode_chunk(self, c: int) -> dict[str, np.ndarray]:
        a, b = c * self._chunk, min((c + 1) * self._chunk, self._rows)
        out = {}
        for name, arr in self._arrays.items():
            block = np.zeros((self._chunk, *arr.shape[1:]), dtype=arr.dtype)
            if b > a:
                block[: b - a] = arr[a:b]
            out[name] = block
        for k, mask in self._masks.items():  # next values stored once: rebuild them
            bits = np.zeros(self._chunk, dtype=bool)
            if b > a:
                bits[: b - a] = mask[a:b]
            out[f"{IMPLIED}/{k}"] = bits
            use = bits[: b - a].copy()
            if b > a:
                use[-1] = False  # a row being written past the arrays' end: never implied
            col.fill_implied(out[k][: b - a], out[f"next.{k}"][: b - a], use)
        return out

    def _once(self) -> list[str]:
        once = col.stored_once(self.root, self._m["payload"], self._fields)
        return once

    def _chunk_of(self, c: int) -> dict[str, np.ndarray]:
        """LRU mode: chunk ``c`` decoded (dirty chunks are pinned until flushed)."""
        got = self._lru.get(c)
        if got is None:
            got = self._lru[c] = self._decode_unit(c)
            block = sum(a.nbytes for a in got.values())  # implied-row bits included
            budget = max(2, cache_bytes() // max(1, block))
            if self.writable and self.capacity is None:  # flushed rows are on disk: an
                budget = min(budget, len(self._dirty) + 2)  # appender's memory stays flat
            excess = len(self._lru) - budget
            if excess > 0:  # the oldest first; dirty chunks stay (a writer's unflushed rows)
                head = itertools.islice(self._lru, excess + len(self._dirty) + 1)
                gone = [old for old in head if old not in self._dirty and old != c]
                for old in gone[:excess]:
                    del self._lru[old]
        else:
            self._lru.move_to_end(c)
        return got

    def _ensure(self, chunks: np.ndarray) -> None:
        """Dense mode: decode the chunks not decoded yet."""
        dense = self._dense
        assert dense is not None
        need = chunks[~self._have[chunks]]
        unit = self._unit
        for c in np.unique(need).tolist():
            a = c * unit
            for name, block in self._decode_unit(c).items():
                dst = dense[name][a : a + unit]
                dst[...] = block[: len(dst)]
            self._have[c] = True

    def _columns_at(
        self, index: np.ndarray, names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        fields = {k: self._fields[k] for k in names} if names else self._fields
        if index.size == 0:
            return {
                k: np.zeros((0, *e["shape"]), col.np_dtype(e["dtype"])) for k, e in fields.items()
            }
        unit = self._unit
        chunks = index // unit
        if self._dense is not None:
            self._ensure(chunks)
            return {name: np.take(self._dense[name], index, axis=0) for name in fields}
        units, where = np.unique(chunks, return_inverse=True)
        stacked = len(units) * unit  # rows copied by stacking: a few hundred a row read
        if stacked <= 512 * len(index) and stacked * self._row_bytes() <= STACK_BYTES:
            blocks = [self._chunk_of(c) for c in units.tolist()]
            local = index - chunks * unit
            return {k: np.stack([b[k] for b in blocks])[where, local] for k in fields}
        out = {
            k: np.empty((len(index), *e["shape"]), col.np_dtype(e["dtype"]))
            for k, e in fields.items()
        }
        for c in units.tolist():
            sel = np.flatnonzero(chunks == c)
            block = self._chunk_of(c)
            local = index[sel] - c * unit
            for name, dst in out.items():
                dst[sel] = block[name][local]
        return out

    def _read(self, positions: torch.Tensor) -> TensorDict:
        index = positions.numpy()
        cols = self._columns_at(index)
        return col.tree(
            {k: col.to_torch(a, self._fields[k]["dtype"]) for k, a in cols.items()}, len(index)
        )

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        a = self._columns_at(positions.numpy(), [name])[name]
        return col.to_torch(a, self._fields[name]["dtype"])

    def _raw(self, name: str, start: int, stop: int) -> memoryview:
        if stop <= start:  # a reader's pass (verify, the digest) decodes past the cache
            return memoryview(b"")
        u, parts = self._unit, []
        for c in range(start // u, (stop - 1) // u + 1):
            a, b = max(start, c * u) - c * u, min(stop, (c + 1) * u) - c * u
            got = self._chunk_of(c) if self.writable and self._dense is None else self._lru.get(c)
            if self._dense is not None and (self.writable or self._have[c]):
                self._ensure(np.array([c]))
                got = {name: self._dense[name][c * u : (c + 1) * u]}
            parts.append((self._decode_unit(c, [name]) if got is None else got)[name][a:b])
        return memoryview(np.ascontiguousarray(np.concatenate(parts))).cast("B")  # type: ignore[arg-type]

    # --- stored-bytes checksums (format 1.3) ------------------------------------------------
    def columns(self) -> dict[str, torch.Tensor] | None:
        """Flat key -> decoded rows ``[0, filled)`` (positions == row index; for gathers)."""
        if self.schema is None or self._dense is None or not self._fill_dense():
            return None
        filled = self._filled()
        return {
            k: col.to_torch(self._dense[k][:filled], e["dtype"]) for k, e in self._fields.items()
        }

    def rows_view(self) -> TensorDict | None:
        """Decoded rows ``[0, filled)`` as one TensorDict (dense mode only; None otherwise)."""
        if self.schema is None or self._dense is None or not self._fill_dense():
            return None
        filled = self._filled()
        return col.tree(
            {k: col.to_torch(self._dense[k][:filled], e["dtype"]) for k, e in self._fields.items()},
            filled,
        )

    def _fill_dense(self) -> bool:
        if self._dense is None:
            return False
        filled = self._filled()
        count = self._chunk_count(filled)
        small = filled * self._row_bytes() <= EAGER_BYTES
        if not (small or self.writable or bool(self._have[:count].all())):
            return False  # a large reader: batches decode only the chunks they touch
        if filled:
            self._ensure(np.arange(self._chunk_count(filled)))
        return True


def _open_arrays(store: Any, paths: list[str], mode: str) -> list:
    """Each array at ``paths`` (or the exception opening it raised), opened together: one
    round trip to zarr's event-loop thread instead of one per array (a wake-up each, which
    costs milliseconds on a loaded machine)."""

    async def one(path: str) -> zarr.Array:
        return zarr.Array(await zarr_async.open_array(store=store, path=path, mode=mode))

    async def every() -> list:
        return await asyncio.gather(*(one(p) for p in paths), return_exceptions=True)

    return zarr_sync(every())


def _remove_partials(root: Path) -> None:
    """Chunk files a crashed zarr write left half-written (zarr names them ``*.partial``)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, name))


def cache_bytes() -> int:
    """:data:`CACHE_BYTES`, or what ``RLDATA_ZARR_CACHE_BYTES`` sets (read at each use)."""
    return env_bytes("RLDATA_ZARR_CACHE_BYTES", CACHE_BYTES)
