"""Block digests (format 1.4 memmap, 1.7 parquet, 1.8 zarr): a SHA-256 per block of rows of
each key, so a reader checks only the rows it reads.

A store's section-7 checksums cover chunks of up to 65,536 rows: a random sample(256) of a
30M-row store would hash ~256 chunks (4 GB) to check them. Block digests cover blocks of
``block_rows`` rows (at most 64 KiB of the widest key, at most 1,024 rows), kept as raw
32-byte digests in one binary sidecar that commits only append to, so opening a store checks
the small sidecar (its SHA-256 is in the manifest) and a read hashes the blocks it touches.

**Layout.** The manifest's ``checksums.blocks`` (append-only memmap stores since 1.4.0,
append-only parquet stores since 1.7.0, append-only zarr stores since 1.8.0; absent or null
elsewhere) is::

    {"path": "data/blocks.sha256", "block_rows": B, "keys": [k0, k1, ...],
     "blocks": n, "sha256": hex, "tail": null | {"rows": r, "sha256": {key: hex}}}

``path`` is the backend's (:data:`SIDECARS`: parquet's ``data/_blocks.sha256`` is skipped
by pyarrow datasets, so ``data/`` still reads as a directory of parts; zarr's sits in the
zarr group's directory, where zarr reads only ``zarr.json`` files and chunk keys).

**What a digest covers, whatever the backend.** The SHA-256 of the key's *decoded* rows at
the block's positions, row after row, each row's elements in C order as little-endian
values of its dtype (a bool one byte): memmap's file bytes for those rows, and what a
parquet or zarr reader decodes (or finds in a PLAIN page or an uncompressed shard) for them.
Stores of the same rows and ``B`` share every digest of the keys both list (memmap leaves
out a stored-once ``next.k``; parquet and zarr list every key, a ``next.k`` digest covering
its decoded rows, next values implied by the next row's observation filled in).

Block ``i`` holds row positions ``[i*B, (i+1)*B)``. ``keys`` are the keys with a row-indexed
payload file, in order (a stored-once ``next.k`` has none: it is rebuilt from ``k``'s rows
and its explicit records, which ``payload.next_once_sha256`` covers). The sidecar holds the
digests of the ``n`` full blocks, block-major: the digest of key ``keys[j]`` in block ``i``
is bytes ``[(i*K + j) * 32, (i*K + j) * 32 + 32)`` of the file, ``K = len(keys)``. ``sha256``
is the SHA-256 of the first ``n*K*32`` bytes (the file may be longer: records a crashed
writer appended but never committed; they are ignored and overwritten). The rows after the
full blocks, ``[n*B, n*B + r)``, are the *tail*; their digests are in the manifest, hex. The
full blocks plus the tail cover exactly the committed rows (``n*B + r == written``). The
sidecar exists from the first commit with rows (empty while ``n == 0``).

**In a store handle.** ``MemmapFiles._verify_rows(name, start, stop)`` (the backend hook of
:class:`rldata.stores.backend.rows.RowTable`) checks the blocks a read touches;
``MemmapFiles._block_table()`` is where a handle gets this table (a remote store overrides
it to fetch the sidecar by byte range). Parquet: ``rldata.stores.backend._parquet_blocks``;
zarr: ``rldata.stores.backend._zarr_blocks``.

**Expected digest of (key, block) and the bytes it covers.** A block's digest is the
SHA-256 of the key's payload bytes of its rows: in the memmap file ``payload.files[key]``,
block ``i`` of a key of ``R`` bytes a row is the byte range ``[i*B*R, (i*B + rows)*R)``,
``rows = B`` for a full block, ``r`` for the tail (``i == n``)::

    table = BlockTable.from_bytes(entry, sidecar_bytes)   # or BlockTable.read(root, entry)
    want = table.digest(key, i)                           # 32 bytes (raises past the tail)
    lo, hi = table.byte_range(i, row_bytes)               # of payload.files[key]
    assert hashlib.sha256(payload[lo:hi]).digest() == want

:func:`BlockTable.from_bytes` checks the sidecar against ``sha256`` first (a remote reader
fetching ``[0, n*K*32)`` of the sidecar by byte range hands those bytes over).

**Commits.** Committed rows of an append-only store never change, so a full block's digest
never changes: a commit appends the digests of the blocks it fills at offset ``n*K*32``
(fsynced with the payload), then writes the manifest with the new ``blocks``, ``sha256``
and ``tail``. A crash in between leaves the old manifest, whose ``sha256`` covers only the
old ``n`` records, still true. A ring keeps no block digests (it rewrites rows in place):
readers check its rows at open against the section-7 chunks, as for stores before 1.4.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from rldata._untrusted import open_regular
from rldata.errors import CorruptStoreError
from rldata.stores.format.checksums import (
    committed_prefix,
    is_sha256_hex,
    parallel_map,
    tail_rows,
)
from rldata.stores.format.files import inside

DIGEST = 32
SIDECAR = "data/blocks.sha256"
SIDECARS = {"memmap": SIDECAR, "parquet": "data/_blocks.sha256", "zarr": "data/_blocks.sha256"}
"""The sidecar's path per backend that keeps block digests (parquet's starts with ``_``:
pyarrow datasets and Spark skip it, so ``data/`` still reads as a directory of parts)."""
BLOCK_BYTES = 64 << 10  # a block of the widest key is at most this
MAX_BLOCK_ROWS = 1024

KeyReader = Callable[[str, int, int], "bytes | memoryview"]
"""``read(key, a, b)``: the payload bytes of one key's row positions ``[a, b)``."""


