"""The zarr backend: one zarr v3 array per key, chunked along rows and sharded.

Layout under the store directory (see ``docs/FORMAT.md``)::

    data/zarr.json                      the zarr group
    data/observation/zarr.json          array of key "observation", shape [rows, *shape]
    data/observation/c/<chunk>/0        one shard: ``chunk_rows`` rows in inner chunks
    data/next/reward/...                nested keys are nested groups

A zarr shard (an unsharded chunk in stores created before issue 19) is exactly one
checksum chunk of the manifest (``checksums.chunk_rows`` rows), so a commit rewrites only
the shards it touched and lists them in ``payload.chunks_written``; readers decode the
shard's small inner chunks (``payload.inner_rows`` rows, lz4), read by byte range
(:mod:`rldata.stores.backend._zarr_shards`), or, for the keys stored uncompressed (every
key but ``uint8`` ones by default: :func:`compressed`), copy a sample's rows straight out
of the checked shard (:mod:`rldata.stores.backend._zarr_plain`). Chunk files are replaced atomically (zarr writes a
temporary file and renames it) and fsynced before the manifest, so a crash leaves
either the old or the new chunk, and both hold every committed row.

Reads never decode a chunk per row: rows are gathered from decoded chunks, held in one
dense array per key when the decoded store fits ``CACHE_BYTES`` (one ``np.take`` per key
per batch), else in a least-recently-used set of chunks of that total size.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

import numpy as np
import torch
import zarr
from zarr.codecs import BloscCodec

from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._zarr_blocks import ZarrBlocks
from rldata.stores.backend._zarr_cache import DATA_DIR, IMPLIED
from rldata.stores.backend._zarr_write import encode_shard, put_shard
from rldata.stores.format import schema as sch
from rldata.stores.format.checksums import file_sha256, files_sha256
from rldata.stores.format.commit import fsync_all

ZSTD_LEVEL = 3
# sharded stores compress each small inner chunk with lz4: blosc's zstd costs ~5x more a
# decode at 8 KiB (a context per call), for ~2% smaller floats (measured, issue 19)
LZ4_LEVEL = 5
# bit shuffle: smaller and faster than byte shuffle on float rows, measured (format 1.3.0)
SHUFFLE: Final = "bitshuffle"
BLOCK_BYTES = 1 << 18  # blosc blocks of 256 KiB: zstd sees more context than blosc's default
# decoded bytes of one inner chunk of the widest key: a random row's whole decode (a shard
# of a checksum chunk holds many, each compressed alone and read by byte range)
INNER_BYTES = 16 << 10
SHARDED = True  # False writes the layout of stores before format 1.4 (one file a chunk; tests)


class ZarrStore(ZarrBlocks):
    """A store whose payload is a zarr v3 group (chunked, compressed; rings supported)."""

    supports_random_read = True
    supports_overwrite_rings = True

    def _init_payload(self) -> None:
        rows = self.capacity if self.capacity is not None else 0
        group = zarr.open_group(store=self._group_store(), mode="w", zarr_format=3)
        files = {}
        widest = max(sch.row_bytes(e) for e in self._fields.values())
        inner = inner_rows(self._chunk, widest) if SHARDED else self._chunk
        for name, e in self._fields.items():
            *parents, leaf = sch.key_tuple(name)
            node = group
            for part in parents:
                node = node.require_group(part)
            self._arrays[name] = node.create_array(
                leaf,
                shape=(rows, *e["shape"]),
                chunks=(inner, *[max(1, d) for d in e["shape"]]),
                shards=(self._chunk, *[max(1, d) for d in e["shape"]]) if SHARDED else None,
                dtype=col.np_dtype(e["dtype"]),
                compressors=_codec(SHARDED) if compressed(e["dtype"]) else None,
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
                chunks=(inner,),
                shards=(self._chunk,) if SHARDED else None,
                dtype=bool,
                compressors=_codec(SHARDED) if compressed("bool") else None,
                fill_value=False,
            )
        self._rows = rows
        self._find_layouts()
        self._m["payload"] = {
            "dir": DATA_DIR,
            "format": "zarr",
            "zarr_format": 3,
            "codec": {
                "name": "blosc",
                "cname": "lz4" if SHARDED else "zstd",
                "clevel": LZ4_LEVEL if SHARDED else ZSTD_LEVEL,
                "shuffle": SHUFFLE,
                "blocksize": BLOCK_BYTES,
            },
            "files": files,
            "inner_rows": inner,  # rows of a shard's inner chunk: one random row's decode
            # arrays whose inner chunks are stored uncompressed (read in place: _zarr_plain)
            "uncompressed": [n for n, lay in self._layouts.items() if lay.plain],
            "rows": rows,
            "chunks_written": [],
            "next_stored_once": once,
        }
        self._reset_cache(rows)
        self._new_block_writer()  # append-only stores: a digest per block of rows (1.8)

    def _attach_payload(self) -> None:
        super()._attach_payload()
        self._resume_block_writer()

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

    def _flush(self, filled: int) -> None:
        need = filled if self.capacity is None else self.capacity
        if need > self._rows:
            for arr in [*self._arrays.values(), *self._masks.values()]:
                arr.resize((need, *arr.shape[1:]))
            self._rows = need
        written = sorted(self._dirty)
        paths: set[Path] = set()
        sums: dict[tuple[str, int], str | None] = {}
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
            arrays = {**self._arrays, **{f"{IMPLIED}/{k}": m for k, m in self._masks.items()}}
            for name, arr in arrays.items():
                rows = block[name]
                if name in late:
                    rows = rows.copy()
                    rows[block[f"{IMPLIED}/{name[len('next.') :]}"]] = 0  # zeros cost ~nothing
                path = self._object_file(name, c)
                lay = self._layouts.get(name)
                if lay is not None:  # a shard encoded here: zarr's pipeline is ~10x slower
                    sums[(name, c)] = put_shard(path, encode_shard(rows, lay))
                else:
                    arr[a:b] = rows
                paths.add(Path(path))
        if self.durable and paths:
            self._fsync(paths)
        self._sync_blocks()  # the digests _extend_digests appended, before the manifest
        self._dirty.clear()
        payload = self._m["payload"]
        payload["rows"] = self._rows
        payload["chunks_written"] = written
        self._record_object_sums(written, sums)

    def _record_object_sums(
        self, written: list[int], known: dict[tuple[str, int], str | None]
    ) -> None:
        """SHA-256 of the bytes of each chunk file this commit wrote (null: zarr stored no file,
        the chunk is all fill value; ``known``: shards hashed as they were encoded) and of every
        array's ``zarr.json``, so readers can check what is stored without decoding it
        (:meth:`stored_bytes_check`)."""
        payload = self._m["payload"]
        sums = payload.get("chunk_sha256")
        if not isinstance(sums, list):
            sums = []  # a store from before 1.3: its older chunks keep the decoded check
        names = self._array_names()
        self._objects.drop(written)  # rewritten: what this handle checked is stale
        for c in written:
            while len(sums) <= c:
                sums.append(None)
            sums[c] = {
                n: known[(n, c)] if (n, c) in known else file_sha256(self._object_file(n, c))
                for n in names
            }
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
        good, faults = set(), []
        for i, c in enumerate(chunks):
            flags = same[k * (i + 1) : k * (i + 2)]
            if all(flags):
                good.add(c)
                continue
            try:  # rewritten by a live writer (its rows still pass), or damaged: say which
                self._vouch(c, names[flags.index(False)])
            except CorruptStoreError as exc:
                faults.append(str(exc))
        self._proven_chunks(good)  # format 1.8: their blocks need no hashing on read
        return faults, good

    def lazy_faults(self) -> list[str] | None:
        """What a verified open checks now (None: check every row now, as for a store whose
        committed chunks do not all carry their objects' SHA-256, from before format 1.3):
        each array's ``zarr.json``. Every chunk or shard file is checked against the manifest
        the first time a read decodes it (:meth:`_check_objects`); ``rldata verify`` checks
        them all."""
        if self.writable or self.schema is None:
            return None
        if self._lazy_blocks():  # format 1.8: the digest sidecar, then blocks on read
            return self._lazy_block_faults()
        payload = self._m["payload"]
        sums, metas = payload.get("chunk_sha256"), payload.get("meta_sha256")
        names = self._array_names()
        if not isinstance(sums, list) or not isinstance(metas, dict):
            return None
        for entries in self._m["checksums"]["chunks"].values():
            for c, (n, _) in enumerate(entries):
                if n and not (
                    c < len(sums) and isinstance(sums[c], dict) and set(names) <= set(sums[c])
                ):
                    return None  # a chunk committed before 1.3: its rows are checked now
        for n in names:
            path = os.path.join(self._array_dir(n), "zarr.json")
            if not isinstance(metas.get(n), str) or file_sha256(path) != metas[n]:
                return None  # resized by a writer that did not commit: the rows decide, now
        return []

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


def inner_rows(chunk_rows: int, widest_row_bytes: int) -> int:
    """Rows of a shard's inner chunk: about ``INNER_BYTES`` of the widest key, dividing
    ``chunk_rows`` (zarr requires a shard to hold whole inner chunks)."""
    target = max(1, min(chunk_rows, INNER_BYTES // max(1, widest_row_bytes)))
    return next(d for d in range(target, 0, -1) if chunk_rows % d == 0)


def compressed(dtype: str) -> bool:
    """Whether a new sharded store blosc-compresses the inner chunks of a key of ``dtype``
    (``RLDATA_ZARR_COMPRESSION``, read at create): ``auto`` (default) only ``uint8`` keys,
    pixels, which shrink several-fold and whose row is a whole inner chunk (its decode is
    paid once a row anyway); every other key stores raw bytes, so a replay sample copies
    its rows in place instead of decoding an inner chunk a row and key. ``lz4``: every
    key compressed (smaller, for archives read in order); ``none``: no key compressed.
    Stores created before format 1.4 (``SHARDED`` False) always compress.

    Raises:
        ConfigError: the variable holds another value.
    """
    mode = os.environ.get("RLDATA_ZARR_COMPRESSION", "").strip() or "auto"
    if mode not in ("auto", "lz4", "none"):
        raise ConfigError(
            f"environment variable RLDATA_ZARR_COMPRESSION must be auto, lz4 or none, "
            f"got {mode[:40]!r}"
        )
    if not SHARDED or mode == "lz4":
        return True
    return mode == "auto" and dtype == "uint8"


def _codec(sharded: bool) -> BloscCodec:
    """Blosc with bit shuffle: lz4 for a shard's small inner chunks, zstd for whole chunks."""
    if sharded:
        return BloscCodec(cname="lz4", clevel=LZ4_LEVEL, shuffle=SHUFFLE, blocksize=BLOCK_BYTES)
    return BloscCodec(cname="zstd", clevel=ZSTD_LEVEL, shuffle=SHUFFLE, blocksize=BLOCK_BYTES)
