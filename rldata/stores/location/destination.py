"""Where a command writes: one policy for every destination (stores, runs, reports, files).

A store goes to a local path (:func:`check_local`, :func:`record_local`) or a URL
(:mod:`rldata.stores.location.remote_commit`); :func:`check_destination` and
:func:`recording_store` pick the protocol.

Every command that writes (collect, convert, merge, pull, push to a local path, report,
plot, train, Minari export) goes through :func:`plan_destination` (or, for the checks
alone before any work starts, :func:`inspect_destination`):

- **no overlap**: real paths are compared (symlinks, ``.``, ``..`` and ``file://``
  resolved); a destination equal to, inside, or containing a source is refused with one
  line naming both;
- **no silent replacement**: an existing destination is refused without ``force``;
  ``force`` replaces only what is provably the same kind of thing: a store whose
  manifest passes its checks and whose every file belongs to it, a run directory rldata
  made (its marker and only the files a run writes), a report or image rldata wrote (its
  generator mark), a Minari dataset rldata exported. Anything else is refused, naming
  what would have been lost;
- **atomic**: the new content is built in a hidden staging sibling
  (``.NAME.rldata-staging-PID-TOKEN``) and swapped in at the end, by
  ``renameat2(RENAME_EXCHANGE)`` for a directory and ``rename`` for a file, so a kill
  at any moment leaves the destination absent (or as it was) or complete;
- **self-cleaning**: the destination's lock (``.NAME.rldata-lock``, an ``flock`` the OS
  drops when its holder dies) is held throughout; holding it, a rerun removes staging
  siblings of the same destination whose owner process is gone.

Replacing a store keeps the old store's writer lock while building, so a reader sees the
old store or the new one, never "no store".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rldata.errors import (
    ConfigError,
    DestinationOverlapError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from rldata.stores.format.commit import fsync_dir
from rldata.stores.format.files import MANIFEST
from rldata.stores.format.lock import WriterLock
from rldata.stores.location import remote_commit
from rldata.stores.location.places import is_url, local_dir, redact
from rldata.stores.location.provable import KINDS, RUN_MARKER, what_would_be_lost
from rldata.stores.location.staging import (
    DestinationLock,
    clean_stale_stagings,
    exchange,
    remove,
    staging_sibling,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


# --- real paths and overlap ----------------------------------------------------------------


def real_path(path: str | os.PathLike[str]) -> Path:
    """The real path of a local path or ``file://`` URL (symlinks, ``.`` and ``..`` resolved,
    also below a part that does not exist yet)."""
    return Path(os.path.realpath(local_dir(path)))


def _key(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(scheme, path) to compare two places: local ones by their real path."""
    text = os.fspath(path)
    if not is_url(text):
        return "file", str(real_path(text))
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    scheme = {"s3a": "s3", "gcs": "gs", "abfss": "abfs"}.get(parts.scheme, parts.scheme)
    host = parts.netloc.rsplit("@", 1)[-1]
    return scheme, os.path.normpath("/" + host + "/" + parts.path).rstrip("/") or "/"


def _under(a: str, b: str) -> bool:
    return a != b and a.startswith(b.rstrip("/") + "/")


def refuse_overlap(
    dest: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]], *, what: str = "write"
) -> None:
    """Refuse ``dest`` if it is, lies inside, or contains any of ``sources``.

    Raises:
        DestinationOverlapError: one line naming the destination and the source it overlaps
            (a ``StoreExistsError`` and a ``ConfigError``).
    """
    dk = _key(dest)
    for src in sources:
        sk = _key(src)
        if sk[0] != dk[0]:
            continue
        if sk[1] == dk[1]:
            how = "is the source itself"
        elif _under(dk[1], sk[1]):
            how = "lies inside the source"
        elif _under(sk[1], dk[1]):
            how = "contains the source"
        else:
            continue
        raise DestinationOverlapError(
            f"{what}: destination {_shown(dest)} {how} ({_shown(src)}; real paths {dk[1]} and "
            f"{sk[1]}); pick a destination outside every source"
        )


