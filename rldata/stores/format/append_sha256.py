"""A running SHA-256 of an appended file that the next writer resumes where the last commit
left it, so a commit costs the bytes it appends, not the file's size.

The manifest records the SHA-256 of each file commits append to (``stats.log``,
``episodes.log``, ``chunks.sha256``, the block digests). ``hashlib`` can neither export nor
import its state, so a resumed writer used to hash every committed byte again before its
first commit: 32 MB of ``stats.log`` at 10M HalfCheetah rows, the growth of commit time with
the store's size (``benchmarks/bench_commit.py``). OpenSSL's ``SHA256_CTX``, in the library
``hashlib`` already loads, exposes the state: each commit records it in the manifest's
``append_state`` as ``{path: {"at": n, "state": hex}}``, the eight words after the first
``n`` bytes (a multiple of 64, within 64 bytes of the committed length), and a resumed
writer loads it and hashes only the bytes after ``n`` again.

**Trust.** The state is checked, not trusted: it, resumed over the file's bytes after ``n``,
must give the manifest's ``sha256``, so an altered state or an altered tail is refused. The
bytes before ``n`` are not read: whatever the writer appends is hashed onto the state of the
bytes the last commit wrote, so if they were altered since, the next commit's SHA-256 does
not match them either and every reader (and ``rldata verify``) refuses the file; a writer
never certifies bytes it did not write. Where the library lacks ``SHA256_Init`` or fails the
self-test below, no state is recorded and a writer hashes the whole file, as before.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FIELD = "append_state"
"""The manifest field: ``{"files": {path: {"at": n, "state": hex}}, "chunks": {key: {"rows":
r, "at": n, "state": hex}}}``: each appended file's state, and each key's state of the
partly filled last checksum chunk (its first ``r`` rows), so a resumed writer reads neither
again."""
BLOCK = 64  # SHA-256 hashes 64-byte blocks: a state is taken on a block boundary


class _Ctx(ctypes.Structure):
    """OpenSSL's ``SHA256_CTX`` (the same layout since 0.9.8; checked by the self-test)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("nl", ctypes.c_uint32),
        ("nh", ctypes.c_uint32),
        ("data", ctypes.c_uint32 * 16),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


@functools.cache
def _lib() -> Any:
    """libcrypto's SHA-256 functions, through ``_hashlib`` (which links it), or None."""
    try:
        import _hashlib

        lib = ctypes.CDLL(_hashlib.__file__)
        funcs = (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final)
    except (ImportError, OSError, AttributeError):  # no OpenSSL, or a build without them
        return None
    for f in funcs:
        f.restype = ctypes.c_int
    lib.SHA256_Init.argtypes = [ctypes.POINTER(_Ctx)]
    lib.SHA256_Update.argtypes = [ctypes.POINTER(_Ctx), ctypes.c_void_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Ctx)]
    return lib if _self_test(lib) else None


def _self_test(lib: Any) -> bool:
    """The context's layout is what :class:`_Ctx` says: a state taken and resumed gives
    hashlib's digest."""
    data = bytes(range(256)) * 3
    try:
        h = RunningSha256(lib)
        h.update(data[:200])
        state = h.state()
        again = RunningSha256.from_state(state, lib) if state else None
        if again is None or state is None:
            return False
        again.update(data[state["at"] :])
        return again.hexdigest() == hashlib.sha256(data).hexdigest() == h.copy_with(data[200:])
    except (OSError, ValueError, ctypes.ArgumentError):
        return False


