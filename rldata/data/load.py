"""``load(path)``: open a store (a recorded dataset or a saved buffer) as a ReplayBuffer.

Examples:
    >>> buffer = load("datasets/pendulum")           # doctest: +SKIP
    >>> batch = buffer.sample(256)                   # doctest: +SKIP
"""

from __future__ import annotations

import os

import torch

from rldata import stores
from rldata.data.buffer import ReplayBuffer
from rldata.data.samplers import Sampler
from rldata.data.storages import StoreStorage


def load(
    path: str | os.PathLike[str] | stores.Store,
    device: torch.device | str | None = None,
    sampler: Sampler | None = None,
    batch_size: int | None = None,
    *,
    verify: bool = True,
) -> ReplayBuffer:
    """A read-only ReplayBuffer over the committed rows of the store at ``path``.

    Args:
        path: a store directory (``rldata.json`` inside), or a store already open read-only
            (``rldata.load(URL)`` hands a streaming store here).
        device: where samples land (default CPU).
        sampler: which rows batches read (default uniform with replacement).
        batch_size: the default for ``sample()``.
        verify: check the store's committed bytes against their checksums before serving
            (the default); ``False`` opts out (see :func:`rldata.stores.open`).

    Raises:
        StoreNotFoundError: no store at ``path``.
        FormatVersionError: the store was written by a newer, incompatible rldata.
    """
    store = path if isinstance(path, stores.Store) else stores.open(path, verify=verify)
    storage = StoreStorage(store, device=device if device is not None else "cpu")
    return ReplayBuffer(storage=storage, sampler=sampler, batch_size=batch_size)