def _shown(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    return redact(text) if is_url(text) else text


# --- the policy ------------------------------------------------------------------------------


def inspect_destination(
    dest: str | os.PathLike[str],
    *,
    kind: str,
    sources: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    what: str = "write",
) -> Path:
    """Check ``dest`` against the policy (overlap, existence, ``force``) without writing;
    return its absolute path. Call it before any work; :func:`plan_destination` re-checks.

    Raises:
        DestinationOverlapError: ``dest`` is, lies inside, or contains a source.
        StoreLockedError: another rldata process is writing ``dest`` (plan only).
        StoreExistsError: ``dest`` exists and not ``force``, or ``force`` on something
            that is not provably a ``kind`` rldata made (the message names what would be lost).
        StoreError: ``dest``'s parent cannot hold it.
    """
    if kind not in KINDS:
        raise ConfigError(f"destination kind {kind!r}: expected one of {', '.join(KINDS)}")
    root = local_dir(dest)
    refuse_overlap(dest, list(sources), what=what)
    _check_parent(root, dirs=kind in ("store", "run", "minari"))
    if not _exists(root):
        return root
    if _empty_dir(root) and kind in ("store", "run", "minari"):
        return root
    looks = _looks_like(root, kind)
    if not force:
        if not looks:
            shape = "is a non-empty directory" if root.is_dir() else "already exists"
            raise StoreExistsError(
                f"{what}: {root} {shape} that is not an rldata {_kind_name(kind)}; pick "
                f"another destination (nothing was changed)"
            )
        raise StoreExistsError(
            f"{what}: {root} already exists; pass --force to replace it (nothing was changed)"
        )
    lost = what_would_be_lost(root, kind)
    if lost:
        shown = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
        how = "not provably" if looks else "not"
        raise StoreExistsError(
            f"{what} --force: {root} is {how} an rldata {_kind_name(kind)}; replacing it "
            f"would lose {shown}; refusing"
        )
    return root


def _looks_like(root: Path, kind: str) -> bool:
    """Whether ``root`` claims to be a ``kind`` (proved or not by :func:`what_would_be_lost`)."""
    if kind == "store":
        return (root / MANIFEST).is_file()
    if kind == "run":
        return (root / RUN_MARKER).is_file()
    if kind == "minari":
        return (root / "data" / "metadata.json").is_file()
    return root.is_file() and not root.is_symlink()


def _kind_name(kind: str) -> str:
    return {
        "store": "store",
        "run": "run directory",
        "report": "report",
        "file": "file",
        "minari": "Minari dataset",
    }[kind]


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()


def _empty_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink() and not any(p.iterdir())


@contextlib.contextmanager
def plan_destination(
    dest: str | os.PathLike[str],
    *,
    kind: str,
    sources: Iterable[str | os.PathLike[str]] = (),
    force: bool = False,
    what: str = "write",
) -> Iterator[Path]:
    """Yield a fresh staging path to build ``dest`` in; swap it in when the block ends well.

    The checks of :func:`inspect_destination` run (again) under the destination's lock,
    stale staging siblings are removed, and the yielded path does not exist yet (the
    block creates it: a store, a directory, a file). On success the staging path takes
    ``dest``'s place atomically; on an exception it is deleted and ``dest`` is as it was.

    Examples:
        >>> with plan_destination("out/merged", kind="store", sources=["a", "b"]) as stage:  # doctest: +SKIP
        ...     build_store(stage)
    """
    sources = list(sources)
    root = inspect_destination(dest, kind=kind, sources=sources, force=force, what=what)
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = DestinationLock(root)
    lock.acquire()
    store_lock: WriterLock | None = None
    stage = staging_sibling(root)
    try:
        clean_stale_stagings(root)
        inspect_destination(root, kind=kind, sources=sources, force=force, what=what)
        if kind == "store" and (root / MANIFEST).exists():
            store_lock = WriterLock(root)  # no one writes the old store meanwhile
            store_lock.acquire()
        yield stage
        if not _exists(stage):
            raise StoreError(f"{what}: nothing was built for {root}")
        swap_in(stage, root)
    finally:
        if store_lock is not None:
            store_lock.release()
        remove(stage)
        lock.release()


def swap_in(stage: Path, root: Path) -> None:
    """Put the finished ``stage`` in ``root``'s place in one atomic step: an exchange for a
    directory that replaces one (``stage`` then holds the old content, removed after), a
    rename otherwise."""
    if _exists(root) and not _empty_dir(root):
        if stage.is_dir():
            exchange(stage, root)
        else:
            os.replace(stage, root)
            fsync_dir(root.parent)
        return
    if _empty_dir(root):
        root.rmdir()
    os.rename(stage, root)
    fsync_dir(root.parent)


def _check_parent(root: Path, *, dirs: bool = True) -> None:
    try:
        _check_parent_dirs(root, dirs)
    except OSError as err:  # a name over NAME_MAX, a link loop, ...: the path itself refused
        raise StoreError(
            f"{root}: the file system refuses this destination ({err.strerror or err})"
        ) from None


def _check_parent_dirs(root: Path, dirs: bool) -> None:
    if dirs and root.exists() and not root.is_dir():
        raise StoreError(f"{root} is a file, not a directory; pick another destination")
    if not dirs and root.is_dir() and not root.is_symlink():
        raise StoreError(f"{root} is a directory, not a file; pick another destination")
    parent = root.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StoreError(f"{root}: {parent} is a file, so no directory can be made under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreError(f"{root}: directory {parent} is not writable")


# --- stores: new, resumed, replaced --------------------------------------------------------


def check_local(
    path: str | os.PathLike[str],
    *,
    resume: bool,
    force: bool,
    sources: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """The store policy before a recording: fail before anything is built; return the root.

    Raises:
        ConfigError: both ``resume`` and ``force``; ``path`` overlaps a source.
        StoreNotFoundError: ``resume`` and no store at ``path``.
        StoreExistsError: a store is there and neither flag is set; ``force`` on a directory
            that is not provably an rldata store; a non-empty directory that is not a store.
        StoreError: the path or its parent cannot hold a store (a file, not writable).
    """
    if resume and force:
        raise ConfigError("--resume and --force exclude each other: append, or replace?")
    root = local_dir(path)
    if not resume and not force and (root / MANIFEST).exists():
        raise StoreExistsError(
            f"a store already exists at {str(path)!r}; pass --resume to append or --force to "
            f"replace it"
        )
    if not resume:
        inspect_destination(path, kind="store", sources=sources, force=force, what="store")
        if force and (root / MANIFEST).exists():  # a second writer is refused now
            probe = WriterLock(root)
            probe.acquire()
            probe.release()
        return root
    refuse_overlap(path, list(sources), what="store")
    _check_parent(root)
    if not (root / MANIFEST).exists():
        raise StoreNotFoundError(f"--resume: no rldata store at {str(path)!r} (no {MANIFEST})")
    probe = WriterLock(root)
    probe.acquire()
    probe.release()
    return root


@contextlib.contextmanager
def staged_replacement(root: Path) -> Iterator[Path]:
    """Yield a fresh sibling directory of ``root`` to build a store in; on success swap it in
    (:func:`plan_destination` for a store with ``force``)."""
    with plan_destination(root, kind="store", force=True, what="store") as stage:
        yield stage


@contextlib.contextmanager
def record_local(
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

    root = check_local(path, resume=resume, force=force)
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
    lock = DestinationLock(root)  # a new store is recorded in place (resumable after a kill)
    lock.acquire()
    try:
        clean_stale_stagings(root)
    finally:
        lock.release()
    with stores.create(root, backend=backend, env_id=env_id, **create_kwargs) as store:
        yield store


def check_destination(
    path: str | os.PathLike[str],
    *,
    resume: bool,
    force: bool,
    backend: str = "memmap",
    sources: tuple[str | os.PathLike[str], ...] = (),
) -> None:
    """Fail before anything is built if ``path`` cannot be written as asked (see
    :func:`check_local` and
    :func:`rldata.stores.location.remote_commit.check_destination`)."""
    if is_url(path):
        refuse_overlap(path, sources, what="store")
        remote_commit.check_destination(
            os.fspath(path), resume=resume, force=force, backend=backend
        )
    else:
        check_local(path, resume=resume, force=force, sources=sources)


@contextlib.contextmanager
def recording_store(
    path: str | os.PathLike[str],
    *,
    backend: str = "memmap",
    resume: bool = False,
    force: bool = False,
    **create_kwargs: Any,
) -> Iterator[Any]:
    """The store a recording writes into, closed (committed; published at a URL) at the end."""
    if is_url(path):
        with remote_commit.recording_store(
            os.fspath(path), backend=backend, resume=resume, **create_kwargs
        ) as store:
            yield store
        return
    with record_local(path, backend=backend, resume=resume, force=force, **create_kwargs) as store:
        yield store


def shown(path: str | os.PathLike[str]) -> str:
    """How a store's place is shown to a user: the URL without credentials, or the local
    directory."""
    return redact(os.fspath(path)) if is_url(path) else str(local_dir(path))
