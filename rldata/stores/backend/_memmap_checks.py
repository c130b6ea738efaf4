"""Checks of the memmap payload: its directory's entries, and verifying on read (format 1.4).

A verified open of a store with block digests checks its files (:meth:`BlockChecks.
lazy_faults`); each block of rows is then hashed the first time a read touches it, before a
byte of it is served (:meth:`BlockChecks._verify_rows`, the :class:`~rldata.stores.backend.
rows.RowTable` hook), and remembered for the life of the handle and, for a local store, in
this user's proof record (:mod:`rldata.stores.backend._proofs`), so the next handle of the
unchanged store does not hash them again. Mixed into
:class:`rldata.stores.backend._memmap_read.MemmapFiles`, whose files and reads it checks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError
from rldata.stores.backend._proofs import ProofRecord
from rldata.stores.format import schema as sch
from rldata.stores.format.blocksums import BlockTable
from rldata.stores.format.checksums import sha256_hex
from rldata.stores.format.files import is_temp

DATA_DIR = "data"
POS_BYTES = 8  # each explicit next record starts with its row position, int64 little-endian


class BlockChecks:
    """Verifying on read and the payload directory's checks, for a memmap row store."""

    # provided by the store this is mixed into
    root: Path
    writable: bool
    schema: Any
    _m: dict
    _xpos: dict
    _fields: dict
    _lazy: BlockTable | None
    _checked: np.ndarray
    _key_checked: np.ndarray
    _unchecked: int
    _inodes: dict[str, tuple[int, int]]
    _proofs: ProofRecord | None = None  # this handle's proof record (local stores)
    _unsaved = 0  # blocks checked since the record was last written

    if TYPE_CHECKING:  # the store's own methods (stubs here would shadow them at run time)

        def _explicit(self, k: str) -> np.ndarray | None: ...
        def _late(self) -> set[str]: ...
        def _raw(self, name: str, start: int, stop: int) -> memoryview: ...
        def _file(self, name: str) -> Path: ...
        def _td_meta(self, filled: int) -> dict[Path, dict]: ...
        def _filled(self) -> int: ...
        def _once(self) -> list[str]: ...
        def _once_rows(self, once: list[str]) -> dict[str, int]: ...

    def _check_payload(self) -> None:
        """The manifest's payload lists one distinct file inside the store per schema key, each
        holding at least the committed rows (a short file is corruption, never zero-filled)."""
        files = self._m["payload"].get("files")
        if not isinstance(files, dict) or set(files) != set(self._fields):
            got = sorted(files) if isinstance(files, dict) else files
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.files': expected one file per schema key "
                f"{sorted(self._fields)}, got {got}"
            )
        if len(set(files.values())) != len(files):
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.files' names a file twice"
            )
        once = self._once()
        counts = self._once_rows(once)
        filled = self._filled()
        for name, entry in self._fields.items():
            path = self._file(name)
            k = name[len("next.") :] if name.startswith("next.") else None
            if k in once:
                rows, need = counts[k], counts[k] * (POS_BYTES + sch.row_bytes(entry))
                what = f"explicit next rows of key {name!r}"
            else:
                rows, need = filled, filled * sch.row_bytes(entry)
                what = f"committed rows of key {name!r}"
            try:
                size = path.stat().st_size
            except (FileNotFoundError, NotADirectoryError):  # a folder above it is not one
                raise CorruptStoreError(
                    f"{path}: payload file of key {name!r} is missing ({rows} {what})"
                ) from None
            except OSError as err:  # a symlink loop, a name too long, ...
                raise CorruptStoreError(
                    f"{path}: payload file of key {name!r} cannot be read ({err.strerror})"
                ) from None
            if not path.is_file():
                raise CorruptStoreError(f"{path}: payload of key {name!r} is not a regular file")
            if size < need:
                raise CorruptStoreError(
                    f"{path}: expected at least {need} bytes for {rows} {what}, found {size} "
                    f"(truncated)"
                )

    def lazy_faults(self) -> list[str] | None:
        """What a verified open checks when the store has block digests (None: it has none,
        check every row now): the sidecar against the manifest, and the stored-once keys'
        explicit records against theirs. With no fault, every later read checks the blocks
        it touches before serving them (:meth:`_check_blocks`)."""
        entry = self._m["checksums"].get("blocks")
        if entry is None or self.writable or self.schema is None:
            return None
        want = self._m["payload"].get("next_once_sha256", {})
        if not isinstance(want, dict) or not set(self._xpos) <= set(want):
            return None  # records without their sum: their rows are checked now
        faults = [
            f"{self.root}: explicit next rows of key 'next.{k}' in "
            f"{self._m['payload']['files'][f'next.{k}']}: sha256 does not match the manifest"
            for k in self._xpos
            if want[k] != sha256_hex(_record_bytes(self._explicit(k)))
        ]
        if not faults:
            try:
                self._arm(None)
            except CorruptStoreError as exc:
                faults.append(str(exc))
        return faults

    def digest_file_faults(self) -> list[str]:
        """The block digest sidecar against the manifest (a full check hashes the rows
        against the section-7 chunks; the digests are checked on read)."""
        try:
            self._block_table()
        except CorruptStoreError as exc:
            return [str(exc)]
        return []

    def _block_table(self) -> BlockTable | None:
        """The committed block digests, checked against the manifest (None: the store has
        none); a store whose payload lives elsewhere fetches the sidecar its own way."""
        entry = self._m["checksums"].get("blocks")
        return None if entry is None else BlockTable.read(self.root, entry)

    def _arm(self, before: BlockTable | None) -> None:
        """Read the committed block digests; blocks ``before`` checked stay checked where
        their digest is unchanged (committed full blocks never change)."""
        table = self._block_table()
        assert table is not None  # armed only for a store with block digests
        by_key = np.zeros((table.blocks, len(table.keys)), dtype=bool)
        if before is not None and before.keys == table.keys:
            keep = min(before.full, table.full)
            by_key[:keep] = self._key_checked[:keep]
        self._proofs = self._proof_record(table)
        proven = self._proofs.load() if self._proofs is not None else None
        if proven is not None:
            by_key |= proven
        self._lazy, self._key_checked, self._unsaved = table, by_key, 0
        self._checked = np.asarray(by_key.all(1))
        self._unchecked = int(table.blocks - self._checked.sum())

    def _proof_record(self, table: BlockTable) -> ProofRecord | None:
        """The proof record of this handle's files (None: a store whose payload is not
        local files, or a file this handle did not map)."""
        if type(self)._block_table is not BlockChecks._block_table:
            return None  # a remote store: its rows come from the chunk cache, checked there
        files = {k: self._file(k) for k in table.keys}
        record = ProofRecord(self.root, self._m, files, (table.blocks, len(table.keys)))
        for k, ident in record.identities.items():
            mapped = self._inodes.get(k)
            if ident is None or (mapped is not None and tuple(ident[:2]) != mapped):
                return None  # the path names another file than the one read
        return record

    def _save_proofs(self, force: bool = False) -> None:
        """Write what this handle proved to its record: after each 5% of the store's blocks
        (a killed process loses little), and once every block is checked."""
        record, table = self._proofs, self._lazy
        if record is None or table is None or not self._unsaved:
            return
        if force or not self._unchecked or self._unsaved * 20 >= max(table.blocks, 1):
            record.save(self._key_checked)
            self._unsaved = 0

    def _verify_rows(self, name: str | None, start: int, stop: int) -> None:
        """Check, before they are served, the stored bytes rows ``[start, stop)`` are read
        from (every key when ``name`` is None); each block of a key is hashed once a handle.

        The backend hook for verifying on read: a store that checked everything at open
        (or a writer, whose rows are its own) does nothing.

        Raises:
            CorruptStoreError: a block's bytes differ from its digest (one line naming the
                key, the rows and the file); nothing of it was served.
        """
        table = self._lazy
        if not self._unchecked or stop <= start or table is None:
            return
        key = None if name is None else self._block_key(name)
        if key is None or key != name:  # next.k of the last row reads k one row later
            stop = min(stop + (1 if self._xpos else 0), table.rows)
        b = table.block_rows
        blocks = np.arange(start // b, (stop - 1) // b + 1)
        self._check_blocks(blocks, key)

    def _block_key(self, name: str) -> str:
        """The key whose blocks hold ``name``'s bytes (a stored-once ``next.k``: ``k``)."""
        return name[len("next.") :] if name in self._late() else name

    def _verify_positions(self, positions: torch.Tensor, name: str | None = None) -> None:
        """:meth:`_verify_rows` for the rows at ``positions`` (a few microseconds once their
        blocks are checked)."""
        if not self._unchecked or positions.numel() == 0:
            return
        table = self._lazy
        assert table is not None
        p = positions.numpy()
        blocks = p // table.block_rows
        key = None if name is None else self._block_key(name)
        if self._xpos and (key is None or key != name):
            nxt = np.minimum(p + 1, table.rows - 1) // table.block_rows
            blocks = np.concatenate([blocks, nxt])
        if not self._checked[blocks].all():
            self._check_blocks(np.unique(blocks), key)

    def rows_proven(self) -> None:
        """Every committed row matched its section-7 chunk checksum (a full check): reads
        need not hash their blocks again."""
        if self._lazy is None:  # a full check of a handle not armed: record it all
            entry = self._m["checksums"].get("blocks")
            if entry is None or self.writable or self.schema is None:
                return
            try:
                self._arm(None)
            except CorruptStoreError:
                return
        self._key_checked[:] = True
        self._checked[:] = True
        self._unchecked = 0
        self._unsaved = max(self._unsaved, 1)
        self._save_proofs(force=True)

    def _verify_all(self, name: str | None = None) -> None:
        """Every block (of key ``name``, or of every key), before a whole column is handed out."""
        if self._unchecked:
            self._check_blocks(np.arange(len(self._checked)), name and self._block_key(name))

    def _check_blocks(self, blocks: np.ndarray, key: str | None = None) -> None:
        """Hash the blocks' bytes of ``key`` (every key when None) not checked yet."""
        table = self._lazy
        if table is None or not blocks.size:
            return
        cols = (
            slice(None)
            if key is None or key not in table.keys
            else slice(table.keys.index(key), table.keys.index(key) + 1)
        )
        todo = blocks[~self._key_checked[blocks, cols].all(1)]
        if not todo.size:
            return
        keys = table.keys[cols]
        bad = table.faults(self._raw, todo.tolist(), keys)
        self._key_checked[todo, cols] = True
        for k, i in bad:
            self._key_checked[i, table.keys.index(k)] = False
        now = self._key_checked[todo].all(1)
        self._unchecked -= int((now & ~self._checked[todo]).sum())
        self._checked[todo] = now
        self._unsaved += len(todo) - len(bad)
        self._save_proofs()
        if bad:
            k, i = bad[0]
            a, b = table.span(i)
            raise CorruptStoreError(
                f"store {self.root}: key {k!r} rows [{a}, {b}) in "
                f"{self._m['payload']['files'][k]}: sha256 does not match its block digest; "
                f"not served (rldata verify lists every fault)"
            )

    def payload_faults(self) -> list[str]:
        """Entries of the payload directory that the manifest does not account for.

        ``TensorDict.load_memmap`` follows ``meta.json`` files and unpickles non-tensor
        entries, so a planted file or a ``meta.json`` that differs from what this store
        writes (other than its row count, which lags a crash) is a fault, not a curiosity.
        """
        if self.schema is None:
            return []
        listed = {self._file(n) for n in self._fields}
        if self._m["checksums"].get("blocks") is not None:
            listed.add(self.root / self._m["checksums"]["blocks"]["path"])
        expected = self._td_meta(self._filled())
        faults = []
        for dirpath, _dirs, names in os.walk(self.root / DATA_DIR):
            for name in sorted(names):
                path = Path(dirpath) / name
                rel = path.relative_to(self.root).as_posix()
                if is_temp(name) or path in listed:
                    continue
                if path not in expected:
                    faults.append(f"{self.root}: payload entry {rel} is not listed by the manifest")
                elif _meta_shape_free(path) != _shape_free(expected[path]):
                    faults.append(
                        f"{self.root}: {rel} differs from the tensordict metadata of the schema"
                    )
        return faults


def _shape_free(meta: object) -> object:
    """``meta`` without row counts (the first entry of every ``shape``)."""
    if isinstance(meta, dict):
        return {
            k: (v[1:] if k == "shape" and isinstance(v, list) else _shape_free(v))
            for k, v in meta.items()
        }
    return meta


def _meta_shape_free(path: Path) -> object:
    try:
        return _shape_free(untrusted.read_json(path, "memmap metadata"))
    except (OSError, ValueError):
        return None


def _record_bytes(recs: np.ndarray | None) -> memoryview | bytes:
    """The bytes of explicit next-row records as stored (none: empty)."""
    if recs is None or not len(recs):
        return b""
    return memoryview(np.ascontiguousarray(recs)).cast("B")  # type: ignore[arg-type]
