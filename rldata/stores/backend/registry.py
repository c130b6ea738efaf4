"""Backend registry: a name maps to the class that reads and writes that payload.

Backends are imported only when asked for, so an optional dependency (zarr, h5py,
pyarrow) is needed only by whoever uses that backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rldata.errors import MissingDependencyError, UnknownBackendError


@dataclass(frozen=True)
class BackendEntry:
    """Where a backend lives and which extra installs what it needs."""

    module: str
    cls: str
    extra: str | None = None


_BACKENDS: dict[str, BackendEntry] = {
    "memmap": BackendEntry("rldata.stores.backend._memmap", "MemmapStore"),
    "sharded": BackendEntry("rldata.stores.backend._sharded", "ShardedStore"),
    "zarr": BackendEntry("rldata.stores.backend._zarr", "ZarrStore", "zarr"),
    "parquet": BackendEntry("rldata.stores.backend._parquet", "ParquetStore", "parquet"),
}


def register(name: str, module: str, cls: str, extra: str | None = None) -> None:
    """Add a backend (later issues register zarr, parquet and hdf5 here)."""
    _BACKENDS[name] = BackendEntry(module, cls, extra)


def backends() -> list[str]:
    """The registered backend names."""
    return sorted(_BACKENDS)


def load(name: str) -> type:
    """The store class of backend ``name``, imported on demand.

    Raises:
        UnknownBackendError: ``name`` is not registered; the message lists the valid names.
        MissingDependencyError: the backend's optional dependency is not installed.
    """
    try:
        entry = _BACKENDS[name]
    except (KeyError, TypeError):
        raise UnknownBackendError(
            f"unknown store backend {name!r}; expected one of {backends()}"
        ) from None
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        if exc.name == entry.module or entry.extra is None:
            raise
        raise MissingDependencyError(
            f"store backend {name!r} needs {exc.name!r}; install it with "
            f"pip install 'rldata[{entry.extra}]'"
        ) from exc
    return getattr(module, entry.cls)