def block_rows_for(widest_row_bytes: int) -> int:
    """Rows per block: the largest power of two whose block of the widest key fits 64 KiB
    (at most 1,024, at least 1): a random read hashes about one block per row it reads."""
    rows = 1
    while rows * 2 <= MAX_BLOCK_ROWS and rows * 2 * max(1, widest_row_bytes) <= BLOCK_BYTES:
        rows *= 2
    return rows


def check_entry(
    entry: Any, where: object, rows_committed: int, schema: dict, backend: str = "memmap"
) -> None:
    """Refuse a ``checksums.blocks`` entry whose fields are out of range (one line naming
    the field): the backend's sidecar path, ``block_rows``, keys of the schema,
    ``n*B + r == written``."""

    def fail(field: str, want: str, got: object) -> CorruptStoreError:
        return CorruptStoreError(
            f"{where}: manifest field 'checksums.blocks.{field}': expected {want}, got {got!r}"
        )

    def count(name: str, lo: int) -> int:
        v = entry.get(name)
        if type(v) is not int or v < lo:
            raise fail(name, f"an integer >= {lo}", v)
        return v

    if not isinstance(entry, dict):
        raise fail("", "an object", entry)
    if backend not in SIDECARS:
        raise fail("", f"null for backend {backend!r} (only {sorted(SIDECARS)} keep them)", entry)
    if entry.get("path") != SIDECARS[backend]:
        raise fail("path", repr(SIDECARS[backend]), entry.get("path"))
    b = count("block_rows", 1)
    n = count("blocks", 0)
    keys = entry.get("keys")
    if (
        not isinstance(keys, list)
        or not keys
        or len(set(map(str, keys))) != len(keys)
        or not set(keys) <= set(schema)
    ):
        raise fail("keys", "distinct keys of the schema", keys)
    if not is_sha256_hex(entry.get("sha256")):
        raise fail("sha256", "64 hex digits", entry.get("sha256"))
    r = tail_rows(entry.get("tail"), keys, b, fail)
    if n * b + r != rows_committed:
        raise fail("blocks", f"blocks * block_rows + tail rows == {rows_committed}", n * b + r)


