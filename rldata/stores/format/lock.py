"""One writer per store: an exclusive ``fcntl`` lock on ``<store>/rldata.lock``.

The lock is held for the writer's lifetime and released by the OS if the process
dies, so a crashed writer never leaves a store locked. Readers take no lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rldata.errors import StoreError, StoreLockedError
from rldata.stores.format.files import LOCK

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class WriterLock:
    """The exclusive writer lock of one store directory.

    Examples:
        >>> lock = WriterLock(root)  # doctest: +SKIP
        >>> lock.acquire()           # raises StoreLockedError if another writer holds it
        >>> lock.release()
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting.

        Raises:
            StoreLockedError: another writer (any process, or another handle in this one) holds it.
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"store {self.path.parent}: cannot take the writer lock ({exc.strerror}); "
                f"is the directory read-only?"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise StoreLockedError(
                    f"store {self.path.parent} is locked by another writer{holder} "
                    f"(lock file {self.path}); close it first or open with mode='r'"
                ) from None
        os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):  # the pid only names the holder; a full disk
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # fails the store's own writes
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
