"""Where a recording writes: a new store, the same store resumed, or a store replaced.

Replacing (``--force``) is the dangerous one, so it is narrow and atomic:

- only what is provably an rldata store is replaced: its manifest passes every check
  (its own checksum included), and every file in the directory belongs to the store
  (manifest, lock, episode indexes, the payload the manifest names, leftover temp files).
  A directory that merely holds a file named ``rldata.json`` next to anything else is
  refused, naming what would have been lost;
- the new store is built beside the old one (a hidden sibling directory) while the old
  store's writer lock is held, and only a recording that finished swaps it in: one
  ``renameat2(RENAME_EXCHANGE)`` on Linux, so a reader sees the old store or the new one,
  never "no store". A recording that fails or is interrupted deletes its sibling and
  leaves the old store as it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rldata.errors import (
    ConfigError,
    CorruptStoreError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from rldata.stores import manifest as mf
from rldata.stores.commit import fsync_dir
from rldata.stores.lock import WriterLock
from rldata.stores.manifest_check import EPISODE_FILE, STATS_FILE
from rldata.stores.paths import LOCK, MANIFEST, TMP_MARK, local_dir

STAGING_MARK = ".rldata-staging-"


def check_destination(path: str | os.PathLike[str], *, resume: bool, force: bool) -> Path:
    """Fail before anything is built if ``path`` cannot be written as asked; return its root.

    Raises:
        ConfigError: both ``resume`` and ``force``.
        StoreNotFoundError: ``resume`` and no store at ``path``.
        StoreExistsError: a store is there and neither flag is set; ``force`` on a directory
            that is not provably an rldata store; a non-empty directory that is not a store.
        StoreError: the path or its parent cannot hold a store (a file, not writable).
    """
    if resume and force:
        raise ConfigError("--resume and --force exclude each other: append, or replace?")
    root = local_dir(path)
    _check_parent(root)
    has_manifest = (root / MANIFEST).exists()
    if resume and not has_manifest:
        raise StoreNotFoundError(f"--resume: no rldata store at {str(path)!r} (no {MANIFEST})")
    if has_manifest and not (resume or force):
        raise StoreExistsError(
            f"a store already exists at {str(path)!r}; pass --resume to append or --force to "
            f"replace it"
        )
    if has_manifest and (resume or force):  # a second writer is refused now, not after set-up
        probe = WriterLock(root)
        probe.acquire()
        probe.release()
    if has_manifest and force:
        try:
            mf.read(root)
        except (CorruptStoreError, StoreNotFoundError) as exc:
            raise StoreExistsError(
                f"--force: {str(path)!r} is not provably an rldata store ({exc}); refusing to "
                f"replace it"
            ) from None
        stray = stray_files(root)
        if stray:
            shown = ", ".join(stray[:5]) + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
            raise StoreExistsError(
                f"--force: {str(path)!r} holds files that are not part of an rldata store "
                f"({shown}); refusing to replace it"
            )
    elif not has_manifest and root.is_dir() and any(root.iterdir()):
        raise StoreExistsError(
            f"{str(path)!r} is a non-empty directory that is not an rldata store; refusing to "
            f"write there"
        )
    return root


def _check_parent(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise StoreError(f"{root} is a file, not a directory; pick another --out")
    parent = root.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StoreError(f"{root}: {parent} is a file, so no directory can be made under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{root}: directory {parent} is not writable")


def stray_files(root: Path) -> list[str]:
    """Files under ``root`` that the store there does not account for (all of them, relative,
    if its manifest cannot be trusted)."""
    try:
        m = mf.read(root)
    except (CorruptStoreError, StoreNotFoundError) as exc:
        return [f"{MANIFEST} ({exc})"]
    owned_dirs = set()
    if m["backend"] == "sharded":
        owned_dirs = {name for name in m.get("shards", [])}
    payload_dir = m["payload"].get("dir")
    if isinstance(payload_dir, str) and payload_dir and "/" not in payload_dir:
        owned_dirs.add(payload_dir)
    stray = []
    for entry in sorted(os.listdir(root)):
        p = root / entry
        ours = (
            entry in (MANIFEST, LOCK)
            or TMP_MARK in entry
            or EPISODE_FILE.match(entry)
            or STATS_FILE.match(entry)
        )
        if ours and p.is_file() and not p.is_symlink():
            continue
        if entry in owned_dirs and p.is_dir() and not p.is_symlink():
            if m["backend"] == "sharded":
                stray += [f"{entry}/{s}" for s in stray_files(p)]
            else:
                stray += _stray_payload(root, entry, m)
            continue
        stray.append(entry)
    return stray


def _stray_payload(root: Path, payload_dir: str, m: dict[str, Any]) -> list[str]:
    """Payload files the manifest does not name (memmap lists its files; other backends own
    their payload directory as a whole)."""
    files = m["payload"].get("files")
    if not isinstance(files, dict):
        return []
    listed = {str(f) for f in files.values()}
    stray = []
    for dirpath, _dirs, names in os.walk(root / payload_dir):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel not in listed and name != "meta.json" and TMP_MARK not in name:
                stray.append(rel)
    return sorted(stray)


def staging_sibling(root: Path) -> Path:
    """A fresh hidden sibling of ``root`` to build its replacement in (same file system, so
    the swap is a rename)."""
    return root.with_name(f".{root.name}{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def staged_replacement(root: Path) -> Iterator[Path]:
    """Yield a fresh sibling directory of ``root`` to build a store in; on success swap it in.

    The old store's writer lock is held throughout, so no one writes it meanwhile. On an
    exception (or Ctrl-C) the sibling is deleted and ``root`` is left as it was.
    """
    lock = WriterLock(root)
    lock.acquire()
    stage = staging_sibling(root)
    try:
        yield stage
        exchange(stage, root)  # now `stage` holds the old store
        lock.release()
        shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        lock.release()


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
    aside = b.with_name(f".{b.name}{STAGING_MARK}old-{secrets.token_hex(4)}")
    os.replace(b, aside)
    os.replace(a, b)
    os.replace(aside, a)
    fsync_dir(b.parent)


@contextlib.contextmanager
def recording_store(
    path: str | os.PathLike[str],
    *,
    backend: str = "memmap",
    resume: bool = False,
    force: bool = False,
    env_id: str | None = None,
    **create_kwargs: Any,
) -> Iterator[Any]:
    """The store a recording writes into, closed (committed) when the block ends.

    A new path is created; ``resume`` reopens the store there (verified first, and refused
    if it was recorded from another env id); ``force`` builds a replacement beside the store
    there and swaps it in only if the block finishes (:func:`staged_replacement`).
    ``create_kwargs`` go to :func:`rldata.stores.create`.
    """
    from rldata import stores

    root = check_destination(path, resume=resume, force=force)
    if resume:
        store: Any = stores.open(root, mode="a")
        if env_id is not None and store.env_id not in (None, env_id):
            store.close()
            raise ConfigError(
                f"--resume: the store at {str(path)!r} was recorded from {store.env_id!r}, "
                f"not {env_id!r}"
            )
        with store:
            yield store
        return
    if force and (root / MANIFEST).exists():
        with (
            staged_replacement(root) as stage,
            stores.create(stage, backend=backend, env_id=env_id, **create_kwargs) as store,
        ):
            yield store
        return
    with stores.create(root, backend=backend, env_id=env_id, **create_kwargs) as store:
        yield store
