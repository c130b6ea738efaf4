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

from rldata.errors import ConfigError
from rldata.stores.backend import registry
from rldata.stores.backend.base import Store
from rldata.stores.backend.opening import backend_class, create_dir, open_dir
from rldata.stores.backend.registry import backends, register
from rldata.stores.backend.verify import content_digest, first_fault, integrity_fault, verify
from rldata.stores.location import remote_commit
from rldata.stores.location.places import is_url, local_dir

__all__ = [
    "Store",
    "backends",
    "content_digest",
    "create",
    "duckdb_view",
    "first_fault",
    "integrity_fault",
    "iter_arrow",
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
    backend_class(backend, capacity, commit_every)  # refused before anything is touched
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
    return create_dir(
        local_dir(path),
        backend=backend,
        capacity=capacity,
        specs=specs,
        env_id=env_id,
        env_kwargs=env_kwargs,
        provenance=provenance,
        commit_every=commit_every,
        allow_nonfinite=allow_nonfinite,
        durable=durable,
    )


def open(  # noqa: A001
    path: str | os.PathLike[str],
    *,
    mode: str = "r",
    durable: bool = True,
    verify: bool | str = True,
) -> Store:
    """Open an existing store: ``mode="r"`` reads committed rows, ``"a"`` resumes writing.

    ``durable`` is as in :func:`create` (it only matters for ``mode="a"``). With ``verify``
    (the default) the manifest and the episode index are checked before the store is handed
    out, and every committed row before it is served: a store with block digests (memmap,
    format 1.4) hashes each block of rows when a read first touches it (the open costs the
    same at any size), others every row now. So a flipped or truncated committed byte is an
    error rather than a wrong sample. ``verify="full"`` checks every row now (a copy about
    to take a store's place); ``verify=False`` is the explicit opt-out. A resuming writer
    always verifies what it builds on.

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
    return open_dir(local_dir(path), mode=mode, durable=durable, verify=verify)


def iter_arrow(store: Store, batch_rows: int | None = None) -> Any:
    """The store's readable rows as ``pyarrow.RecordBatch`` es, ``next.*`` filled (see
    :meth:`Store.iter_arrow`): any store in bounded memory."""
    return store.iter_arrow(batch_rows)


def duckdb_view(con: Any, store: Store | str | os.PathLike[str], name: str) -> Any:
    """A DuckDB view ``name`` in ``con`` over every row of a store (a path, URL or open
    :class:`Store`), ``next.*`` filled; returns ``con``.

    Examples:
        >>> con = duckdb.connect()                                       # doctest: +SKIP
        >>> rldata.stores.duckdb_view(con, "datasets/pendulum", "pendulum")  # doctest: +SKIP
        >>> con.sql('SELECT count(*), avg("next.reward") FROM pendulum')  # doctest: +SKIP
    """
    if isinstance(store, Store):
        return store.to_duckdb(con, name)
    with open(store) as opened:
        return opened.to_duckdb(con, name)
