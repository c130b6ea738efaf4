"""What opening a store to append checks before a byte is written, in time that does not grow
with the store where it has block digests.

A writer must never certify bytes it did not write. It extends four appended files
(``stats.log``, ``episodes.log``, ``chunks.sha256``, the block digests), whose running
SHA-256 it resumes from the state the last commit recorded (:mod:`~rldata.stores.format.
append_sha256`): that state, over the few bytes after it, must give the manifest's SHA-256,
and what the writer appends is hashed onto it, so older bytes altered since fail every
reader's check of the next commit too. It re-reads the committed rows after the last full
block and the last full chunk (their digests are recomputed with the new rows), and memmap's
explicit next rows (their running hash seeds the next one): those are hashed here against
the manifest. The older rows are checked as reads check them, block by block when first
read, and whole by ``rldata verify``. Stores without block digests (rings, stores written
before 1.4, zarr) are checked whole, as before.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterator
from typing import Any

from rldata.errors import CorruptStoreError
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.backend.verify import _schema_faults, _spec_faults
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import chunklog
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.stores.format.files import inside


def checks_tails_only(store: Any) -> bool:
    """Whether an append open of ``store`` checks only what the writer extends: an
    append-only store with block digests, of a backend that declares it
    (``resumes_from_tails``)."""
    return (
        isinstance(store, RowStore)
        and getattr(store, "resumes_from_tails", False)
        and store.capacity is None
        and store.schema is not None
        and store._m["checksums"].get("blocks") is not None
    )


def append_faults(store: RowStore) -> Iterator[str]:
    """Each fault of what a writer resuming ``store`` would extend or hash again (the
    manifest was checked when read; the episode index when the store attached it)."""
    m = store._m
    yield from _schema_faults(m, store.path)
    yield from _spec_faults(store)
    for check in (getattr(store, "payload_faults", None), getattr(store, "record_faults", None)):
        if check is not None:
            yield from check()
    try:
        _check_appended(store)
        _check_tail_rows(store)
    except CorruptStoreError as exc:
        yield str(exc)


def _check_appended(store: RowStore) -> None:
    """The appended files' committed bytes resume to the manifest's SHA-256 (the whole file
    hashed where no state was recorded)."""
    m = store._m
    sums = m["checksums"]
    stats = m.get("stats")
    files = []
    if isinstance(stats, dict):
        files.append((stats["path"], stats["bytes"], stats["sha256"], "statistics log"))
    log = sums.get(chunklog.FIELD)
    if isinstance(log, dict) and log["bytes"]:
        files.append((log["path"], log["bytes"], log["sha256"], "chunk checksums"))
    blocks = sums["blocks"]
    need = blocks["blocks"] * len(blocks["keys"]) * 32
    if need:
        files.append((blocks["path"], need, blocks["sha256"], "block digests"))
    for rel, size, sha, what in files:
        path = inside(store.root, rel, f"the {what}")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise CorruptStoreError(
                f"store {store.path}: {what} {rel} named by the manifest cannot be read "
                f"({err.strerror})"
            ) from None
        try:
            read = functools.partial(_pread, fd)
            h = appended.resume(appended.file_state(m, rel), size, sha, read)
            if h is None and isinstance(stats, dict) and rel == stats["path"]:
                with os.fdopen(os.dup(fd), "rb") as f:  # no state: every line, as verify
                    st.check_log(f, stats, f"store {store.path}")
            elif h is None:
                h = appended.hash_file(size, read)
                if h.size != size or h.hexdigest() != sha:
                    raise CorruptStoreError(
                        f"store {store.path}: {what} {rel}: expected {size} committed bytes "
                        f"matching the manifest's sha256, found {h.size} bytes that do not"
                    )
        finally:
            os.close(fd)


def _check_tail_rows(store: RowStore) -> None:
    """The committed rows after the last full block and after the last full chunk against
    their digests in the manifest: a writer hashes them again with its new rows."""
    m = store._m
    blocks = m["checksums"]["blocks"]
    tail = blocks.get("tail")
    if tail:
        a = blocks["blocks"] * blocks["block_rows"]
        _check_rows(store, a, a + tail["rows"], tail["sha256"], "block")
    partial = chunklog.partial_chunk(m["checksums"], m["written"])
    if partial is not None:  # from the recorded states (a row or so read), else every row
        c, rows, want = partial
        c0 = c * m["checksums"]["chunk_rows"]
        for key in want:
            if key in store._fields and appended.resume_rows(
                appended.chunk_state(m, key),
                rows,
                sch.row_bytes(store._fields[key]),
                functools.partial(_chunk_rows, store, key, c0),
                want[key],
            ):
                continue
            _check_rows(store, c0, c0 + rows, {key: want[key]}, "chunk")
    elif m["written"] % m["checksums"]["chunk_rows"]:
        raise CorruptStoreError(
            f"store {store.path}: manifest field 'checksums': the last partial chunk of "
            f"{m['written']} rows has no checksum"
        )


def _pread(fd: int, a: int, b: int) -> bytes:
    return os.pread(fd, b - a, a)


def _chunk_rows(store: RowStore, key: str, c0: int, a: int, b: int) -> Any:
    return store._raw(key, c0 + a, c0 + b)


def _check_rows(store: RowStore, a: int, b: int, want: dict[str, str], unit: str) -> None:
    for key, digest in want.items():
        if key not in store._fields:
            raise CorruptStoreError(f"store {store.path}: {unit} digest of unknown key {key!r}")
        if hashlib.sha256(store._raw(key, a, b)).hexdigest() != digest:
            raise CorruptStoreError(
                f"store {store.path}: key {key!r} rows [{a}, {b}) (the last partial {unit}, "
                f"which an append hashes again): sha256 does not match the manifest"
            )
