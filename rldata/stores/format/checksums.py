"""SHA-256 per chunk of rows, kept incrementally while a writer appends.

A chunk is ``chunk_rows`` consecutive row positions of one key's file; its checksum
covers the rows ``[c * chunk_rows, c * chunk_rows + rows)`` that hold committed data,
so a commit only hashes the bytes written since the previous one.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rldata.stores.format.append_sha256 import RunningSha256

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HASH_SLICE = 16 << 20  # bytes of a file mapped at once to hash it (a multiple of the page size)

RowReader = Callable[[int, int], "bytes | memoryview"]
"""``read(a, b)`` returns the raw bytes of row positions ``[a, b)`` of one key."""


def sha256_hex(data: bytes | memoryview) -> str:
    """Hex SHA-256 of a byte buffer."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str | None:
    """Hex SHA-256 of a file's bytes, or None when there is no such file (or not a file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return EMPTY_SHA256
            h = hashlib.sha256()
            for at in range(0, size, _HASH_SLICE):  # a window at a time: no copy out of the
                n = min(_HASH_SLICE, size - at)  # page cache, 16 MiB mapped whatever the size
                with mmap.mmap(f.fileno(), n, access=mmap.ACCESS_READ, offset=at) as view:
                    h.update(view)
            return h.hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def hash_workers() -> int:
    """Threads that hash at once: one per CPU this process may run on (at most 8)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def parallel_map(fn: Callable, items: Iterable, window: int = 0) -> Generator:
    """``fn(item)`` for each item, in order, computed by :func:`hash_workers` threads.

    For work that releases the GIL (hashlib does on buffers over 2 KiB, and so do file reads):
    a store's checksums hash on every core. At most ``window`` results (default twice the
    threads) are pending at once, so buffers made on demand stay bounded. A pool is made per
    call: its threads never outlive it (no pool left behind in a forked child).
    """
    workers = hash_workers()
    if workers == 1:
        yield from map(fn, items)
        return
    window = window or 2 * workers
    with ThreadPoolExecutor(workers, thread_name_prefix="rldata-sha256") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def files_sha256(paths: Iterable[str | os.PathLike[str]]) -> list[str | None]:
    """:func:`file_sha256` of each path, hashed in parallel (see :func:`parallel_map`)."""
    return list(parallel_map(file_sha256, paths, window=1 << 30))