class BlockTable:
    """The expected block digests of a committed store, read from its manifest entry and
    sidecar (checked against the entry's SHA-256 before a digest is handed out)."""

    def __init__(self, entry: dict, digests: np.ndarray, keep: object = None) -> None:
        self.entry = entry
        self.block_rows: int = entry["block_rows"]
        self.keys: list[str] = list(entry["keys"])
        self.full: int = entry["blocks"]
        tail = entry.get("tail")
        self.tail_rows: int = tail["rows"] if tail else 0
        self._tail = {k: bytes.fromhex(h) for k, h in tail["sha256"].items()} if tail else {}
        self._col = {k: j for j, k in enumerate(self.keys)}
        self._digests = digests  # [n, K, 32] uint8 (a view of the sidecar's mapping)
        self._keep = keep  # the mapping the view lives in

    @property
    def blocks(self) -> int:
        """Blocks with digests: the full ones, plus the tail if there is one."""
        return self.full + (1 if self.tail_rows else 0)

    @property
    def rows(self) -> int:
        """Committed rows the digests cover."""
        return self.full * self.block_rows + self.tail_rows

    @classmethod
    def from_bytes(
        cls, entry: dict, data: bytes | memoryview | mmap.mmap, where: object = ""
    ) -> BlockTable:
        """A table over sidecar bytes (at least the committed ``n*K*32``), checked first.

        Raises:
            CorruptStoreError: the sidecar is shorter than the manifest says, or its SHA-256
                differs from ``entry["sha256"]``.
        """
        need = entry["blocks"] * len(entry["keys"]) * DIGEST
        what, detail = f"{where}block digests {entry['path']}", f" for {entry['blocks']} blocks"
        view = committed_prefix(memoryview(data), need, entry["sha256"], what, detail)
        arr = np.frombuffer(view, dtype=np.uint8).reshape(entry["blocks"], len(entry["keys"]), 32)
        return cls(entry, arr, keep=data)

    @classmethod
    def reread(
        cls, root: Path, entry: dict, old: BlockTable | None, old_checked: np.ndarray | None
    ) -> tuple[BlockTable, np.ndarray]:
        """The table of a new manifest's ``entry`` and its blocks-checked marks (block x key),
        those of ``old``'s full blocks carried over: committed full blocks never change."""
        table = cls.read(root, entry)
        checked = np.zeros((table.blocks, len(table.keys)), dtype=bool)
        if old is not None and old_checked is not None and old.keys == table.keys:
            keep = min(old.full, table.full)
            checked[:keep] = old_checked[:keep]
        return table, checked

    @classmethod
    def read(cls, root: Path, entry: dict) -> BlockTable:
        """The table of the store at ``root``: the sidecar mapped (not copied) and checked."""
        path = inside(root, entry["path"], "the block digests")
        need = entry["blocks"] * len(entry["keys"]) * DIGEST
        where = f"store {root}: "
        try:
            # a FIFO there would block the open, a socket or a folder would be a traceback
            with open_regular(path, "block digests", error=CorruptStoreError) as f:
                size = os.fstat(f.fileno()).st_size
                if need == 0 or size < need:
                    return cls.from_bytes(entry, f.read(need), where)
                mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        except (FileNotFoundError, NotADirectoryError):
            raise CorruptStoreError(
                f"{where}block digests {entry['path']} named by the manifest are missing"
            ) from None
        except OSError as err:  # no permission, a link loop, ...
            raise CorruptStoreError(
                f"{where}block digests {entry['path']} cannot be read ({err.strerror})"
            ) from None
        return cls.from_bytes(entry, mapped, where)

    def span(self, i: int) -> tuple[int, int]:
        """Row positions ``[start, stop)`` of block ``i``."""
        start = i * self.block_rows
        if i < self.full:
            return start, start + self.block_rows
        if i == self.full and self.tail_rows:
            return start, start + self.tail_rows
        raise IndexError(f"block {i}: expected one of the {self.blocks} committed blocks")

    def byte_range(self, i: int, row_bytes: int) -> tuple[int, int]:
        """Bytes ``[lo, hi)`` of block ``i`` in a key's memmap file of ``row_bytes`` a row."""
        a, b = self.span(i)
        return a * row_bytes, b * row_bytes

    def digest(self, key: str, i: int) -> bytes:
        """The expected 32-byte SHA-256 of ``key``'s bytes in block ``i``."""
        self.span(i)  # range check
        if i == self.full:
            return self._tail[key]
        return self._digests[i, self._col[key]].tobytes()

    def faults(
        self, read: KeyReader, blocks: Iterable[int], keys: list[str] | None = None
    ) -> list[tuple[str, int]]:
        """``(key, block)`` of each listed block whose bytes of ``keys`` (default: every key)
        differ from their digest, hashed on every core."""
        blocks = list(blocks)
        keys = self.keys if keys is None else keys

        def bad_keys(i: int) -> list[str]:  # a block's keys in one task: ~10x fewer hand-offs
            a, b = self.span(i)
            return [k for k in keys if hashlib.sha256(read(k, a, b)).digest() != self.digest(k, i)]

        found = parallel_map(bad_keys, blocks) if len(blocks) > 4 else map(bad_keys, blocks)
        return [(k, i) for i, keys in zip(blocks, found) for k in keys]


