"""SHA-256 per chunk of rows, kept incrementally while a writer appends.

A chunk is ``chunk_rows`` consecutive row positions of one key's file; its checksum
covers the rows ``[c * chunk_rows, c * chunk_rows + rows)`` that hold committed data,
so a commit only hashes the bytes written since the previous one.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

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
            with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as view:
                return hashlib.sha256(view).hexdigest()  # no copy out of the page cache
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


class ChunkSums:
    """The per-chunk checksums of one key, as ``[[rows, sha256_hex], ...]`` by chunk index.

    Rows must be fed in position order within a chunk (appends and ring passes do that);
    feeding a chunk from its middle rehashes its committed prefix first.
    """

    def __init__(self, chunk_rows: int, entries: list[list] | None = None) -> None:
        self.chunk_rows = chunk_rows
        self.entries: list[list] = [list(e) for e in entries or []]
        self._open: tuple[int, int, object] | None = None  # (chunk, rows hashed, hasher)

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
                h = hashlib.sha256()
                if pos > c0:
                    h.update(read(c0, pos))
            h.update(read(pos, end))  # type: ignore[attr-defined]
            while len(self.entries) <= c:
                self.entries.append([0, EMPTY_SHA256])
            self.entries[c] = [end - c0, h.copy().hexdigest()]  # type: ignore[attr-defined]
            self._open = (c, end - c0, h) if end - c0 < self.chunk_rows else None
            pos = end

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
