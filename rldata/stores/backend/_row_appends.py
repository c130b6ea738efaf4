"""The files a row store's commits append to, and resuming their SHA-256 where the last
commit left it (``append_state``, format 1.8): the statistics log, and each key's partly
filled checksum chunk. A mixin of :class:`~rldata.stores.backend.rowstore.RowStore`, whose
attributes (``_m``, ``_slog``, ``_elog``, ``_clog``, ``_sums``, ...) it reads."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from rldata.errors import CorruptStoreError
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import chunklog
from rldata.stores.format import episodes as ep
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.stores.format.append_sha256 import RunningSha256


class AppendedFiles:
    """Appending to the statistics log and resuming appended files' hashes."""

    _m: dict
    _slog: Any
    _elog: Any
    _clog: Any
    _sums: dict
    _fields: dict
    _chunk: int
    _committed_end: int
    _chunks_resumed: bool
    capacity: int | None
    durable: bool
    root: Any
    path: Any

    _raw: Callable[[str, int, int], Any]  # the backend's stored bytes of rows of a key

    def _append_stats(self, ref: dict | None, line: bytes) -> dict:
        """Append a commit's line to the statistics log past its committed bytes (a crashed
        writer's half line there is overwritten) and fsync it; the manifest written next
        names the new length and SHA-256."""
        log = self._slog
        if log is None:
            fd = os.open(self.root / st.LOG, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                h = self._resume_hash(fd, ref, f"statistics log {st.LOG}")
            except BaseException:
                os.close(fd)
                raise
            log = self._slog = [fd, h.size, h]
        fd, size, h = log
        pwrite_all(fd, line, size)
        os.ftruncate(fd, size + len(line))
        if self.durable:
            os.fsync(fd)  # the manifest's write fsyncs the directory
        h.update(line)
        log[1] = size + len(line)
        return {"path": st.LOG, "bytes": log[1], "sha256": h.hexdigest()}

    def _resume_hash(self, fd: int, ref: dict | None, what: str) -> RunningSha256:
        """The running SHA-256 of an appended file's committed bytes: resumed from the state
        the last commit recorded (about 64 bytes read, :mod:`~rldata.stores.format.
        append_sha256`), else hashed whole (a store written before it).

        Raises:
            CorruptStoreError: the committed bytes do not give the manifest's SHA-256.
        """
        if ref is None:
            return RunningSha256()
        size, want = ref["bytes"], ref["sha256"]
        state = appended.file_state(self._m, ref["path"])
        read = functools.partial(_pread, fd)
        h = appended.resume(state, size, want, read) or appended.hash_file(size, read)
        if h.size != size or h.hexdigest() != want:
            raise CorruptStoreError(
                f"store {self.path}: {what}: expected {size} committed bytes matching the "
                f"manifest's sha256, found {h.size} bytes that do not"
            )
        return h

    def _appended_hashes(self) -> dict[str, RunningSha256]:
        """The running hashes of the files this handle appended to, by path (backends add
        their own sidecars)."""
        out = {}
        if self._slog is not None:
            out[st.LOG] = self._slog[2]
        if self._elog is not None:
            out[ep.LOG] = self._elog[2]
        if self._clog is not None:
            out[chunklog.LOG] = self._clog.hash
        return out

    def _record_append_states(self) -> None:
        """The resumable hash states of the appended files and of each key's partly filled
        chunk, in the manifest about to be written, so the next writer reads neither again
        (append-only stores: a ring's chunks are rewritten)."""
        if self.capacity is not None:
            return
        old = self._m.get(appended.FIELD)
        files = dict(old.get("files") or {}) if isinstance(old, dict) else {}
        for path, h in self._appended_hashes().items():
            state = h.state()
            if state is None:  # no libcrypto: a stale state would only cost a rehash
                files.pop(path, None)
            else:
                files[path] = state
        chunks = {}
        for key, sums in self._sums.items():
            open_ = sums.open_chunk()
            state = open_[2].state() if open_ is not None else None
            if state is not None:
                chunks[key] = {"rows": open_[1], **state}  # type: ignore[index]
        if files or chunks:
            self._m[appended.FIELD] = {"files": files, "chunks": chunks}

    def _resume_chunks(self) -> None:
        """A resumed writer's first commit: each key's partly filled chunk continues from its
        recorded state (about a row read) instead of hashing its committed rows again."""
        self._chunks_resumed = True
        if self.capacity is not None:
            return
        partial = chunklog.partial_chunk(self._m["checksums"], self._committed_end)
        if partial is None:
            return
        c, rows, want = partial
        c0 = c * self._chunk
        for key, sums in self._sums.items():
            if key not in want:
                continue
            h = appended.resume_rows(
                appended.chunk_state(self._m, key),
                rows,
                sch.row_bytes(self._fields[key]),
                functools.partial(_chunk_rows, self._raw, key, c0),
                want[key],
            )
            if h is not None:
                sums.resume_chunk(c, rows, h)


def _chunk_rows(raw: Callable[[str, int, int], Any], key: str, c0: int, a: int, b: int) -> Any:
    """Bytes of rows ``[a, b)`` of the chunk starting at position ``c0``, of key ``key``."""
    return raw(key, c0 + a, c0 + b)


def _pread(fd: int, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of a file (fewer at its end)."""
    out, at = bytearray(), start
    while at < stop and (part := os.pread(fd, min(1 << 22, stop - at), at)):
        out += part
        at += len(part)
    return bytes(out)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (``os.pwrite`` may write less)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
