"""Storages: how the rows of a replay buffer are kept (RAM, GPU, or a store directory).

A storage checks and lands bytes; it never decides where rows go (the writer does)
or which rows are read (the sampler does). Every storage fixes its schema (keys,
per-row shapes, dtypes) on the first write and refuses writes that do not match,
before touching any row.

Examples:
    >>> from rldata.testing import ted_transitions
    >>> storage = LazyTensorStorage(100)
    >>> flat, n = storage.check(ted_transitions(10))
    >>> storage.write(slice(0, n), flat)
    >>> len(storage), storage.get(torch.tensor([0, 9])).batch_size
    (10, torch.Size([2]))
"""

from __future__ import annotations

import numpy as np
import torch
from tensordict import TensorDict

from rldata.data._layout import Key, Packed
from rldata.data._storage import Index, Storage, _cpu_array
from rldata.data._store_storage import LazyMemmapStorage, StoreStorage
from rldata.stores.format.schema import RowSchema

__all__ = ["Index", "LazyMemmapStorage", "LazyTensorStorage", "Storage", "StoreStorage"]


class LazyTensorStorage(Storage):
    """Rows in RAM or on a GPU, packed one tensor per dtype; allocated on the first write.

    Args:
        max_size: ring capacity in rows, or None for an append-only storage that grows.
        device: where rows live and samples land.
        allow_nonfinite: keep NaN/inf rewards instead of refusing them.
    """

    _INITIAL_ROWS = 1024

    def __init__(
        self,
        max_size: int | None,
        device: torch.device | str = "cpu",
        allow_nonfinite: bool = False,
    ) -> None:
        super().__init__(max_size, device, allow_nonfinite)
        self._packed: Packed  # allocated by the first write (_allocate)

    def _allocate(self, schema: RowSchema) -> None:
        rows = self.capacity if self.capacity is not None else self._INITIAL_ROWS
        self._packed = Packed(schema, rows, self.device)
        self._enable_staging(self._packed)

    def _reserve(self, stop: int) -> None:
        packed = self._packed
        if self.capacity is None and stop > packed.rows:
            # staged rows already count in _len but are not in the buffer yet
            packed.grow(max(stop, 2 * packed.rows), min(self._len, packed.rows))

    def _land(self, start: int, k: int, blocks: list[list[torch.Tensor]]) -> None:
        self._reserve(start + k)
        self._packed.write_staged(start, k, blocks)

    def _write_slice(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> None:
        if not self._write_slice_numpy(start, stop, flat):
            self._reserve(stop)
            self._packed.write_slice(start, stop, flat)

    def _write_slice_numpy(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> bool:
        # one numpy copy per key into its columns: torch.cat into the packed rows costs
        # more on a 1000-row chunk (and wakes the intra-op thread pool)
        self._reserve(stop)
        plan = self._numpy_plan()
        if plan is None:
            return False
        got = [[_cpu_array(flat[key]) for key, _, _ in cols] for _, cols in plan]
        if any(a is None for arrays in got for a in arrays):
            return False
        n = stop - start
        for (buf, cols), arrays in zip(plan, got):
            dst = buf[start:stop]
            for (_, a, b), arr in zip(cols, arrays):
                dst[:, a:b] = arr.reshape(n, b - a)  # type: ignore[union-attr]
        return True

    def _numpy_plan(self) -> list[tuple[np.ndarray, list[tuple[Key, int, int]]]] | None:
        """Each packed group as numpy, with its keys' column ranges (None: a group numpy
        cannot hold, or not on the CPU); made again when a group grows."""
        groups = self._packed.groups
        cached = getattr(self, "_np_plan", None)
        if cached is not None and all(g.buf is b for g, b in zip(groups, cached[0])):
            return cached[1]
        plan: list[tuple[np.ndarray, list[tuple[Key, int, int]]]] | None = []
        for g in groups:
            arr = _cpu_array(g.buf)
            if arr is None or plan is None:
                plan = None
                continue
            cols, off = [], 0
            for key, w in zip(g.keys, g.widths):
                cols.append((key, off, off + w))
                off += w
            plan.append((arr, cols))
        self._np_plan = ([g.buf for g in groups], plan)
        return plan

    def _write_index(self, index: torch.Tensor, flat: dict[Key, torch.Tensor]) -> None:
        if self.capacity is None:
            self._reserve(int(index.max()) + 1)
        self._packed.write_index(index.to(self.device), flat)

    def _write_row(self, pos: int, flat: dict[Key, torch.Tensor]) -> None:
        self._reserve(pos + 1)
        self._packed.write_row(pos, flat)

    def get(self, index: torch.Tensor, extra: dict[Key, torch.Tensor] | None = None) -> TensorDict:
        # the hot path: straight from the packed groups to a TensorDict
        if self._stage:
            self._flush()
        if index.device != self.device:
            index = index.to(self.device)
        return self._packed.gather_td(index, self.device, extra)

    def _column(self, key: Key) -> torch.Tensor:
        return self._packed.column(key, self._len)
