"""Count the bytes a process reads through an fsspec file system (tests of streaming reads).

:func:`counting_reads` wraps a file system instance's ``cat_file``, ``cat_ranges`` and ``open`` (fsspec
caches instances, so ``location(url).fs`` is the one rldata reads through) so every byte
they hand back is counted, per object path; the wrap is undone on exit. It sees what
rldata asked for and got, not HTTP overhead (benchmarks count that with a TCP proxy).

Examples:
    >>> import fsspec
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe_file("/bc-doc/x", b"0123456789")
    >>> with counting_reads(fs) as got:
    ...     _ = fs.cat_file("/bc-doc/x", start=2, end=5)
    >>> got.total
    3
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class ReadCount:
    """Bytes read so far: ``total``, and ``by_path`` (object path -> bytes)."""

    def __init__(self) -> None:
        self.by_path: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.by_path.values())

    def add(self, path: str, n: int) -> None:
        with self._lock:
            self.by_path[str(path)] += n

    def reset(self) -> None:
        with self._lock:
            self.by_path.clear()


class _CountingFile:
    """A file object whose ``read`` counts what it returns (everything else passes through)."""

    def __init__(self, f: Any, path: str, count: ReadCount) -> None:
        self._f, self._path, self._count = f, path, count

    def read(self, *args: Any) -> bytes:
        data = self._f.read(*args)
        self._count.add(self._path, len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


@contextmanager
def counting_reads(fs: Any) -> Iterator[ReadCount]:
    """Count every byte ``fs.cat_file``, ``fs.cat_ranges`` and ``fs.open(...).read`` return,
    until exit."""
    count = ReadCount()
    cat, opener, ranges = fs.cat_file, fs.open, fs.cat_ranges
    had = {name: name in vars(fs) for name in ("cat_file", "open", "cat_ranges")}

    def cat_file(path: str, *args: Any, **kwargs: Any) -> bytes:
        data = cat(path, *args, **kwargs)
        count.add(path, len(data))
        return data

    def open_(path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        f = opener(path, mode, *args, **kwargs)
        return _CountingFile(f, path, count) if "r" in mode else f

    def cat_ranges(paths: list[str], *args: Any, **kwargs: Any) -> list:
        got = ranges(paths, *args, **kwargs)
        for path, data in zip(paths, got):
            if isinstance(data, (bytes, bytearray, memoryview)):
                count.add(path, len(data))
        return got

    fs.cat_file, fs.open, fs.cat_ranges = cat_file, open_, cat_ranges
    try:
        yield count
    finally:
        for name, fn in (("cat_file", cat), ("open", opener), ("cat_ranges", ranges)):
            if had[name]:
                setattr(fs, name, fn)
            else:
                delattr(fs, name)
