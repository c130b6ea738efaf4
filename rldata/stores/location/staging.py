"""Staging beside a destination: the destination lock, stale stagings, the atomic exchange.

A replacement is built in a hidden sibling (``.NAME.rldata-staging-PID-TOKEN``) while the
destination's lock (``.NAME.rldata-lock``, an ``flock`` the OS drops when its holder dies)
is held; a rerun removes siblings whose owner process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
from pathlib import Path

from rldata.errors import (
    StoreError,
    StoreLockedError,
)
from rldata.stores.format.commit import fsync_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


STAGING_MARK = ".rldata-staging-"
LOCK_MARK = ".rldata-lock"


# --- the destination lock and stale staging ------------------------------------------------

_STAGE_RE = re.compile(r"^(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})(-old)?$")


class DestinationLock:
    """``.NAME.rldata-lock`` beside the destination: held while a command builds and swaps
    it in (an ``flock``: released by the OS when the holder dies)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root.with_name(f".{root.name}{LOCK_MARK}")
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):  # the file may be unlinked by a finishing holder: retry on a fresh one
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(
                    f"{self.root}: cannot take the destination lock {self.path} ({exc.strerror})"
                ) from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise StoreLockedError(
                        f"{self.root} is being written by another rldata process (lock "
                        f"{self.path}); wait for it to finish"
                    ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)
        raise StoreLockedError(f"{self.root}: could not take the destination lock {self.path}")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # unlinked while held: a waiter re-checks the inode
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process holds the lock: a sibling of ours is an earlier leftover
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_stagings(root: Path) -> list[Path]:
    """Staging siblings of ``root`` left by processes that are gone (call holding its lock)."""
    prefix = f".{root.name}{STAGING_MARK}"
    try:
        names = os.listdir(root.parent)
    except OSError:
        return []
    out = []
    for name in names:
        if not name.startswith(prefix):
            continue
        m = _STAGE_RE.match(name[len(prefix) :])
        if m and not _pid_alive(int(m["pid"])):
            out.append(root.parent / name)
    return sorted(out)


def clean_stale_stagings(root: Path) -> list[Path]:
    """Remove :func:`stale_stagings` of ``root``; return what was removed."""
    gone = stale_stagings(root)
    for p in gone:
        remove(p)
    return gone


def remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def staging_sibling(root: Path) -> Path:
    """A fresh hidden sibling of ``root`` to build its replacement in (same file system, so
    the swap is a rename); named so a rerun recognises it (:func:`stale_stagings`)."""
    return root.with_name(f".{root.name}{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically (Linux ``renameat2``); elsewhere, two renames."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
        if rc == 0:
            fsync_dir(b.parent)
            return
    # no atomic exchange here (old libc, a file system without it): a brief gap remains
    aside = b.with_name(f".{b.name}{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}-old")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)
    fsync_dir(b.parent)