class BlockWriter:
    """A writer's side of the sidecar: appends the digests of blocks its commits fill."""

    def __init__(
        self,
        root: Path,
        keys: list[str],
        block_rows: int,
        entry: dict | None,
        rel: str = SIDECAR,
    ) -> None:
        self.rel = entry["path"] if entry else rel
        self.path = root / self.rel
        self.keys = list(keys)
        self.block_rows = block_rows
        self.full = entry["blocks"] if entry else 0
        self.tail = entry.get("tail") if entry else None
        self.created = not self.path.exists()  # its directory entry needs an fsync
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self.dirty = self.created  # records (or a new file) written since the last fsync
        self._hash = hashlib.sha256()
        if self.full:  # resume: the committed records, then drop uncommitted ones
            self._hash.update(BlockTable.read(root, entry)._digests.tobytes())  # type: ignore[arg-type]
        os.ftruncate(self.fd, self.full * len(self.keys) * DIGEST)

    def extend(self, read: KeyReader, end: int) -> None:
        """Record the committed rows ``[0, end)``: digests of the blocks filled since the last
        call appended to the sidecar, the last partial block kept as the tail."""
        b = self.block_rows
        full = end // b
        if full > self.full:
            blocks = range(self.full, full)

            def one(i: int) -> bytes:  # a block's digests, in key order
                return b"".join(
                    hashlib.sha256(read(k, i * b, (i + 1) * b)).digest() for k in self.keys
                )

            done = parallel_map(one, blocks) if len(blocks) > 4 else map(one, blocks)
            recs = b"".join(done)
            offset, view = self.full * len(self.keys) * DIGEST, memoryview(recs)
            while view:
                n = os.pwrite(self.fd, view, offset)
                view, offset = view[n:], offset + n
            os.ftruncate(self.fd, offset)  # a crashed writer's records past them
            self._hash.update(recs)
            self.full = full
            self.dirty = True
        r = end - full * b
        self.tail = (
            {
                "rows": r,
                "sha256": {
                    k: hashlib.sha256(read(k, full * b, end)).hexdigest() for k in self.keys
                },
            }
            if r
            else None
        )

    def entry(self) -> dict:
        """The manifest's ``checksums.blocks`` for the rows recorded so far."""
        return {
            "path": self.rel,
            "block_rows": self.block_rows,
            "keys": list(self.keys),
            "blocks": self.full,
            "sha256": self._hash.hexdigest(),
            "tail": self.tail,
        }

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
