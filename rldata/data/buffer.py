"""ReplayBuffer: a storage, a sampler and a writer, passed in at construction.

The loop it serves::

    buffer = ReplayBuffer(storage=LazyMemmapStorage(max_size=100_000))
    for data in collector:
        buffer.extend(data)                 # writer picks positions, storage lands rows
        for _ in range(n_optim):
            batch = buffer.sample(256)      # sampler picks rows, storage gathers them
            loss_fn(batch).backward()

Examples:
    >>> from rldata.data.storages import LazyTensorStorage
    >>> from rldata.testing import ted_transitions
    >>> buffer = ReplayBuffer(storage=LazyTensorStorage(1000))
    >>> buffer.extend(ted_transitions(200)).shape
    torch.Size([200])
    >>> len(buffer), buffer.sample(batch_size=30).batch_size
    (200, torch.Size([30]))
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from tensordict import TensorDictBase

from rldata import stores
from rldata.data.samplers import PrioritizedSampler, RandomSampler, Sampler
from rldata.data.storages import Storage
from rldata.data.writers import RoundRobinWriter, Writer
from rldata.errors import ConfigError
from rldata.ted import NestedKey


class ReplayBuffer:
    """Rows in, batches out.

    Args:
        storage: how rows are kept (:class:`LazyTensorStorage`, :class:`LazyMemmapStorage`, ...).
        sampler: which rows a batch reads (default: a new :class:`RandomSampler`).
        writer: where new rows go (default: a new :class:`RoundRobinWriter`).
        batch_size: the default for :meth:`sample`.
        transform: a callable applied to every sampled batch.
        prefetch: prepare this many batches ahead in a background thread (needs
            ``batch_size``); a prefetched batch was drawn before later writes, so it may
            miss rows added since.
    """

    def __init__(
        self,
        storage: Storage,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        batch_size: int | None = None,
        transform: Callable[[TensorDictBase], TensorDictBase] | None = None,
        prefetch: int | None = None,
    ) -> None:
        self.storage = storage
        self.sampler = sampler if sampler is not None else RandomSampler()
        self.writer = writer if writer is not None else RoundRobinWriter()
        self.writer.check_storage(storage)
        if (
            isinstance(self.sampler, PrioritizedSampler)
            and storage.capacity is not None
            and self.sampler.max_capacity < storage.capacity
        ):
            raise ConfigError(
                f"PrioritizedSampler: max_capacity={self.sampler.max_capacity} is smaller than "
                f"the storage's max_size={storage.capacity}"
            )
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"batch_size: expected a positive int or None, got {batch_size!r}")
        if prefetch is not None and (
            not isinstance(prefetch, int) or prefetch < 1 or batch_size is None
        ):
            raise ConfigError(
                f"prefetch: expected a positive int together with batch_size, got "
                f"prefetch={prefetch!r}, batch_size={batch_size!r}"
            )
        self.batch_size = batch_size
        self._hears_writes = type(self.sampler).on_write is not Sampler.on_write
        self.transform = transform
        self.prefetch = prefetch
        self._lock = threading.RLock()
        self._pending: deque[Future] = deque()
        self._pool: ThreadPoolExecutor | None = None

    # --- writing ----------------------------------------------------------------------
    def add(self, data: TensorDictBase) -> int:
        """Write one row (``batch_size=[]``); return its position."""
        storage = self.storage
        row = storage.check_row(data)
        if self._pool is not None or self._hears_writes:
            with self._lock:  # a prefetch thread may be reading: take turns
                return self._add(row)
        pos = self.writer.add_index(storage)
        storage.write_row(pos, row)
        return pos

    def _add(self, row) -> int:
        pos = self.writer.add_index(self.storage)
        self.storage.write_row(pos, row)
        if self._hears_writes:
            self.sampler.on_write(slice(pos, pos + 1))
        return pos

    def extend(self, data: TensorDictBase) -> torch.Tensor:
        """Write a batch of rows (``[N]`` or ``[B, T]``, flattened); return their positions."""
        storage = self.storage
        flat, n = storage.check(data)
        with self._lock:
            index = self.writer.extend_index(storage, n)
            if isinstance(index, torch.Tensor) and index.shape[0] < n:
                # a ring smaller than the batch keeps only the batch's newest rows
                flat = storage.last_rows(flat, n, index.shape[0])
            storage.write(index, flat)
            self.sampler.on_write(index)
        if isinstance(index, slice):
            index = torch.arange(index.start, index.stop)
        self._after_extend(data, index)
        return index

    def _after_extend(self, data: TensorDictBase, index: torch.Tensor) -> None:
        pass

    def empty(self) -> None:
        """Drop every row (the storage's schema and capacity stay)."""
        with self._lock:
            self._drain()
            self.storage.empty()
            self.sampler.on_empty()

    # --- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.storage)

    def sample(self, batch_size: int | None = None, return_info: bool = False):
        """A batch of rows (``[batch_size]``), chosen by the sampler, on the storage's device.

        Args:
            batch_size: rows to draw (default: the buffer's ``batch_size``).
            return_info: also return the sampler's info (``index``, ``_weight``, ...).

        Raises:
            EmptyBufferError: the buffer holds no rows (or too few for the sampler).
        """
        if batch_size is None:
            batch_size = self.batch_size
        if batch_size is None:
            raise ConfigError("sample: batch_size is needed (pass it here or to ReplayBuffer)")
        if self.prefetch is not None and batch_size == self.batch_size:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="rldata-prefetch")
            while len(self._pending) < self.prefetch + 1:
                self._pending.append(self._pool.submit(self._sample, batch_size))
            data, info = self._pending.popleft().result()
        else:
            data, info = self._sample(batch_size)
        return (data, info) if return_info else data

    def _sample(self, batch_size: int) -> tuple[TensorDictBase, dict]:
        with self._lock:
            index, info = self.sampler.sample(self.storage, batch_size)
            data = self.storage.get(index, self._extra(index, info))
        if self.transform is not None:
            data = self.transform(data)
        info["index"] = index
        return data, info

    def _extra(self, index: torch.Tensor, info: dict) -> dict | None:
        return None

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().cancel()

    def __iter__(self) -> Iterator[TensorDictBase]:
        """Batches of ``batch_size``: one epoch for a without-replacement sampler, else endless."""
        if self.batch_size is None:
            raise ConfigError("iterating a ReplayBuffer needs batch_size set at construction")
        while True:
            yield self.sample()
            if self.sampler.ran_out:
                return

    # --- priorities -------------------------------------------------------------------
    def update_priority(self, index: torch.Tensor | int, priority: torch.Tensor | float) -> None:
        """Set the priorities of rows ``index`` (needs a :class:`PrioritizedSampler`)."""
        if not isinstance(self.sampler, PrioritizedSampler):
            raise ConfigError(
                f"update_priority needs a PrioritizedSampler, the buffer has {type(self.sampler).__name__}"
            )
        with self._lock:
            self.sampler.update_priority(index, priority)

    # --- persistence ------------------------------------------------------------------
    def save(self, path: str | Path, backend: str = "memmap") -> None:
        """Write every row, oldest first, as a dataset at ``path`` (open it with ``rldata.load``)."""
        with self._lock:
            specs = getattr(self.storage, "specs", None)
            store = stores.create(str(path), backend=backend, capacity=None, specs=specs)
            try:
                for rows in self.storage.chronological():
                    store.append(self.storage.get(torch.arange(rows.start, rows.stop)))
            finally:
                store.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(storage={type(self.storage).__name__}(len={len(self)}, "
            f"max_size={self.storage.capacity}), sampler={type(self.sampler).__name__}, "
            f"writer={type(self.writer).__name__}, batch_size={self.batch_size})"
        )


class TensorDictReplayBuffer(ReplayBuffer):
    """A ReplayBuffer whose batches carry ``"index"`` (and ``"_weight"`` when prioritized).

    Args:
        priority_key: the entry :meth:`update_tensordict_priority` reads priorities from
            (and :meth:`extend` too, when a batch carries it).
        *args, **kwargs: as :class:`ReplayBuffer` (storage, sampler, writer, ...).
    """

    def __init__(self, *args, priority_key: NestedKey = "td_error", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.priority_key = priority_key

    def _extra(self, index: torch.Tensor, info: dict) -> dict:
        dev = self.storage.device
        extra = {("index",): index if index.device == dev else index.to(dev, non_blocking=True)}
        weight = info.get("_weight")
        if weight is not None:
            extra[("_weight",)] = (
                weight if weight.device == dev else weight.to(dev, non_blocking=True)
            )
        return extra

    def _after_extend(self, data: TensorDictBase, index: torch.Tensor) -> None:
        if isinstance(self.sampler, PrioritizedSampler):
            priority = data.get(self.priority_key, None)
            if priority is not None:
                self.update_priority(index, priority.reshape(-1)[-index.shape[0] :])

    def update_tensordict_priority(self, data: TensorDictBase) -> None:
        """Set priorities from a sampled batch: ``data["index"]`` and ``data[priority_key]``."""
        priority = data.get(self.priority_key, None)
        if priority is None:
            raise ConfigError(
                f"update_tensordict_priority: key {self.priority_key!r} is missing from the batch"
            )
        index = data.get("index")
        self.update_priority(index, priority.reshape(index.shape[0], -1).amax(-1))
