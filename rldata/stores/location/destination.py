"""Where a command writes: one policy for every destination (stores, runs, reports, files).

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
import ctypes
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rldata.errors import (
    ConfigError,
    CorruptStoreError,
    DestinationOverlapError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StoreNotFoundError,
)
from rldata.stores.format import manifest as mf
from rldata.stores.format.commit import fsync_dir
from rldata.stores.format.lock import WriterLock
from rldata.stores.format.manifest_check import EPISODE_FILE, STATS_FILE
from rldata.stores.location.paths import LOCK, MANIFEST, TMP_MARK, local_dir
from rldata.stores.location.places import is_url, redact

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

STAGING_MARK = ".rldata-staging-"
LOCK_MARK = ".rldata-lock"
KINDS = ("store", "run", "report", "file", "minari")
GENERATOR_MARK = "rldata:generated"
"""The mark rldata leaves in the files it writes (HTML ``<meta name="generator">``, image
metadata), so ``force`` can prove a file is one of ours."""
RUN_MARKER = "rldata-run.json"
"""The file that marks a directory as a training run made by rldata."""
RUN_TOP = frozenset(
    {
        RUN_MARKER,
        "config.json",
        "metrics.csv",
        "summary.json",
        "policy.pt",
        "checkpoint",
        "tensorboard",
    }
)
RUN_CHECKPOINT = frozenset({"state.pt", "trainer.json"})
OBJECT_INDEX = "rldata.objects.json"
"""The object index a push or pull leaves in a store (``rldata.sharing.objects.INDEX``)."""
MINARI_FILES = frozenset({"data/main_data.hdf5", "data/rldata_extras.hdf5", "data/metadata.json"})
_MARK_BYTES = 64 << 20  # a generated report or image is far smaller than this


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


# --- what an existing destination is -------------------------------------------------------


def what_would_be_lost(root: Path, kind: str) -> list[str]:
    """Why ``root`` is not provably a ``kind`` that rldata made: the files or reasons that
    replacing it would lose (empty: it may be replaced)."""
    if kind == "store":
        if not root.is_dir() or root.is_symlink():
            return [f"{root} is not a directory"]
        if not (root / MANIFEST).is_file():
            return _listing(root) or []
        return stray_files(root)
    if kind == "run":
        return _run_strays(root)
    if kind == "minari":
        return _minari_strays(root)
    if kind in ("report", "file"):
        if not root.is_file() or root.is_symlink():
            return [f"{root} is not a regular file"]
        if not has_generator_mark(root):
            return [f"{root.name} (not written by rldata)"]
        return []
    raise ConfigError(f"destination kind {kind!r}: expected one of {', '.join(KINDS)}")


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def _run_strays(root: Path) -> list[str]:
    if not root.is_dir() or root.is_symlink():
        return [f"{root} is not a directory"]
    stray = []
    for entry in sorted(os.listdir(root)):
        p = root / entry
        if entry not in RUN_TOP or p.is_symlink():
            stray.append(entry)
        elif entry == "checkpoint":
            if not p.is_dir():
                stray.append(entry)
                continue
            for name in sorted(os.listdir(p)):
                q = p / name
                base = name[: -len(".tmp")] if name.endswith(".tmp") else name
                if base not in RUN_CHECKPOINT or not q.is_file() or q.is_symlink():
                    stray.append(f"checkpoint/{name}")
        elif entry == "tensorboard":
            if not p.is_dir():
                stray.append(entry)
                continue
            for q in sorted(p.rglob("*")):
                if q.is_dir() and not q.is_symlink():
                    continue
                if not q.name.startswith("events.out.tfevents.") or q.is_symlink():
                    stray.append(q.relative_to(root).as_posix())
        elif not p.is_file():
            stray.append(entry)
    if not (root / RUN_MARKER).is_file():
        stray.append(f"everything (no {RUN_MARKER}: not a run directory rldata made)")
    return stray


def _minari_strays(root: Path) -> list[str]:
    if not root.is_dir() or root.is_symlink():
        return [f"{root} is not a directory"]
    files = _listing(root)
    stray = [f for f in files if f not in MINARI_FILES]
    if stray:
        return stray
    meta = root / "data" / "metadata.json"
    try:
        import json

        ours = meta.stat().st_size < _MARK_BYTES and "rldata" in json.loads(meta.read_text())
    except (OSError, ValueError):
        ours = False
    return [] if ours else ["data/metadata.json (not a Minari dataset exported by rldata)"]


def has_generator_mark(path: Path) -> bool:
    """Whether the file carries rldata's generator mark (see :data:`GENERATOR`)."""
    try:
        if path.stat().st_size > _MARK_BYTES:
            return False
        data = path.read_bytes()
    except OSError:
        return False
    return GENERATOR_MARK.encode() in data


def generator_tag(what: str) -> str:
    """The text rldata writes as a file's generator (``what``: ``"report"``, ``"plot"``)."""
    return f"rldata {what} ({GENERATOR_MARK})"


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
        _remove(p)
    return gone


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


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
        _remove(stage)
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


def check_destination(
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
            entry in (MANIFEST, LOCK, OBJECT_INDEX)
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
    if m.get("backend") != "memmap" or not isinstance(files, dict):
        return []  # zarr / parquet name arrays or columns there, not files
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
    the swap is a rename); named so a rerun recognises it (:func:`stale_stagings`)."""
    return root.with_name(f".{root.name}{STAGING_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def staged_replacement(root: Path) -> Iterator[Path]:
    """Yield a fresh sibling directory of ``root`` to build a store in; on success swap it in
    (:func:`plan_destination` for a store with ``force``)."""
    with plan_destination(root, kind="store", force=True, what="store") as stage:
        yield stage


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
    lock = DestinationLock(root)  # a new store is recorded in place (resumable after a kill)
    lock.acquire()
    try:
        clean_stale_stagings(root)
    finally:
        lock.release()
    with stores.create(root, backend=backend, env_id=env_id, **create_kwargs) as store:
        yield store