class RunningSha256:
    """A SHA-256 being extended, with a state to resume it later (None without libcrypto:
    then a plain ``hashlib`` object)."""

    def __init__(self, lib: Any = None) -> None:
        self._lib = lib if lib is not None else _lib()
        self.size = 0
        self._ctx: _Ctx | None = None
        self._h: Any = None
        if self._lib is None:
            self._h = hashlib.sha256()
        else:
            self._ctx = _Ctx()
            self._lib.SHA256_Init(ctypes.byref(self._ctx))

    @classmethod
    def from_state(cls, record: Any, lib: Any = None) -> RunningSha256 | None:
        """The hash after ``record["at"]`` bytes, from a recorded state (None: no library,
        or a record that is not one)."""
        lib = lib if lib is not None else _lib()
        if lib is None or not isinstance(record, dict):
            return None
        at, state = record.get("at"), record.get("state")
        if type(at) is not int or at < 0 or at % BLOCK or at >= 1 << 61:
            return None
        try:
            words = bytes.fromhex(state) if isinstance(state, str) else b""
        except ValueError:
            return None
        if len(words) != 32:
            return None
        h = cls(lib)
        assert h._ctx is not None
        for i in range(8):
            h._ctx.h[i] = int.from_bytes(words[4 * i : 4 * i + 4], "big")
        bits = at * 8
        h._ctx.nl, h._ctx.nh, h._ctx.num = bits & 0xFFFFFFFF, bits >> 32, 0
        h.size = at
        return h

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._h is not None:
            self._h.update(data)
        else:
            view = np.frombuffer(data, dtype=np.uint8)  # any buffer, read-only too: no copy
            if view.size:
                ctx = self._ctx
                assert ctx is not None  # set whenever _h is not
                self._lib.SHA256_Update(ctypes.byref(ctx), view.ctypes.data, view.size)
        self.size += memoryview(data).nbytes

    def hexdigest(self) -> str:
        if self._h is not None:
            return str(self._h.hexdigest())
        ctx = _Ctx.from_buffer_copy(self._ctx)  # type: ignore[arg-type]
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(ctx))
        return out.raw.hex()

    def copy_with(self, data: bytes) -> str:
        """The hex digest of what was hashed plus ``data`` (this hash unchanged)."""
        other = RunningSha256(self._lib)
        if self._h is not None:
            other._h = self._h.copy()
        else:
            other._ctx = _Ctx.from_buffer_copy(self._ctx)  # type: ignore[arg-type]
        other.update(data)
        return other.hexdigest()

    def state(self) -> dict | None:
        """``{"at": n, "state": hex}``: the state after the first ``n`` bytes hashed (the
        last 64-byte boundary), or None without libcrypto."""
        if self._ctx is None:
            return None
        at = self.size - self._ctx.num
        words = b"".join(int(w).to_bytes(4, "big") for w in self._ctx.h)
        return {"at": at, "state": words.hex()}


def file_state(manifest: dict, path: str) -> Any:
    """The recorded state of the appended file ``path`` (None when there is none)."""
    states = manifest.get(FIELD)
    files = states.get("files") if isinstance(states, dict) else None
    return files.get(path) if isinstance(files, dict) else None


def chunk_state(manifest: dict, key: str) -> Any:
    """The recorded state of key ``key``'s partly filled last chunk (None when none)."""
    states = manifest.get(FIELD)
    chunks = states.get("chunks") if isinstance(states, dict) else None
    return chunks.get(key) if isinstance(chunks, dict) else None


def resume_rows(
    record: Any,
    rows: int,
    row_bytes: int,
    read: Callable[[int, int], Any],
    sha256: str,
) -> RunningSha256 | None:
    """The running hash of the first ``rows`` rows of a partly filled chunk whose SHA-256 is
    ``sha256``, from its recorded state and the rows holding the bytes after it (``read(a,
    b)``: the bytes of rows ``[a, b)`` of the chunk; about one row read). None when the
    state is absent or does not give ``sha256``."""
    h = RunningSha256.from_state(record)
    total = rows * row_bytes
    if h is None or not isinstance(record, dict) or record.get("rows") != rows:
        return None
    if not 0 <= total - h.size < BLOCK or row_bytes <= 0:
        return None
    first = h.size // row_bytes
    if h.size < total:
        h.update(memoryview(read(first, rows)).cast("B")[h.size - first * row_bytes :])
    return h if h.size == total and h.hexdigest() == sha256 else None


def resume(
    record: Any, size: int, sha256: str, read: Callable[[int, int], bytes]
) -> RunningSha256 | None:
    """The running hash of a file's committed ``size`` bytes whose SHA-256 is ``sha256``,
    from its recorded state and the bytes after it (``read(a, b)``: bytes ``[a, b)``, fewer
    if the file is short): about 64 bytes read. None when there is no usable state (none
    recorded, no library, or one that does not give ``sha256`` over the bytes read): the
    caller hashes the whole file then, which decides between a stale state and corruption."""
    h = RunningSha256.from_state(record)
    if h is None or not 0 <= size - h.size < BLOCK:
        return None
    h.update(read(h.size, size))
    return h if h.size == size and h.hexdigest() == sha256 else None


def hash_file(size: int, read: Callable[[int, int], bytes], step: int = 4 << 20) -> RunningSha256:
    """The running hash of a file's first ``size`` bytes, read ``step`` at a time (a store
    written before ``append_state``, or one whose state did not resume)."""
    h = RunningSha256()
    at = 0
    while at < size:
        part = read(at, min(size, at + step))
        if not part:
            break
        h.update(part)
        at += len(part)
    return h


def resume_path(path: Path, size: int, sha256: str, state: object) -> RunningSha256 | None:
    """:func:`resume` over a file by path (None when it cannot be opened: the full check
    names what is wrong)."""
    if state is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return resume(state, size, sha256, lambda a, b: os.pread(fd, b - a, a))
    finally:
        os.close(fd)
