"""Atomic file replacement: the durability primitive every commit is built on.

A file is written to a temporary sibling, fsynced, renamed over the target and the
directory fsynced, so a reader sees either the old or the new file, never a torn one,
and a power loss after :func:`atomic_write` returns keeps the new file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rldata.stores.format.files import TMP_MARK


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk (no-op where the OS has no fsync for it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a rename or a new file) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # platforms without directory fds
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def fsync_all(fds: Iterable[int], dirs: Iterable[Path] = ()) -> None:
    """Fsync several files (and directories, as :func:`fsync_dir`) and return when all are
    durable.

    The fsyncs run on a few threads (``os.fsync`` releases the GIL), so the file system can
    fold them into one journal commit instead of paying one disk flush per file.
    """
    global _POOL
    jobs: list = [functools.partial(os.fsync, fd) for fd in fds]
    jobs += [functools.partial(fsync_dir, d) for d in dirs]
    if len(jobs) < 2:
        for job in jobs:
            job()
        return
    if _POOL is None or _POOL[0] != os.getpid():  # a forked child has no pool threads
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=8, thread_name_prefix="rldata-fsync"))
    for _ in _POOL[1].map(_call, jobs):  # re-raises the first error
        pass


def _call(job: Callable[[], object]) -> None:
    job()


def temp_name(target: Path) -> Path:
    """A unique temporary sibling of ``target`` that readers know to ignore."""
    return target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def atomic_write(target: Path, data: bytes, *, durable: bool = True, sync_dir: bool = True) -> None:
    """Replace ``target`` with ``data`` atomically: temp file, fsync, rename, fsync directory.

    ``durable=False`` skips the fsyncs: still atomic for readers, but a power loss may
    lose the change (for scratch buffers and tests, never for datasets).
    ``sync_dir=False`` leaves the directory fsync to a later ``atomic_write`` in the same
    directory, which makes both renames durable at once (a commit writes two files).
    """
    tmp = temp_name(target)
    try:
        # os-level calls: each syscall lets other threads take the GIL, and a writer thread
        # pays for getting it back, so a commit makes as few as it can
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable and sync_dir:
        fsync_dir(target.parent)


def remove_temp_files(root: Path) -> list[Path]:
    """Delete leftover temporary files under ``root`` (a writer's job, never a reader's)."""
    removed = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if TMP_MARK in name:
                p = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed
