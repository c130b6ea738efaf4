"""Writers: where new rows go. Index math only; the storage lands the bytes.

Examples:
    >>> from rldata.data.storages import LazyTensorStorage
    >>> storage = LazyTensorStorage(4)
    >>> writer = RoundRobinWriter()
    >>> writer.extend_index(storage, 3)
    slice(0, 3, None)
"""

from __future__ import annotations

import torch

from rldata.data.storages import Index, Storage
from rldata.errors import ConfigError


class Writer:
    """Decides the positions of ``n`` new rows in a storage."""

    def check_storage(self, storage: Storage) -> None:
        """Refuse a storage this writer cannot fill (called once, at buffer construction)."""

    def extend_index(self, storage: Storage, n: int) -> Index:
        """Positions for ``n`` rows: a slice when they are contiguous, else an int64 tensor."""
        raise NotImplementedError

    def add_index(self, storage: Storage) -> int:
        """Position for one row."""
        raise NotImplementedError


class RoundRobinWriter(Writer):
    """A ring: rows go after the last written one and wrap at capacity, oldest overwritten.

    On a storage without capacity it appends, like :class:`AppendOnlyWriter`.
    """

    def extend_index(self, storage: Storage, n: int) -> Index:
        cap = storage.capacity
        start = storage.cursor
        if cap is None or start + n <= cap:
            return slice(start, start + n)
        if n > cap:  # only the last `cap` rows survive; keep their order
            pos = torch.arange(start + n - cap, start + n) % cap
            return pos
        return torch.arange(start, start + n) % cap

    def add_index(self, storage: Storage) -> int:
        return storage.cursor


class AppendOnlyWriter(Writer):
    """Rows only ever go after the last one: a dataset that grows and never overwrites."""

    def check_storage(self, storage: Storage) -> None:
        if storage.capacity is not None:
            raise ConfigError(
                f"AppendOnlyWriter: expected a storage with max_size=None, got max_size={storage.capacity}"
            )

    def extend_index(self, storage: Storage, n: int) -> Index:
        start = len(storage)
        return slice(start, start + n)

    def add_index(self, storage: Storage) -> int:
        return len(storage)