class ChunkSums:
    """The per-chunk checksums of one key, as ``[[rows, sha256_hex], ...]`` by chunk index.

    Rows must be fed in position order within a chunk (appends and ring passes do that);
    feeding a chunk from its middle rehashes its committed prefix first. ``load`` supplies the
    entries on first use instead (format 1.6 keeps them in a sidecar): a reader that never
    checks a whole chunk never reads them.
    """

    def __init__(
        self,
        chunk_rows: int,
        entries: list[list] | None = None,
        load: Callable[[], list[list]] | None = None,
    ) -> None:
        self.chunk_rows = chunk_rows
        self._entries: list[list] | None = None if load else [list(e) for e in entries or []]
        self._load = load
        self._open: tuple[int, int, object] | None = None  # (chunk, rows hashed, hasher)

    @property
    def entries(self) -> list[list]:
        """``[[rows, sha256_hex], ...]`` by chunk index (loaded on first use)."""
        if self._entries is None:
            assert self._load is not None
            self._entries = [list(e) for e in self._load()]
            self._load = None
        return self._entries

    @entries.setter
    def entries(self, value: list[list]) -> None:
        self._entries, self._load = value, None

    def extend(self, read: RowReader, start: int, stop: int) -> None:
        """Account for rows ``[start, stop)`` just written (positions, ``stop`` exclusive)."""
        pos = start
        while pos < stop:
            c = pos // self.chunk_rows
            c0 = c * self.chunk_rows
            end = min(stop, c0 + self.chunk_rows)
            if self._open is not None and self._open[0] == c and c0 + self._open[1] == pos:
                h = self._open[2]
            else:
                h = RunningSha256()
                if pos > c0:
                    h.update(read(c0, pos))
            h.update(read(pos, end))  # type: ignore[attr-defined]
            while len(self.entries) <= c:
                self.entries.append([0, EMPTY_SHA256])
            self.entries[c] = [end - c0, h.hexdigest()]  # type: ignore[attr-defined]
            self._open = (c, end - c0, h) if end - c0 < self.chunk_rows else None
            pos = end

    def open_chunk(self) -> tuple[int, int, RunningSha256] | None:
        """``(chunk, rows, hash)`` of the partly filled chunk being hashed, if any."""
        return self._open  # type: ignore[return-value]

    def resume_chunk(self, chunk: int, rows: int, h: RunningSha256) -> None:
        """Continue chunk ``chunk`` from a hash of its first ``rows`` rows (a resumed writer:
        its committed rows are not read again)."""
        self._open = (chunk, rows, h)

    def cut(self, read: RowReader, start: int, stop: int) -> bool:
        """Stop covering positions ``[start, stop)``, about to be overwritten; return if any was.

        A chunk keeps covering its rows before ``start`` (rehashed), so a checksum never
        covers a row while it is being rewritten.
        """
        changed = False
        for c in range(start // self.chunk_rows, (stop - 1) // self.chunk_rows + 1):
            if c >= len(self.entries):
                break
            c0 = c * self.chunk_rows
            if c0 + self.entries[c][0] <= start:
                continue  # covers nothing at or after start
            keep = max(0, start - c0)
            self.entries[c] = [keep, sha256_hex(read(c0, start)) if keep else EMPTY_SHA256]
            if self._open is not None and self._open[0] == c:
                self._open = None
            changed = True
        return changed

    def covered(self, position: int) -> bool:
        """Whether a committed checksum covers ``position``."""
        c = position // self.chunk_rows
        return c < len(self.entries) and position - c * self.chunk_rows < self.entries[c][0]


def committed_prefix(
    data: bytes | memoryview, need: int, sha256: str, what: str, detail: str = ""
) -> Any:
    """The first ``need`` bytes of an appended file, checked against the SHA-256 its manifest
    records (bytes past them are a crashed writer's, never committed).

    Raises:
        CorruptStoreError: the file is shorter than ``need`` (``what`` names it), or its
            committed bytes differ.
    """
    from rldata.errors import CorruptStoreError

    if len(data) < need:
        raise CorruptStoreError(
            f"{what}: expected at least {need} bytes{detail}, found {len(data)} (truncated)"
        )
    data = data[:need]
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CorruptStoreError(f"{what}: sha256 does not match the manifest")
    return data


def is_sha256_hex(v: object) -> bool:
    """``v`` is a SHA-256 as the manifest writes it: 64 lowercase hex digits."""
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def tail_rows(
    tail: object, keys: list, unit_rows: int, fail: Callable[[str, str, object], Exception]
) -> int:
    """The rows of a manifest's ``tail`` record (the digests of the partial unit after the
    full ones, in the block digests and the chunk sidecar): 0 when null.

    Raises:
        the ``fail(field, expected, given)`` error: not ``{"rows": 1..unit_rows-1,
        "sha256": {key: hex} for each of keys}``.
    """
    if tail is None:
        return 0
    if not isinstance(tail, dict):
        raise fail("tail", "null or {rows, sha256}", tail)
    rows = tail.get("rows")
    if type(rows) is not int or not 0 < rows < unit_rows:
        raise fail("tail.rows", f"an integer in [1, {unit_rows})", rows)
    sums = tail.get("sha256")
    if not isinstance(sums, dict) or set(sums) != set(keys):
        raise fail("tail.sha256", "64 hex digits per key of 'keys'", sums)
    if not all(map(is_sha256_hex, sums.values())):
        raise fail("tail.sha256", "64 hex digits per key of 'keys'", sums)
    return rows
