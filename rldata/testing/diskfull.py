"""A disk that fills up after a given number of bytes: fault injection for write paths.

:func:`disk_of` replaces ``os.write`` and ``os.pwrite`` (the calls rldata's stores and run
files write through) with versions that count bytes and, once ``capacity`` bytes have been
written, write what still fits and then raise ``OSError(code)`` as a full disk does
(``ENOSPC``; ``EDQUOT`` for a spent quota, ``EFBIG`` past the file size limit). Drawing
``capacity`` over ``[0, bytes a clean run writes]`` moves the failure over every write
point in turn. Descriptors that are not regular files (pipes, sockets) are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Disk:
    """What the simulated disk saw: bytes written, and whether it refused a write."""

    capacity: float
    written: int = 0
    refused: int = 0


@contextlib.contextmanager
def disk_of(capacity: float = float("inf"), code: int = errno.ENOSPC) -> Iterator[Disk]:
    """Within the block, regular-file writes past ``capacity`` bytes fail with ``code``."""
    disk = Disk(capacity)
    write, pwrite = os.write, os.pwrite

    def room(fd: int, want: int) -> int:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return want
        left = disk.capacity - disk.written
        if left <= 0:
            disk.refused += 1
            raise OSError(code, os.strerror(code))
        return int(min(want, left))

    def fake_write(fd: int, data: Any, /) -> int:
        view = memoryview(data).cast("B")
        n = write(fd, view[: room(fd, len(view))])
        disk.written += n
        return n

    def fake_pwrite(fd: int, data: Any, offset: int, /) -> int:
        view = memoryview(data).cast("B")
        n = pwrite(fd, view[: room(fd, len(view))], offset)
        disk.written += n
        return n

    os.write, os.pwrite = fake_write, fake_pwrite  # type: ignore[assignment]
    try:
        yield disk
    finally:
        os.write, os.pwrite = write, pwrite  # type: ignore[assignment]
