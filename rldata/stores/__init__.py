"""Durable replay stores: one on-disk format (a manifest plus a backend payload).

``create`` makes a new store and holds its writer lock; ``open`` reads the manifest and
dispatches to the backend named there. See ``docs/FORMAT.md`` for the format itself.

Examples:
    >>> import rldata.stores as stores                       # doctest: +SKIP
    >>> with stores.create("ds", capacity=None, commit_every=10_000) as w:
    ...     w.append(rows)                                   # committed every 10k rows and on close
    >>> r = stores.open("ds")                                # read-only, no lock
"""

from __future__ import annotations

import os
from typing import Any

from rldata.errors import ConfigError, CorruptStoreError, StoreError, StoreExistsError
from rldata.stores.backend import registry
from rldata.stores.backend.base import Store
from rldata.stores.backend.registry import backends, load, register
from rldata.stores.format import manifest as mf
from rldata.stores.format.commit import remove_temp_files
from rldata.stores.format.lock import WriterLock
from rldata.stores.format.verify import content_digest, first_fault, integrity_fault, verify
from rldata.stores.location import remote_commit
from rldata.stores.location.paths import local_dir
from rldata.stores.location.places import is_url

__all__ = [
    "Store",
    "backends",
    "content_digest",
    "create",
    "first_fault",
    "integrity_fault",
    "open",
    "register",
    "registry",
    "verify",
]

_open = open


def create(
    path: str | os.PathLike[str],
    *,
    backend: str = "memmap",
    capacity: int | None = None,
    specs: Any = None,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    provenance: dict | None = None,
    commit_every: int | None = None,
    allow_nonfinite: bool = False,
    durable: bool = True,
) -> Store:
    """Create an empty store at ``path`` and return it open for writing (holding the lock).

    Args:
        path: a directory that does not exist yet, or is empty; or an fsspec URL
            (``s3://``, ``memory://``) without a store, for a zarr or parquet store
            committed by numbered manifests (``rldata.stores.location.remote_commit``).
        backend: a name from :func:`backends`.
        capacity: ring size in rows; None makes an append-only dataset that grows.
        specs: the env's ``Composite`` spec, stored as JSON.
        env_id / env_kwargs: how to rebuild the env that produced the data.
        provenance: extra provenance fields (policy, seed, ...).
        commit_every: commit automatically every this many appended rows (also on close).
        allow_nonfinite: accept NaN/inf rewards instead of refusing the write.
        durable: fsync payload and manifest at each commit. ``False`` keeps commits atomic
            for readers but not power-loss safe: for scratch replay buffers and tests.

    Raises:
        StoreExistsError: ``path`` holds a store or other files.
        UnknownBackendError: ``backend`` is not registered.
        ConfigError: ``capacity`` or ``commit_every`` is not a positive integer.
    """
    cls: Any = load(backend)
    for name, value in (("capacity", capacity), ("commit_every", commit_every)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{name}: expected a positive integer or None, got {value!r}")
    if capacity is not None and not getattr(cls, "supports_overwrite_rings", True):
        raise ConfigError(
            f"backend {backend!r} is append-only: capacity={capacity} (a ring) is refused; use "
            f"capacity=None, or a backend that keeps rings ('memmap', 'zarr')"
        )
    if is_url(path):  # an object store: docs/FORMAT.md section 15
        return remote_commit.create(
            os.fspath(path),
            backend=backend,
            capacity=capacity,
            specs=specs,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=provenance,
            commit_every=commit_every,
            allow_nonfinite=allow_nonfinite,
        )
    root = local_dir(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        what = "a store" if (root / "rldata.json").exists() else "files"
        raise StoreExistsError(f"{root} already holds {what}; pick a new path or rldata.open it")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create a store at {root}: {exc.strerror or exc}") from None
    lock = WriterLock(root)
    lock.acquire()
    try:
        specs_json = specs.to_json() if specs is not None else None
        m = mf.new(
            backend=backend,
            capacity=capacity,
            specs=specs_json,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=provenance,
            commit_every=commit_every,
            allow_nonfinite=allow_nonfinite,
        )
        store = cls.attach(root, m, writable=True, lock=lock, durable=durable)
        store.commit()
    except BaseException:
        lock.release()
        raise
    return store


def open(  # noqa: A001
    path: str | os.PathLike[str], *, mode: str = "r", durable: bool = True, verify: bool = True
) -> Store:
    """Open an existing store: ``mode="r"`` reads committed rows, ``"a"`` resumes writing.

    ``durable`` is as in :func:`create` (it only matters for ``mode="a"``). With ``verify``
    (the default) the manifest's checksums of every committed row and of the episode index
    are checked before the store is handed out, so a flipped or truncated committed byte is
    an error here rather than a wrong sample later (about 40 ms per million Pendulum rows);
    ``verify=False`` is the explicit opt-out. A resuming writer always verifies what it
    builds on.

    Raises:
        StoreNotFoundError: no manifest at ``path``.
        CorruptStoreError: the manifest, the episode index or a committed row fails its check.
        FormatVersionError: the store was written by a newer major format version.
        StoreLockedError: ``mode="a"`` and another writer holds the lock.
        ConfigError: ``mode`` is not "r" or "a".
    """
    if mode not in ("r", "a"):
        raise ConfigError(f"mode: expected 'r' or 'a', got {mode!r}")
    if is_url(path):  # the latest complete commit, checked out and verified
        return remote_commit.open_url(os.fspath(path), mode=mode)
    root = local_dir(path)
    m = mf.read(root)
    cls: Any = load(str(m.get("backend")))
    if mode == "r":
        store = cls.attach(root, m, writable=False, lock=None)
        if verify:
            _refuse_corrupt(store, "open")
        return store
    lock = WriterLock(root)
    lock.acquire()
    try:
        remove_temp_files(root)
        m = mf.read(root)  # the committed state, now that no one else can write
        with cls.attach(root, m, writable=False, lock=None) as current:
            _refuse_corrupt(current, "resume")  # before a byte is written
        return cls.attach(root, m, writable=True, lock=lock, durable=durable)
    except BaseException:
        lock.release()
        raise


def _refuse_corrupt(store: Store, action: str) -> None:
    """Raise if a committed byte fails its checksum.

    A live ring rewrites rows only after committing a manifest that retires them, so a fault
    seen while the manifest's generation moved is the writer's, not corruption: re-read the
    manifest and check again. A fault under an unchanged manifest is corruption.
    """
    for _ in range(50):
        fault = integrity_fault(store)
        if fault is None:
            return
        refresh = getattr(store, "refresh", None)
        if store.capacity is None or refresh is None or not refresh(force=True):
            break
    else:
        return  # every fault was explained by a writer that kept committing
    store.close()
    raise CorruptStoreError(
        f"cannot {action} a corrupted store: {fault} (pass verify=False to skip)"
        if action == "open"
        else f"cannot {action}: {fault}; the store was left unchanged"
    )
