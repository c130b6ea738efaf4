"""Block digests of a zarr store (format 1.8): written with each commit, checked on read.

Before 1.8 a zarr reader hashed a whole shard (65,536 rows of one key) the first time a
read touched it: a random sample(256) of a 10M-row store touches nearly every shard, so
the first batch read and hashed the whole store (2.1 s cold at 10M rows, issue 19). An
append-only zarr store written since 1.8.0 keeps ``checksums.blocks`` as memmap and parquet
stores do (:mod:`rldata.stores.format.blocksums`): a SHA-256 per block of rows (at most
1,024) per key over the key's *decoded* rows, so the same rows in a memmap store have the
same digests. A reader then maps a shard after reading only its index (bounds-checked:
:meth:`~rldata.stores.backend._zarr_shards.Objects.accept_index`), and hashes each block
of rows the first time a read (``get``, a key's rows, ``columns``, ``rows_view``) touches it,
before serving any of it, remembered for the life of the handle. A shard index that points
elsewhere, a flipped byte, a missing shard: the block's bytes differ from its digest, and
the read is refused in one line naming the key, rows and shard. ``rldata verify`` still
hashes every shard against ``payload.chunk_sha256`` (and marks every block checked).
Rings, stores written before 1.8 and stores read through zarr (not sharded) keep the
whole-shard check (:mod:`rldata.stores.backend._zarr_checks`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from rldata.errors import CorruptStoreError
from rldata.stores.backend._zarr_cache import IMPLIED
from rldata.stores.backend._zarr_plain import ZarrPlainReads
from rldata.stores.backend._zarr_shards import StaleObjectError
from rldata.stores.format import schema as sch
from rldata.stores.format.blocksums import SIDECARS, BlockTable, BlockWriter, block_rows_for
from rldata.stores.format.checksums import file_sha256
from rldata.stores.format.commit import fsync_all

FORMAT = (1, 8, 0)
"""The format version from which append-only zarr stores keep block digests."""
AHEAD = 16
"""Most blocks checked per block a random read touches, once a handle has sampled a while:
its first read hashes only the blocks it serves (a fast first batch), each later read
twice as many aligned neighbours (up to ``AHEAD``), so a sampler that goes on has checked
the whole store after a few batches in runs of one ``pread`` a key, instead of ~80 batches
of one ``pread`` and hash a block and key (~10x the cost per byte, measured at 10M rows)."""
WINDOW = 256
"""Blocks gathered and hashed per pass of a long read: its buffers stay bounded."""


class ZarrBlocks(ZarrPlainReads):
    """Writing and checking a zarr store's block digests."""

    block_digests = True
    """New append-only stores keep a digest per block of rows (format 1.8); False writes a
    store as 1.7 did (each shard hashed whole on first read)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bw: BlockWriter | None = None  # a writer's block digests
        self._btable: BlockTable | None = None  # a reader's, checked against the manifest
        self._bchecked = np.zeros((0, 0), dtype=bool)  # [block, key] hashed and matching
        self.block_bytes_hashed = 0  # bytes this handle hashed against block digests
        self._ahead = 1  # blocks checked per block a random read touches (up to AHEAD)

    # --- writer ----------------------------------------------------------------------------
    def _new_block_writer(self) -> None:
        """A new append-only store's digests: every key (a stored-once ``next`` key too: its
        digest covers its decoded rows), blocks sized by the widest key's row."""
        if not self.block_digests or self.capacity is not None:
            return
        widest = max(sch.row_bytes(e) for e in self._fields.values())
        rows = block_rows_for(widest)
        self._bw = BlockWriter(self.root, list(self._fields), rows, None, SIDECARS["zarr"])
        found = str(self._m.get("format_version", "0.0.0")).split(".")
        if tuple(int(x) if x.isdigit() else 0 for x in found) < FORMAT:
            self._m["format_version"] = ".".join(map(str, FORMAT))

    def _resume_block_writer(self) -> None:
        """A resumed writer appends to the sidecar of a store that has one (a store written
        before 1.8 keeps none: its shards are hashed whole)."""
        entry = self._m["checksums"].get("blocks")
        if self.writable and entry is not None and self._bw is None:
            self._bw = BlockWriter(self.root, entry["keys"], entry["block_rows"], entry)

    def _extend_digests(self) -> None:
        """Digest the rows this commit adds (the commit's hook, before the payload is
        fsynced), about a chunk at a time: each window's decoded rows are gathered here
        first (the cache is not thread-safe), then hashed on every core."""
        bw = self._bw
        if bw is None:
            return
        b, end = bw.block_rows, self._end
        step = max(1, self._chunk // b) * b
        width = {k: sch.row_bytes(self._fields[k]) for k in bw.keys}
        while True:
            lo = bw.full * b  # the tail's rows are digested again with the rows after them
            hi = min(end, lo + step)
            got = {k: self._raw(k, lo, hi) for k in bw.keys}

            def read(k: str, a: int, z: int, got: dict = got, lo: int = lo) -> memoryview:
                return memoryview(got[k])[(a - lo) * width[k] : (z - lo) * width[k]]

            bw.extend(read, hi)
            if hi >= end:
                break
        self._m["checksums"]["blocks"] = bw.entry()

    def _sync_blocks(self) -> None:
        """fsync the digests a commit appended (and a new sidecar's name) before the manifest."""
        bw = self._bw
        if bw is None or not bw.dirty:
            return
        if self.durable:
            fsync_all([bw.fd], {bw.path.parent} if bw.created else set())
        bw.dirty = bw.created = False

    def close(self) -> None:
        try:
            super().close()
        finally:
            bw, self._bw = self._bw, None
            if bw is not None:
                bw.close()

    # --- reader ----------------------------------------------------------------------------
    def _lazy_blocks(self) -> bool:
        """Whether reads are checked against block digests: a reader of a sharded store that
        has them (a store read through zarr keeps the whole-shard check)."""
        return (
            not self.writable
            and self._inner is not None
            and self._m["checksums"].get("blocks") is not None
        )

    def _block_table(self) -> BlockTable:
        """The committed digests, read and checked once per manifest; blocks already checked
        stay checked across a refresh (committed full blocks never change)."""
        entry = self._m["checksums"]["blocks"]
        old = self._btable
        if old is not None and old.entry is entry:
            return old
        if list(entry["keys"]) != list(self._fields):
            raise CorruptStoreError(
                f"{self.root}: manifest field 'checksums.blocks.keys': expected the schema's "
                f"keys {list(self._fields)}, got {list(entry['keys'])}"
            )
        self._btable, self._bchecked = BlockTable.reread(self.root, entry, old, self._bchecked)
        return self._btable

    def _check_objects(self, c: int, names: list[str]) -> None:
        """With block digests, a shard is only opened and its index bounds-checked: the
        rows a read serves are checked against their digests instead of the whole file."""
        if not self._lazy_blocks():
            super()._check_objects(c, names)
            return
        for name in names:
            key = (name, c)
            if key not in self._objects:
                self._objects.accept_index(key, self._object_file(name, c), self._layouts[name])

    def _lazy_block_faults(self) -> list[str] | None:
        """What a verified open of a store with block digests checks (None: check every row
        now): each array's ``zarr.json`` and the digest sidecar against the manifest; every
        block of rows is checked the first time a read touches it (:meth:`_verify_blocks`)."""
        metas = self._m["payload"].get("meta_sha256")
        if not isinstance(metas, dict):
            return None
        for n in self._array_names():
            path = f"{self._array_dir(n)}/zarr.json"
            if not isinstance(metas.get(n), str) or file_sha256(path) != metas[n]:
                return None  # resized by a writer that did not commit: the rows decide, now
        return self.digest_file_faults()

    def digest_file_faults(self) -> list[str]:
        """The block digest sidecar against the manifest (verify hashes the shards whole)."""
        if self._m["checksums"].get("blocks") is None or self.writable:
            return []
        try:
            self._block_table()
        except CorruptStoreError as exc:
            return [str(exc)]
        return []

    def rows_proven(self) -> None:
        """Every committed row matched its checksum (a full check): reads need not hash
        their blocks again."""
        if self._lazy_blocks():
            try:
                self._block_table()
            except CorruptStoreError:  # digest_file_faults names it; reads refuse it
                return
            self._bchecked[:] = True

    def _proven_chunks(self, good: set[int]) -> None:
        """Verify found every shard of chunks ``good`` as committed: their blocks are
        checked (the pass over the rows then hashes nothing twice)."""
        if not good or not self._lazy_blocks():
            return
        try:
            table = self._block_table()
        except CorruptStoreError:  # digest_file_faults names it
            return
        ok = np.zeros(-(-self._rows // self._chunk) + 1, dtype=bool)
        ok[sorted(good)] = True
        for i in range(table.blocks):
            a, b = table.span(i)
            if ok[a // self._chunk : (b - 1) // self._chunk + 1].all():
                self._bchecked[i] = True

    def _verify_index(self, index: np.ndarray, names: list[str] | None = None) -> None:
        """Check the blocks holding rows ``index`` of ``names`` (every key when None)."""
        if index.size and self._lazy_blocks():
            table = self._block_table()
            blocks = np.unique(index // table.block_rows)
            g = self._ahead
            cols = np.array([table.keys.index(k) for k in (names or table.keys)], np.int64)
            if self._bchecked[np.ix_(blocks, cols)].all():
                return
            if g > 1:  # the aligned group of each: checked ahead of the reads to come
                blocks = np.unique((blocks // g)[:, None] * g + np.arange(g))
                blocks = blocks[blocks < table.blocks]
            self._ahead = min(AHEAD, 2 * g)
            self._verify_blocks(blocks, names)

    def _verify_span(self, start: int, stop: int, names: list[str] | None = None) -> None:
        """:meth:`_verify_index` for rows ``[start, stop)``."""
        if stop > start and self._lazy_blocks():
            b = self._block_table().block_rows
            self._verify_blocks(np.arange(start // b, (stop - 1) // b + 1), names)

    def _verify_blocks(self, blocks: np.ndarray, names: list[str] | None) -> None:
        """Hash the listed blocks of ``names`` not checked yet, a window at a time.

        Raises:
            CorruptStoreError: a block's bytes differ from its digest (one line naming the
                key, rows and shard); nothing of it was served.
        """
        table = self._block_table()
        keys = list(self._fields) if names is None else list(names)
        cols = np.array([table.keys.index(k) for k in keys], dtype=np.int64)
        if blocks.size and int(blocks[-1]) >= table.blocks:
            raise CorruptStoreError(
                f"{self.root}: rows up to {int(blocks[-1] + 1) * table.block_rows} read, block "
                f"digests cover {table.rows} rows"
            )
        todo = blocks[~self._bchecked[np.ix_(blocks, cols)].all(1)]
        for lo in range(0, len(todo), WINDOW):
            self._hash_blocks(table, todo[lo : lo + WINDOW].tolist(), keys, cols)

    def _hash_blocks(
        self, table: BlockTable, blocks: list[int], keys: list[str], cols: np.ndarray
    ) -> None:
        views = self._block_views(table, blocks, keys)
        self.block_bytes_hashed += sum(len(v) for v in views.values())
        bad = table.faults(lambda k, a, b: views[k, a], blocks, keys)
        self._bchecked[np.ix_(np.array(blocks, dtype=np.int64), cols)] = True
        if bad:
            for k, i in bad:
                self._bchecked[i, table.keys.index(k)] = False
            # a stored-once next.k is rebuilt from k's rows: name k's fault first
            k, i = min(bad, key=lambda f: (self._stored_once(f[0]) is not None, f[1]))
            a, b = table.span(i)
            c0, c1 = a // self._chunk, (b - 1) // self._chunk
            base = self._stored_once(k)
            arrays = [k] if base is None else [k, base, f"{IMPLIED}/{base}"]
            shards = ", ".join(self._object_file(n, c) for n in arrays for c in range(c0, c1 + 1))
            raise CorruptStoreError(
                f"store {self.root}: key {k!r} rows [{a}, {b}) in {shards}: sha256 does not "
                f"match its block digest; not served (rldata verify lists every fault)"
            )

    def _block_views(
        self, table: BlockTable, blocks: list[int], keys: list[str]
    ) -> dict[tuple[str, int], Any]:
        """``(key, first row) -> decoded bytes`` of each block, gathered here (the cache and
        the maps are not thread-safe): keys read in place, one slice of the mapped shard per
        run of consecutive blocks inside a chunk (no copy but a stored-once ``next`` key's
        rebuilt rows); compressed keys decoded once for every key, into the cache the read
        then uses."""
        views: dict[tuple[str, int], Any] = {}
        spans = [table.span(i) for i in blocks]
        runs: list[list[tuple[int, int]]] = []
        for a, b in spans:  # runs of consecutive blocks, each inside one chunk
            last = runs[-1][-1] if runs else None
            same = (
                last is not None
                and last[1] == a
                and runs[-1][0][0] // self._chunk == ((b - 1) // self._chunk)
            )
            if same:
                runs[-1].append((a, b))
            else:
                runs.append([(a, b)])
        plain = self._in_place_keys(keys)
        rest = [k for k in keys if k not in plain]
        try:
            for k in plain:
                width = self._layouts[k].row_bytes
                once = self._stored_once(k) is not None
                for run in runs:
                    lo, hi = run[0][0], run[-1][1]
                    c = lo // self._chunk
                    if once or (hi - 1) // self._chunk != c:  # rebuilt, or across shards
                        got = memoryview(super()._raw(k, lo, hi))
                    else:  # read from the shard (its index bounds-checked)
                        got = memoryview(self._shard_rows(k, c, lo, hi))
                    for a, b in run:
                        views[k, a] = got[(a - lo) * width : (b - lo) * width]
            if rest:
                index = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in spans])
                decoded = super()._columns_at(index, rest)
                at = 0
                for a, b in spans:
                    for k in rest:
                        rows = np.ascontiguousarray(decoded[k][at : at + b - a])
                        views[k, a] = memoryview(rows).cast("B")  # type: ignore[arg-type]
                    at += b - a
        except CorruptStoreError:
            raise
        except Exception as exc:  # an OSError reading a shard, a codec's error
            raise CorruptStoreError(
                f"{self.root}: rows of blocks {blocks[0]}..{blocks[-1]} do not read "
                f"({type(exc).__name__})"
            ) from None
        return views

    def _shard_rows(self, name: str, c: int, a: int, b: int) -> bytes:
        """Stored bytes of rows ``[a, b)`` of raw array ``name`` inside chunk ``c``."""
        path, lay, at = self._object_file(name, c), self._layouts[name], c * self._chunk
        for _ in range(2):
            self._check_objects(c, [name])
            try:
                return self._objects.rows((name, c), path, lay, a - at, b - at)
            except StaleObjectError:
                continue  # replaced since it was opened: open the new file
        raise CorruptStoreError(f"{path}: the object keeps changing while being read")

    def _stored_once(self, key: str) -> str | None:
        """``k`` when ``key`` is a ``next.k`` stored once (rebuilt from ``k``'s rows)."""
        base = key[len("next.") :] if key.startswith("next.") else None
        return base if base in self._masks else None

    # --- reads, each checked before it is served --------------------------------------------
    def _read(self, positions: torch.Tensor) -> TensorDict:
        self._verify_index(positions.numpy())
        return super()._read(positions)

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        self._verify_index(positions.numpy(), [name])
        return super()._read_key(name, positions)

    def columns(self) -> dict[str, torch.Tensor] | None:
        got = super().columns()
        if got is not None:
            self._verify_span(0, self._filled())  # handed out whole: checked whole
        return got

    def rows_view(self) -> TensorDict | None:
        if self._lazy_blocks() and self._dense is not None and not self.writable:
            # a store that fits the cache: copied whole now (a sampler asks once; later
            # batches gather from the view at ~4x the rate of get())
            super()._fill_dense_in_place()
        got = super().rows_view()
        if got is not None:
            self._verify_span(0, self._filled())
        return got
