"""Chunk checksums in an appended sidecar (format 1.6), so a commit's cost and the manifest's
size do not grow with the store.

Section 7's ``checksums.chunks`` lists a SHA-256 per chunk of up to 65,536 rows per key in
the manifest: 67 KB at 1M HalfCheetah rows, 449 KB at 30M, rewritten, hashed and parsed at
every commit and open. A full chunk of an append-only store never changes, so its digests
are appended once to ``chunks.sha256`` (raw 32-byte digests) and the manifest keeps only
the sidecar's committed length and SHA-256, plus the digests of the trailing partial chunk
(which change while it fills).

**Layout.** The manifest's ``checksums`` of an append-only store written since 1.6.0 is::

    {"algorithm": "sha256", "chunk_rows": C, "chunks": {},
     "chunk_log": {"path": "chunks.sha256", "keys": [k0, k1, ...], "chunks": n,
                   "bytes": n*K*32, "sha256": hex,
                   "tail": null | {"rows": r, "sha256": {key: hex}}}}

``keys`` are every schema key, ``K = len(keys)``. The sidecar holds the digests of the
``n`` full chunks, chunk-major: key ``keys[j]`` of chunk ``i`` (its rows ``[i*C, (i+1)*C)``,
the section-7 bytes) at bytes ``[(i*K + j)*32, +32)``. ``sha256`` covers the first
``bytes`` bytes; bytes past them are a crashed writer's and are ignored (the next commit
overwrites them). The rows ``[n*C, n*C + r)`` are the tail, hex digests in the manifest;
``n*C + r == written``. The file is created by the commit that fills the first chunk (it may
be absent while ``n == 0``). ``chunks`` is empty, so a reader from before 1.6 refuses the
store (no list per schema key) rather than misreading it.

**Commits.** A commit appends the records of the chunks it fills at offset ``bytes``,
fsyncs the sidecar, then writes the manifest naming the new length; a crash in between
leaves the old manifest, whose ``bytes`` and ``sha256`` cover only the old records, true.
A ring rewrites rows in place, so its chunk checksums change: it keeps section 7's lists in
the manifest. A store written before 1.6.0 (its chunk lists in the manifest) keeps that
layout when a writer appends to it, so older readers still read it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rldata.errors import CorruptStoreError, StoreError
from rldata.stores.format.append_sha256 import RunningSha256, resume_path
from rldata.stores.format.checksums import ChunkSums, committed_prefix, is_sha256_hex, tail_rows
from rldata.stores.format.commit import fsync_dir
from rldata.stores.format.files import inside

LOG = "chunks.sha256"
DIGEST = 32
FIELD = "chunk_log"
MAX_ROWS = 1 << 48  # as manifest_check.MAX_ROWS: a larger count is a corrupted number


def uses_log(checksums: dict, capacity: int | None, committed: int) -> bool:
    """Whether a writer's next commit records its chunk checksums in the sidecar: a store
    that already does, or an append-only store with no committed row (a store whose chunk
    lists are in its manifest keeps them there)."""
    if isinstance(checksums.get(FIELD), dict):
        return True
    return capacity is None and committed == 0


def check_entry(entry: Any, where: object, written: int, chunk_rows: int, schema: dict) -> None:
    """Refuse a ``checksums.chunk_log`` entry with a field out of range (one line naming the
    field, the expected and the given value), before any byte of the sidecar is read."""

    def fail(field: str, want: str, got: object) -> CorruptStoreError:
        shown = repr(got)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return CorruptStoreError(
            f"{where}: manifest field 'checksums.{FIELD}.{field}': expected {want}, got {shown}"
        )

    if not isinstance(entry, dict):
        raise fail("", "an object", entry)
    if entry.get("path") != LOG:
        raise fail("path", repr(LOG), entry.get("path"))
    keys = entry.get("keys")
    if (
        not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
        or len(set(keys)) != len(keys)
        or set(keys) != set(schema)
    ):
        raise fail("keys", "every schema key once", keys)
    n = entry.get("chunks")
    if type(n) is not int or not 0 <= n <= MAX_ROWS:
        raise fail("chunks", f"an integer in [0, {MAX_ROWS}]", n)
    size = entry.get("bytes")
    if size != n * len(keys) * DIGEST or type(size) is not int:
        raise fail("bytes", f"chunks * keys * 32 = {n * len(keys) * DIGEST}", size)
    if not is_sha256_hex(entry.get("sha256")):
        raise fail("sha256", "64 hex digits", entry.get("sha256"))
    r = tail_rows(entry.get("tail"), keys, chunk_rows, fail)
    if n * chunk_rows + r != written:
        raise fail(
            "chunks", f"chunks * chunk_rows + tail rows == written = {written}", n * chunk_rows + r
        )


def partial_chunk(checksums: dict, written: int) -> tuple[int, int, dict[str, str]] | None:
    """``(chunk, rows, {key: sha256})`` of an append-only store's partly filled last chunk,
    from the manifest alone (the sidecar's tail, or the manifest's lists before 1.6); None
    when the committed rows fill whole chunks."""
    rows = checksums.get("chunk_rows")
    if not rows or not written or written % rows == 0:
        return None
    c, r = divmod(written, rows)
    log = checksums.get(FIELD)
    if isinstance(log, dict):
        tail = log.get("tail")
        return (c, r, dict(tail["sha256"])) if tail and tail.get("rows") == r else None
    want = {}
    for key, entries in (checksums.get("chunks") or {}).items():
        if len(entries) != c + 1 or entries[c][0] != r:
            return None
        want[key] = entries[c][1]
    return c, r, want


class ChunkTable:
    """The committed chunk checksums of a store, read from its sidecar (checked against the
    manifest's SHA-256 first) and its manifest's tail."""

    def __init__(self, entry: dict, chunk_rows: int, data: bytes) -> None:
        self.entry = entry
        self.chunk_rows = chunk_rows
        self.keys: list[str] = list(entry["keys"])
        self.full: int = entry["chunks"]
        self._data = data

    @classmethod
    def from_bytes(
        cls, entry: dict, chunk_rows: int, data: bytes | memoryview, where: object = ""
    ) -> ChunkTable:
        """A table over sidecar bytes (at least the committed ``bytes``), checked first.

        Raises:
            CorruptStoreError: the sidecar is shorter than the manifest says, or its committed
                bytes differ from ``entry["sha256"]``.
        """
        what, detail = f"{where}chunk checksums {entry['path']}", f" for {entry['chunks']} chunks"
        view = committed_prefix(memoryview(data), entry["bytes"], entry["sha256"], what, detail)
        return cls(entry, chunk_rows, bytes(view))

    @classmethod
    def read(cls, root: Path, entry: dict, chunk_rows: int) -> ChunkTable:
        """The table of the store at ``root``; a sidecar shorter than the manifest says is
        refused before its bytes are read."""
        need, where = entry["bytes"], f"store {root}: "
        if need == 0:
            return cls.from_bytes(entry, chunk_rows, b"", where)
        path = inside(root, entry["path"], "the chunk checksums")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < need:
                    raise CorruptStoreError(
                        f"{where}chunk checksums {path}: expected at least {need} bytes for "
                        f"{entry['chunks']} chunks, found {size} (truncated)"
                    )
                data = f.read(need)
        except FileNotFoundError:
            raise CorruptStoreError(
                f"{where}chunk checksums {entry['path']} named by the manifest are missing"
            ) from None
        return cls.from_bytes(entry, chunk_rows, data, where)

    def entries(self, key: str) -> list[list]:
        """Section 7's ``[[rows, hex], ...]`` of ``key``: the full chunks, then the tail."""
        j, k, c = self.keys.index(key), len(self.keys), self.chunk_rows
        data = self._data
        out = [
            [c, data[(i * k + j) * DIGEST : (i * k + j + 1) * DIGEST].hex()]
            for i in range(self.full)
        ]
        tail = self.entry.get("tail")
        if tail:
            out.append([tail["rows"], tail["sha256"][key]])
        return out


def chunk_sums(
    checksums: dict, source: Path | Callable[[dict], bytes] | None, where: object = ""
) -> dict[str, ChunkSums]:
    """Each key's :class:`ChunkSums` for a manifest's ``checksums`` whose chunk checksums are
    in the sidecar, loaded on first use (once for every key), so an open that never checks a
    whole chunk reads nothing. ``source`` is the store's root, or a function returning the
    sidecar's committed bytes for the entry (a store read where it lives, by URL); without
    one, using them raises."""
    entry, rows = checksums[FIELD], checksums["chunk_rows"]
    table: list[ChunkTable] = []

    def load(key: str) -> list[list]:
        if not table:
            if source is None:
                raise CorruptStoreError(
                    f"{where}: chunk checksums {entry['path']} are not available here "
                    f"(fetch the store to check whole chunks)"
                )
            if callable(source):
                data = source(entry) if entry["bytes"] else b""
                table.append(ChunkTable.from_bytes(entry, rows, data, f"{where}: "))
            else:
                table.append(ChunkTable.read(source, entry, rows))
        return table[0].entries(key)

    return {k: ChunkSums(rows, load=functools.partial(load, k)) for k in entry["keys"]}


class ChunkLogWriter:
    """A writer's side of the sidecar: appends the digests of the chunks its commits fill."""

    def __init__(
        self,
        root: Path,
        keys: list[str],
        chunk_rows: int,
        entry: dict | None,
        state: object = None,
    ) -> None:
        self.root = root
        self.path = root / LOG
        self.keys = list(keys)
        self.chunk_rows = chunk_rows
        self.full = entry["chunks"] if entry else 0
        self.fd = -1
        resumed = None
        if entry is not None and self.full:  # resume: from the recorded state, else whole
            resumed = resume_path(root / LOG, entry["bytes"], entry["sha256"], state)
            if resumed is None:
                table = ChunkTable.read(root, entry, chunk_rows)  # checks the committed bytes
                resumed = RunningSha256()
                resumed.update(table._data)
        self.hash = resumed or RunningSha256()

    def record(self, sums: dict[str, ChunkSums], end: int, *, durable: bool) -> dict:
        """Append the records of the chunks filled by rows ``[0, end)`` since the last call,
        fsync them (before the manifest that covers them is written), and return the
        manifest's ``checksums.chunk_log``."""
        c, k = self.chunk_rows, len(self.keys)
        full = end // c
        if full > self.full:
            lists = [sums[key].entries for key in self.keys]
            recs = bytearray()
            for i in range(self.full, full):
                for key, entries in zip(self.keys, lists):
                    rows, digest = entries[i]
                    if rows != c:
                        raise StoreError(
                            f"store {self.root}: key {key!r} chunk {i}: expected {c} rows "
                            f"checksummed, got {rows}"
                        )
                    recs += bytes.fromhex(digest)
            created = self.fd < 0 and not self.path.exists()
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            offset, view = self.full * k * DIGEST, memoryview(recs)
            while view:
                n = os.pwrite(self.fd, view, offset)
                view, offset = view[n:], offset + n
            os.ftruncate(self.fd, offset)  # a crashed writer's records past them
            if durable:
                os.fsync(self.fd)
                if created:  # its name, durable before a manifest relies on it
                    fsync_dir(self.root)
            self.hash.update(recs)
            self.full = full
        r = end - full * c
        tail = None
        if r:
            tail = {"rows": r, "sha256": {key: sums[key].entries[full][1] for key in self.keys}}
        return {
            "path": LOG,
            "keys": list(self.keys),
            "chunks": self.full,
            "bytes": self.full * k * DIGEST,
            "sha256": self.hash.hexdigest(),
            "tail": tail,
        }

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
