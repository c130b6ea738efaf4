"""Block digests of a parquet store (format 1.7): written with each commit, checked on read.

A parquet store written since 1.7.0 keeps ``checksums.blocks`` as memmap's does
(:mod:`rldata.stores.format.blocksums`): a SHA-256 per block of rows per key over the key's
decoded row bytes, so a reader no longer hashes a whole part file before serving one row
of it. A reader hashes each block the first time a read touches it, before serving a byte
of it, and remembers it for the life of the handle: in PLAIN parts the block's bytes in the
page (no copy, :meth:`PlainPart.span_bytes`), elsewhere the block's decoded rows (the row
groups a sample decodes anyway). The footer and page headers are still bounds-checked, but
no longer hashed: a footer that points elsewhere serves bytes that fail their digest, so
the read is refused in one line naming the path and key. Mixed into
:class:`rldata.stores.backend._parquet.ParquetStore`; stores without block digests (before
1.7) keep hashing each part whole on first read (:mod:`._parquet_checks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rldata.errors import CorruptStoreError
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import schema as sch
from rldata.stores.format.append_blocks import AppendBlockWriter
from rldata.stores.format.append_sha256 import RunningSha256
from rldata.stores.format.blocksums import SIDECARS, BlockTable, BlockWriter, block_rows_for
from rldata.stores.format.commit import fsync_all

if TYPE_CHECKING:
    from rldata.stores.backend._parquet_groups import RowGroups

WINDOW = 256
"""Blocks hashed per pass of a long read: its buffers stay bounded (~16 MiB a key)."""


class ParquetBlocks:
    """Writing and checking a parquet store's block digests."""

    root: Path
    writable: bool
    durable: bool
    schema: Any
    _m: dict
    _fields: dict[str, dict]
    _groups: RowGroups
    _end: int

    if TYPE_CHECKING:

        def _span(
            self, start: int, stop: int, names: list[str], scan: bool = False
        ) -> dict[str, np.ndarray]: ...

    block_digests = True
    """New stores keep a digest per block of rows (format 1.7); False writes a store as 1.6
    did (each part hashed whole on first read)."""

    resumes_from_tails = True
    """An append open of a store with block digests checks only what the writer extends
    (:mod:`rldata.stores.backend.append_open`); reads check the older blocks."""

    def _init_blocks(self) -> None:
        self._bw: BlockWriter | None = None  # a writer's block digests
        self._btable: BlockTable | None = None  # a reader's, checked against the manifest
        self._bchecked = np.zeros((0, 0), dtype=bool)  # [block, key] hashed and matching
        self.block_bytes_hashed = 0  # bytes this handle hashed against block digests

    # --- writer ----------------------------------------------------------------------------
    def _new_block_writer(self) -> None:
        """A new store's digests: every key (a ``next`` column stored once too: its digest
        covers its decoded rows), blocks sized by the widest key's row."""
        if not self.block_digests:
            return
        widest = max(sch.row_bytes(e) for e in self._fields.values())
        rows = block_rows_for(widest)
        self._bw = AppendBlockWriter(self.root, list(self._fields), rows, None, SIDECARS["parquet"])

    def _resume_block_writer(self) -> None:
        """A resumed writer appends to the sidecar of a store that has one (one written
        before 1.7 keeps none: its parts are hashed whole)."""
        entry = self._m["checksums"].get("blocks")
        if entry is not None and self._bw is None:
            # resumed from the recorded hash state, not by hashing every committed digest
            state = appended.file_state(self._m, entry["path"])
            self._bw = AppendBlockWriter(
                self.root, entry["keys"], entry["block_rows"], entry, state=state
            )

    def _appended_hashes(self) -> dict[str, RunningSha256]:
        out: dict[str, RunningSha256] = super()._appended_hashes()  # type: ignore[misc]
        if isinstance(self._bw, AppendBlockWriter):
            out[self._bw.rel] = self._bw.hash
        return out

    def _extend_digests(self) -> None:
        if self._bw is not None:
            self._bw.extend(self._digest_rows, self._end)
            self._m["checksums"]["blocks"] = self._bw.entry()

    def _digest_rows(self, key: str, start: int, stop: int) -> memoryview:
        """A key's decoded rows ``[start, stop)`` as little-endian bytes (what a digest covers)."""
        a = self._span(start, stop, [key])[key]
        return memoryview(np.ascontiguousarray(a)).cast("B")  # type: ignore[arg-type]

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
            super().close()  # type: ignore[misc]
        finally:
            bw, self._bw = getattr(self, "_bw", None), None
            if bw is not None:
                bw.close()

    # --- reader ----------------------------------------------------------------------------
    def _lazy_blocks(self) -> bool:
        """Whether reads are checked against block digests (a reader of a store with them)."""
        return not self.writable and self._m["checksums"].get("blocks") is not None

    def _block_table(self) -> BlockTable:
        """The committed digests, read and checked once per manifest; blocks already checked
        stay checked across a refresh (committed full blocks never change)."""
        entry = self._m["checksums"]["blocks"]
        old = self._btable
        if old is not None and old.entry is entry:
            return old
        if set(entry["keys"]) != set(self._fields):
            raise CorruptStoreError(
                f"{self.root}: manifest field 'checksums.blocks.keys': expected every schema "
                f"key {sorted(self._fields)}, got {sorted(entry['keys'])}"
            )
        self._btable, self._bchecked = BlockTable.reread(self.root, entry, old, self._bchecked)
        return self._btable

    def digest_file_faults(self) -> list[str]:
        """The block digest sidecar against the manifest (verify hashes the parts whole)."""
        if self._m["checksums"].get("blocks") is None:
            return []
        try:
            self._block_table()
        except CorruptStoreError as exc:
            return [str(exc)]
        return []

    def rows_proven(self) -> None:
        """Every part matched its SHA-256 (a full check): reads need not hash blocks again."""
        if self._lazy_blocks():
            try:
                self._block_table()
            except CorruptStoreError:  # digest_file_faults names it; reads refuse it
                return
            self._bchecked[:] = True

    def _verify_index(self, index: np.ndarray, names: list[str]) -> None:
        """Check the blocks holding rows ``index`` of ``names`` before they are served."""
        if index.size and self._lazy_blocks():
            b = self._block_table().block_rows
            self._verify_blocks(np.unique(index // b), names)

    def _verify_index_rows(self, index: np.ndarray, names: list[str]) -> None:
        """Check the blocks of rows ``index`` before they are read. In-place parts take
        value offsets from their footers (no page header read); where those blocks fail,
        every header is read and they are checked again, and refused if they still fail."""
        try:
            self._verify_index(index, names)
        except CorruptStoreError:
            if not self._groups.check_headers():
                raise
            self._verify_index(index, names)

    def _verify_span(self, start: int, stop: int, names: list[str]) -> None:
        """:meth:`_verify_index` for rows ``[start, stop)``."""
        if stop > start and self._lazy_blocks():
            b = self._block_table().block_rows
            self._verify_blocks(np.arange(start // b, (stop - 1) // b + 1), names)

    def _verify_blocks(self, blocks: np.ndarray, names: list[str]) -> None:
        """Hash the listed blocks of ``names`` not checked yet, a window at a time.

        Raises:
            CorruptStoreError: a block's bytes differ from its digest (one line naming the
                key, rows and parts); nothing of it was served.
        """
        table = self._block_table()
        cols = [table.keys.index(k) for k in names]
        if blocks.size and int(blocks[-1]) >= table.blocks:
            raise CorruptStoreError(
                f"{self.root}: rows up to {int(blocks[-1] + 1) * table.block_rows} read, block "
                f"digests cover {table.rows} rows"
            )
        todo = blocks[~self._bchecked[np.ix_(blocks, np.array(cols, dtype=np.int64))].all(1)]
        for lo in range(0, len(todo), WINDOW):
            self._hash_blocks(table, todo[lo : lo + WINDOW].tolist(), names, cols)

    def _hash_blocks(self, table: BlockTable, blocks: list[int], names: list[str], cols) -> None:
        views = self._block_views(table, blocks, names)
        self.block_bytes_hashed += sum(len(v) for v in views.values())
        bad = table.faults(lambda k, a, b: views[k, a], blocks, names)
        for c in cols:
            self._bchecked[blocks, c] = True
        if bad:
            for k, i in bad:
                self._bchecked[i, table.keys.index(k)] = False
            k, i = bad[0]
            a, b = table.span(i)
            parts = [
                p["path"]
                for p in self._m["payload"]["parts"]
                if p["start"] < b and a < p["start"] + p["rows"]
            ]
            raise CorruptStoreError(
                f"store {self.root}: key {k!r} rows [{a}, {b}) in {', '.join(parts)}: sha256 "
                f"does not match its block digest; not served (rldata verify lists every fault)"
            )

    def _block_views(
        self, table: BlockTable, blocks: list[int], names: list[str]
    ) -> dict[tuple[str, int], memoryview]:
        """``(key, first row) -> bytes`` of each block: in place in a PLAIN page where the
        block lies in one row group, else from one gather of the remaining blocks' rows."""
        views: dict[tuple[str, int], memoryview] = {}
        rest: list[tuple[int, int]] = []
        for i in blocks:
            a, b = table.span(i)
            where = self._groups.plain_span(a, b)
            missing = False
            for k in names:
                got = None if where is None else where[0].span_bytes(k, where[1], where[2])
                if got is None:
                    missing = True
                else:
                    views[k, a] = got
            if missing:
                rest.append((a, b))
        if rest:
            index = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in rest])
            keys = [k for k in names if any((k, a) not in views for a, _ in rest)]
            decoded = self._groups.gather(index, keys)
            at = 0
            for a, b in rest:
                for k in keys:
                    if (k, a) not in views:
                        rows = np.ascontiguousarray(decoded[k][at : at + b - a])
                        views[k, a] = memoryview(rows).cast("B")  # type: ignore[arg-type]
                at += b - a
        return views
