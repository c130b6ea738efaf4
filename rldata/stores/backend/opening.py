"""Opening a store directory: the manifest names the backend, the registry gives its class.

:func:`rldata.stores.create` and :func:`rldata.stores.open` resolve where a store lives
and hand a local directory here; the remote commit protocol
(:mod:`rldata.stores.location.remote_commit`) hands its working copy here too, so the
door and the protocol import this module, never each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rldata.errors import ConfigError, CorruptStoreError, StoreError, StoreExistsError
from rldata.stores.backend.append_open import append_faults, checks_tails_only
from rldata.stores.backend.base import Store
from rldata.stores.backend.registry import load
from rldata.stores.backend.verify import integrity_fault
from rldata.stores.format import manifest as mf
from rldata.stores.format.commit import remove_temp_files
from rldata.stores.format.lock import WriterLock


def backend_class(backend: str, capacity: int | None, commit_every: int | None) -> Any:
    """The class of ``backend``, after checking the sizes a new store is created with.

    Raises:
        UnknownBackendError: ``backend`` is not registered.
        ConfigError: ``capacity`` or ``commit_every`` is not a positive integer, or a ring
            on a backend that only appends.
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
    return cls


def create_dir(
    root: Path,
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
    """A new, empty store in the local directory ``root``, open for writing (see
    :func:`rldata.stores.create` for the arguments)."""
    cls = backend_class(backend, capacity, commit_every)
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


def open_dir(
    root: Path, *, mode: str = "r", durable: bool = True, verify: bool | str = True
) -> Store:
    """The store in the local directory ``root`` (see :func:`rldata.stores.open`;
    ``verify="full"`` checks every committed row now, True each block when first read
    where the store has block digests). ``mode="a"`` checks, before a byte is written,
    what the writer extends where the store has block digests (time flat in its size:
    :mod:`~rldata.stores.backend.append_open`), else every committed byte."""
    if verify not in (True, False, "full"):
        raise ConfigError(f"verify: expected True, False or 'full', got {verify!r}")
    if mode not in ("r", "a"):
        raise ConfigError(f"mode: expected 'r' or 'a', got {mode!r}")
    m = mf.read(root)
    cls: Any = load(str(m.get("backend")))
    if mode == "r":
        store = cls.attach(root, m, writable=False, lock=None)
        if verify:  # block digests (format 1.4): each block checked when first read
            refuse_corrupt(store, "open", lazy=verify != "full")
        return store
    lock = WriterLock(root)
    lock.acquire()
    try:
        remove_temp_files(root)
        m = mf.read(root)  # the committed state, now that no one else can write
        with cls.attach(root, m, writable=False, lock=None) as current:
            if checks_tails_only(current):  # what the writer extends; older rows on read
                fault = next(append_faults(current), None)
                if fault is not None:
                    raise CorruptStoreError(f"cannot resume: {fault}; the store was left unchanged")
            else:
                refuse_corrupt(current, "resume")  # every committed byte, before one is written
        return cls.attach(root, m, writable=True, lock=lock, durable=durable)
    except BaseException:
        lock.release()
        raise


def refuse_corrupt(store: Store, action: str, *, lazy: bool = False) -> None:
    """Raise if a committed byte fails its checksum (``lazy``: only what
    :func:`~rldata.stores.backend.verify.integrity_fault` checks at open for a store with
    block digests; its rows are then checked as reads touch them).

    A live ring rewrites rows only after committing a manifest that retires them, so a fault
    seen while the manifest's generation moved is the writer's, not corruption: re-read the
    manifest and check again. A fault under an unchanged manifest is corruption.
    """
    for _ in range(50):
        fault = integrity_fault(store, lazy=lazy)
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
