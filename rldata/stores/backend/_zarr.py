"""The zarr backend: one zarr v3 array per key, chunked along rows, zstd-compressed (blosc, bit shuffle).

Layout under the store directory (see ``docs/FORMAT.md``)::

    data/zarr.json                      the zarr group
    data/observation/zarr.json          array of key "observation", shape [rows, *shape]
    data/observation/c/<chunk>/0        one compressed chunk of ``chunk_rows`` rows
    data/next/reward/...                nested keys are nested groups

A zarr chunk is exactly one checksum chunk of the manifest (``checksums.chunk_rows``
rows), so a commit rewrites only the chunks it touched and lists them in
``payload.chunks_written``. Chunk files are replaced atomically (zarr writes a
temporary file and renames it) and fsynced before the manifest, so a crash leaves
either the old or the new chunk, and both hold every committed row.

Reads never decode a chunk per row: rows are gathered from decoded chunks, held in one
dense array per key when the decoded store fits ``CACHE_BYTES`` (one ``np.take`` per key
per batch), else in a least-recently-used set of chunks of that total size.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
import zarr
from tensordict import TensorDict
from zarr.api import asynchronous as zarr_async
from zarr.codecs import BloscCodec
from zarr.core.sync import sync as zarr_sync
from zarr.storage import LocalStore  # a missing package: the registry names the extra

from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format import schema as sch
from rldata.stores.format.checksums import file_sha256, files_sha256
from rldata.stores.format.commit import fsync_all
from rldata.stores.format.files import inside

DATA_DIR = "data"
IMPLIED = "_implied"  # group of bool arrays: row t's next.<obs> is row t + 1's <obs>
ZSTD_LEVEL = 3
# bit shuffle: smaller and faster than byte shuffle on float rows, measured (format 1.3.0)
SHUFFLE: Final = "bitshuffle"
BLOCK_BYTES = 1 << 18  # blosc blocks of 256 KiB: zstd sees more context than blosc's default
CACHE_BYTES = int(os.environ.get("RLDATA_ZARR_CACHE_BYTES", 2 << 30))
"""Decoded rows a handle keeps in memory (all of them when the store fits)."""


class ZarrStore(RowStore):
    """A store whose payload is a zarr v3 group (chunked, compressed; rings supported)."""

    supports_random_read = True
    supports_overwrite_rings = True

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

    # --- layout ---------------------------------------------------------------------------
    def _group_store(self) -> LocalStore:
        return LocalStore(self.root / DATA_DIR, read_only=not self.writable)

    def _row_bytes(self) -> int:
        return sum(sch.row_bytes(e) for e in self._fields.values())

    def _chunk_count(self, rows: int) -> int:
        return -(-rows // self._chunk)

    def _init_payload(self) -> None:
        rows = self.capacity if self.capacity is not None else 0
        group = zarr.open_group(store=self._group_store(), mode="w", zarr_format=3)
        files = {}
        for name, e in self._fields.items():
            *parents, leaf = sch.key_tuple(name)
            node = group
            for part in parents:
                node = node.require_group(part)
            self._arrays[name] = node.create_array(
                leaf,
                shape=(rows, *e["shape"]),
                chunks=(self._chunk, *[max(1, d) for d in e["shape"]]),
                dtype=col.np_dtype(e["dtype"]),
                compressors=_codec(),
                fill_value=0,
            )
            files[name] = "/".join((DATA_DIR, *sch.key_tuple(name)))
        # append-only: each observation stored once (a ring keeps both copies)
        once = col.obs_keys(self._fields) if self.capacity is None else []
        masks = group.require_group(IMPLIED) if once else None
        for k in once:
            assert masks is not None
            self._masks[k] = masks.create_array(
                k,
                shape=(rows,),
                chunks=(self._chunk,),
                dtype=bool,
                compressors=_codec(),
                fill_value=False,
            )
        self._rows = rows
        self._m["payload"] = {
            "dir": DATA_DIR,
            "format": "zarr",
            "zarr_format": 3,
            "codec": {
                "name": "blosc",
                "cname": "zstd",
                "clevel": ZSTD_LEVEL,
                "shuffle": SHUFFLE,
                "blocksize": BLOCK_BYTES,
            },
            "files": files,
            "rows": rows,
            "chunks_written": [],
            "next_stored_once": once,
        }
        self._reset_cache(rows)

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
                self._reset_cache(self._rows)
            else:
                self._forget_from(self._seen_filled // self._chunk, max(self._rows, filled))
        if self._rows < filled:
            raise CorruptStoreError(
                f"{self.root / DATA_DIR}: zarr arrays hold {self._rows} rows, the manifest "
                f"lists {filled} committed rows (truncated)"
            )
        self._seen_filled = filled

    # --- the decoded cache ----------------------------------------------------------------
    def _reset_cache(self, rows: int) -> None:
        self._lru.clear()
        if rows * self._row_bytes() <= CACHE_BYTES:
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
        if rows * self._row_bytes() > CACHE_BYTES:  # too big to keep whole: chunk by chunk
            self._to_lru(have)
            return
        target = max(rows, 2 * have) if self.capacity is None else rows
        target = min(target, max(rows, CACHE_BYTES // max(1, self._row_bytes())))
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
        c = self._chunk
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
            return self._decode_chunk(c)
        except CorruptStoreError:
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
            got = self._lru[c] = self._decode(c)
            budget = max(2, CACHE_BYTES // max(1, self._chunk * self._row_bytes()))
            for old in list(self._lru):
                if len(self._lru) <= budget:
                    break
                if old not in self._dirty and old != c:
                    del self._lru[old]
        else:
            self._lru.move_to_end(c)
        return got

    def _ensure(self, chunks: np.ndarray) -> None:
        """Dense mode: decode the chunks not decoded yet."""
        dense = self._dense
        assert dense is not None
        need = chunks[~self._have[chunks]]
        for c in np.unique(need).tolist():
            a = c * self._chunk
            for name, block in self._decode(c).items():
                dst = dense[name][a : a + self._chunk]
                dst[...] = block[: len(dst)]
            self._have[c] = True

    # --- hooks ----------------------------------------------------------------------------
    def _reserve(self, positions: int) -> None:
        if self._dense is not None:
            self._grow_dense(positions)

    def _write(self, position: int, tensors: dict[str, torch.Tensor]) -> None:
        n = next(iter(tensors.values())).shape[0]
        c0, c1 = position // self._chunk, (position + n - 1) // self._chunk
        arrays = {k: col.to_numpy(t, self._fields[k]["dtype"]) for k, t in tensors.items()}
        # pinned before any is filled: decoding chunk c1 must not evict chunk c0's new rows
        self._dirty.update(range(c0, c1 + 1))
        if self._dense is not None:
            # rows of these chunks written before (committed or not) must be decoded first
            self._ensure(np.arange(c0, c1 + 1))
            for name, rows in arrays.items():
                self._dense[name][position : position + n] = rows
        else:
            for c in range(c0, c1 + 1):
                block = self._chunk_of(c)
                a, b = max(position, c * self._chunk), min(position + n, (c + 1) * self._chunk)
                for name, rows in arrays.items():
                    block[name][a - c * self._chunk : b - c * self._chunk] = rows[
                        a - position : b - position
                    ]

    def _columns_at(
        self, index: np.ndarray, names: list[str] | None = None
    ) -> dict[str, np.ndarray]:
        fields = {k: self._fields[k] for k in names} if names else self._fields
        if index.size == 0:
            return {
                k: np.zeros((0, *e["shape"]), col.np_dtype(e["dtype"])) for k, e in fields.items()
            }
        chunks = index // self._chunk
        if self._dense is not None:
            self._ensure(chunks)
            return {name: np.take(self._dense[name], index, axis=0) for name in fields}
        out = {
            k: np.empty((len(index), *e["shape"]), col.np_dtype(e["dtype"]))
            for k, e in fields.items()
        }
        for c in np.unique(chunks).tolist():
            sel = np.flatnonzero(chunks == c)
            block = self._chunk_of(c)
            local = index[sel] - c * self._chunk
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
        if stop <= start:
            return memoryview(b"")
        if self._dense is not None:
            self._ensure(np.arange(start // self._chunk, (stop - 1) // self._chunk + 1))
            return memoryview(np.ascontiguousarray(self._dense[name][start:stop])).cast("B")  # type: ignore[arg-type]
        parts = []
        for c in range(start // self._chunk, (stop - 1) // self._chunk + 1):
            a, b = max(start, c * self._chunk), min(stop, (c + 1) * self._chunk)
            parts.append(self._chunk_of(c)[name][a - c * self._chunk : b - c * self._chunk])
        return memoryview(np.ascontiguousarray(np.concatenate(parts))).cast("B")  # type: ignore[arg-type]

    def _flush(self, filled: int) -> None:
        need = filled if self.capacity is None else self.capacity
        if need > self._rows:
            for arr in [*self._arrays.values(), *self._masks.values()]:
                arr.resize((need, *arr.shape[1:]))
            self._rows = need
        written = sorted(self._dirty)
        paths: set[Path] = set()
        # a row's next value may be implied only by a row committed together with it, and a
        # committed row's bit and stored bytes never change afterwards: every mix of old and
        # new chunk files a crash or a live reader may see agrees on every committed row
        old = self._committed_end
        late = {f"next.{k}" for k in self._masks}
        for c in written:
            a, b = c * self._chunk, min((c + 1) * self._chunk, self._rows)
            if b <= a:
                continue
            if self._dense is not None:
                block = {name: d[a:b] for name, d in self._dense.items()}
            else:
                block = {name: d[: b - a] for name, d in self._lru[c].items()}
            lo = max(0, old - a)
            for k in self._masks:
                bits = block[f"{IMPLIED}/{k}"]  # a view into the cache: updated in place
                bits[lo:] = col.implied(block[k][lo:], block[f"next.{k}"][lo:])
            for name, arr in self._arrays.items():
                rows = block[name]
                if name in late:
                    rows = rows.copy()
                    rows[block[f"{IMPLIED}/{name[len('next.') :]}"]] = 0  # zeros cost ~nothing
                arr[a:b] = rows
                paths.add(Path(self._object_file(name, c)))
            for k, arr in self._masks.items():
                arr[a:b] = block[f"{IMPLIED}/{k}"]
                paths.add(Path(self._object_file(f"{IMPLIED}/{k}", c)))
        if self.durable and paths:
            self._fsync(paths)
        self._dirty.clear()
        payload = self._m["payload"]
        payload["rows"] = self._rows
        payload["chunks_written"] = written
        self._record_object_sums(written)

    # --- stored-bytes checksums (format 1.3) ------------------------------------------------
    def _array_names(self) -> list[str]:
        """Every zarr array: the schema's keys, then each stored-once key's implied-rows bits."""
        return [*self._fields, *(f"{IMPLIED}/{k}" for k in self._masks)]

    def _array_dir(self, name: str) -> str:
        parts = name.split("/") if name.startswith(IMPLIED + "/") else sch.key_tuple(name)
        return os.path.join(self.root, DATA_DIR, *parts)

    def _object_file(self, name: str, c: int) -> str:
        """Chunk ``c``'s file of array ``name`` (a key, or ``_implied/<key>``)."""
        return os.path.join(self._array_dir(name), "c", str(c), *["0"] * self._ndim(name))

    def _record_object_sums(self, written: list[int]) -> None:
        """SHA-256 of the bytes of each chunk file this commit wrote (null: zarr stored no file,
        the chunk is all fill value) and of every array's ``zarr.json``, so readers can check
        what is stored without decoding it (:meth:`stored_bytes_check`)."""
        payload = self._m["payload"]
        sums = payload.get("chunk_sha256")
        if not isinstance(sums, list):
            sums = []  # a store from before 1.3: its older chunks keep the decoded check
        names = self._array_names()
        for c in written:
            while len(sums) <= c:
                sums.append(None)
            sums[c] = {n: file_sha256(self._object_file(n, c)) for n in names}
        payload["chunk_sha256"] = sums
        payload["meta_sha256"] = {
            n: file_sha256(os.path.join(self._array_dir(n), "zarr.json")) for n in names
        }

    def stored_bytes_check(self) -> tuple[list[str], set[int]]:
        """The checksum chunks whose every array's chunk file (and ``zarr.json``) still has the
        bytes the writer hashed when it committed them: their rows are the committed rows
        without decoding. A chunk that differs (corrupted, or rewritten by a live writer since
        this manifest) is left to the decoded-row check, which decides. Files are hashed on
        every core (:func:`~rldata.stores.format.checksums.files_sha256`)."""
        payload = self._m["payload"]
        sums, metas = payload.get("chunk_sha256"), payload.get("meta_sha256")
        if not isinstance(sums, list) or not isinstance(metas, dict):
            return [], set()
        names = self._array_names()
        if not all(isinstance(metas.get(n), str) for n in names):
            return [], set()
        entries = list(self._m["checksums"]["chunks"].values())
        wanted: list[tuple[str, str | None]] = [
            (os.path.join(self._array_dir(n), "zarr.json"), metas.get(n)) for n in names
        ]
        chunks = []
        for c, entry in enumerate(sums):
            if not isinstance(entry, dict) or not any(c < len(e) and e[c][0] for e in entries):
                continue
            if not all(n in entry for n in names):
                continue
            chunks.append(c)
            wanted += [(self._object_file(n, c), entry[n]) for n in names]
        got = files_sha256(path for path, _ in wanted)
        same = [g == w for g, (_, w) in zip(got, wanted)]
        k = len(names)
        if not all(same[:k]):
            return [], set()
        return [], {c for i, c in enumerate(chunks) if all(same[k * (i + 1) : k * (i + 2)])}

    def _ndim(self, name: str) -> int:
        return 0 if name.startswith(IMPLIED + "/") else len(self._fields[name]["shape"])

    def _fsync(self, paths: set[Path]) -> None:
        fds, dirs = [], {p.parent for p in paths}
        dirs |= {d.parent for d in dirs}  # new chunk directories
        dirs |= {Path(self.root, DATA_DIR, *sch.key_tuple(n)) for n in self._fields}  # zarr.json
        dirs |= {Path(self.root, DATA_DIR, IMPLIED, k) for k in self._masks}
        try:
            for p in paths:
                with contextlib.suppress(FileNotFoundError):
                    fds.append(os.open(p, os.O_RDONLY))
            fsync_all(fds, dirs | {self.root / DATA_DIR})
        finally:
            for fd in fds:
                os.close(fd)

    def columns(self) -> dict[str, torch.Tensor] | None:
        """Flat key -> decoded rows ``[0, filled)`` (positions == row index; for gathers)."""
        if self.schema is None or self._dense is None or not self._fill_dense():
            return None
        filled = self._filled()
        return {
            k: col.to_torch(self._dense[k][:filled], e["dtype"]) for k, e in self._fields.items()
        }

    def tensordict(self) -> TensorDict | None:
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
        if filled:
            self._ensure(np.arange(self._chunk_count(filled)))
        return True


def _codec() -> BloscCodec:
    return BloscCodec(cname="zstd", clevel=ZSTD_LEVEL, shuffle=SHUFFLE, blocksize=BLOCK_BYTES)


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
