"""Storages over the zarr, parquet and hdf5 backends, for the walkthrough's storage slot.

``ZarrStorage`` and ``ParquetStorage`` are :class:`LazyMemmapStorage` with another payload:
the store is created on the first write (in ``scratch_dir`` or a temporary directory) and
every row lands there. ``H5Storage`` opens an HDF5 dataset (a Minari dataset or a D4RL
file) read-only: its rows are converted once into a scratch store and sampled from there.

Examples:
    >>> from rldata.data import ReplayBuffer, ZarrStorage
    >>> buffer = ReplayBuffer(storage=ZarrStorage(max_size=1000))     # doctest: +SKIP
    >>> offline = ReplayBuffer(storage=H5Storage("minari:D4RL/door/human-v2"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import torch

from rldata import stores
from rldata.data._store_storage import LazyMemmapStorage, StoreStorage
from rldata.errors import ConfigError


class _BackendStorage(LazyMemmapStorage):
    """A lazily created store of ``backend`` (see :class:`LazyMemmapStorage` for the arguments)."""

    backend = "memmap"

    def _open_store(self) -> None:
        path = self.scratch_dir
        if path is None:
            path = tempfile.mkdtemp(prefix=f"rldata-{self.backend}-")
            weakref.finalize(self, shutil.rmtree, path, True)
        self.store = stores.create(
            path,
            backend=self.backend,
            capacity=self.capacity,
            commit_every=self.commit_every,
            allow_nonfinite=self.allow_nonfinite,
        )


class ZarrStorage(_BackendStorage):
    """Rows in a zarr store (chunked, zstd-compressed), created on the first write.

    Args:
        max_size: ring capacity in rows, or None for an append-only dataset that grows.
        scratch_dir: the store directory (must not exist or be empty); default a temporary
            directory, removed when the storage is garbage collected.
        device: where samples land.
        allow_nonfinite: keep NaN/inf rewards instead of refusing them.
        commit_every: commit every this many rows (also readable by other processes then).
    """

    backend = "zarr"


class ParquetStorage(_BackendStorage):
    """Rows in an append-only parquet store (one row per transition), created on the first write.

    Arguments as :class:`ZarrStorage`, but ``max_size`` must be None: parquet keeps no ring.

    Raises:
        ConfigError: ``max_size`` is set.
    """

    backend = "parquet"

    def __init__(
        self,
        max_size: int | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        allow_nonfinite: bool = False,
        commit_every: int | None = None,
    ) -> None:
        if max_size is not None:
            raise ConfigError(
                f"ParquetStorage is append-only, so max_size={max_size} (a ring) is refused; "
                f"use max_size=None, or ZarrStorage / LazyMemmapStorage for a ring"
            )
        super().__init__(None, scratch_dir, device, allow_nonfinite, commit_every)


class H5Storage(StoreStorage):
    """A read-only storage over an HDF5 dataset: ``minari:NS/NAME-vN`` or ``d4rl:FILE.hdf5``.

    The rows are converted once (losslessly, see :mod:`rldata.stores.interop.convert`) into a memmap
    store in ``scratch_dir`` (default a temporary directory, removed with the storage).

    Args:
        source: the dataset, as ``rldata convert`` names it.
        scratch_dir: where the converted store goes (must not exist).
        device: where samples land.
    """

    def __init__(
        self,
        source: str,
        scratch_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        from rldata.stores.interop.convert import convert

        if scratch_dir is None:
            parent = tempfile.mkdtemp(prefix="rldata-h5-")
            weakref.finalize(self, shutil.rmtree, parent, True)
            scratch_dir = os.path.join(parent, "rows")
        convert(source, scratch_dir, backend="memmap")
        super().__init__(stores.open(scratch_dir), device=device)
        self.source = source
