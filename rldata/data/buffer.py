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

import json
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDictBase

from rldata import stores
from rldata.data.samplers import PrioritizedSampler, RandomSampler, Sampler
from rldata.data.storages import Storage
from rldata.data.writers import RoundRobinWriter, Writer
from rldata.errors import ConfigError, StoreNotFoundError
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
        self._read_transforms: list[Callable[[TensorDictBase], TensorDictBase]] = []
        self._write_transforms: list[Callable[[TensorDictBase], TensorDictBase]] = []
        self._write_count = 0
        self.prefetch = prefetch
        self._lock = threading.RLock()
        self._pending: deque[Future] = deque()
        self._pool: ThreadPoolExecutor | None = None

    # --- writing ----------------------------------------------------------------------
    @property
    def write_count(self) -> int:
        """Rows written through :meth:`add` and :meth:`extend` so far (TorchRL's name)."""
        return self._write_count

    def add(self, data: TensorDictBase) -> int:
        """Write one row (``batch_size=[]``); return its position."""
        storage = self.storage
        if self._write_transforms:
            data = self._on_write(data)
        self._write_count += 1
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
        if self._write_transforms:
            data = self._on_write(data)
        flat, n = storage.check(data)
        self._write_count += n
        with self._lock:
            index = self.writer.extend_index(storage, n)
            if isinstance(index, torch.Tensor) and index.shape[0] < n:
                # a ring smaller than the batch keeps only the batch's newest rows
                flat = storage.last_rows(flat, n, index.shape[0])
            storage.write(index, flat)
            self.sampler.on_write(index)
        if isinstance(index, slice):
            index = torch.from_numpy(np.arange(index.start, index.stop, dtype=np.int64))
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
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"sample: batch_size must be a positive integer, got {batch_size!r}")
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
        data = self._on_read(data)
        info["index"] = index
        return data, info

    # --- transforms -------------------------------------------------------------------
    def append_transform(
        self, transform: Callable[[TensorDictBase], TensorDictBase], *, invert: bool = False
    ) -> ReplayBuffer:
        """Run ``transform`` on every sampled batch, after those already there (TorchRL's API).

        Args:
            transform: ``td -> td``.
            invert: run it on the rows written (:meth:`add`, :meth:`extend`) instead.

        Returns:
            this buffer, for chaining.
        """
        (self._write_transforms if invert else self._read_transforms).append(transform)
        return self

    def insert_transform(
        self,
        index: int,
        transform: Callable[[TensorDictBase], TensorDictBase],
        *,
        invert: bool = False,
    ) -> ReplayBuffer:
        """As :meth:`append_transform`, at position ``index`` of the chain."""
        (self._write_transforms if invert else self._read_transforms).insert(index, transform)
        return self

    def _on_read(self, data: TensorDictBase) -> TensorDictBase:
        if self.transform is not None:
            data = self.transform(data)
        for t in self._read_transforms:
            data = t(data)
        return data

    def _on_write(self, data: TensorDictBase) -> TensorDictBase:
        for t in self._write_transforms:
            data = t(data)
        return data

    # --- indexing (TorchRL's rb[idx]) -------------------------------------------------
    def __getitem__(self, index: int | slice | list | torch.Tensor) -> TensorDictBase:
        """Rows by storage position (``rb[:10]``, ``rb[-1]``, ``rb[tensor]``), transformed.

        Raises:
            RowIndexError: a position outside ``[-len, len)``.
        """
        with self._lock:
            data = self.storage[index]
        return self._on_read(data)

    def __setitem__(self, index: int | slice | list | torch.Tensor, data: TensorDictBase) -> None:
        """Overwrite rows at existing positions (checked like any write)."""
        with self._lock:
            pos = self.storage.positions(index)
            self.storage.set(pos, data)
            self.sampler.on_write(pos)

    def next(self) -> TensorDictBase:
        """One batch of the default ``batch_size`` (TorchRL's ``rb.next()``)."""
        return self.sample()

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
    def state_dict(self) -> dict:
        """Rows (in-memory storages), sampler state, ``write_count``: tensors and numbers only.

        ``torch.save`` it and read it back with ``torch.load(f, weights_only=True)``; a
        store-backed buffer keeps its rows in its store (use :meth:`dumps`).
        """
        with self._lock:
            return {
                "storage": self.storage.state_dict(),
                "sampler": self.sampler.state_dict(),
                "write_count": self._write_count,
                "batch_size": self.batch_size,
            }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`: same rows at the same positions, same priorities."""
        with self._lock:
            self._drain()
            self.sampler.on_empty()
            self.storage.load_state_dict(state["storage"])
            if len(self.storage):
                self.sampler.on_write(slice(0, len(self.storage)))
            self.sampler.load_state_dict(state["sampler"])
            self._write_count = int(state["write_count"])

    def dumps(self, path: str | Path) -> None:
        """Checkpoint the buffer to directory ``path``: an rldata store and a JSON file.

        ``path/rows`` is an append-only rldata store of every row, oldest first (open it
        with ``rldata.load``); ``path/buffer.json`` holds ``write_count``, ``batch_size``
        and the sampler's kind; a prioritized sampler's priorities go to
        ``path/priorities.npy`` (numpy, no pickle). Nothing is pickled.

        Raises:
            StoreExistsError: ``path/rows`` already holds a store.
        """
        path = Path(path)
        with self._lock:
            self.storage.flush()
            path.mkdir(parents=True, exist_ok=True)
            self.save(path / "rows")
            meta = {
                "format": "rldata-buffer",
                "version": 1,
                "write_count": self._write_count,
                "batch_size": self.batch_size,
                "sampler": type(self.sampler).__name__,
                "rows": len(self.storage),
            }
            if isinstance(self.sampler, PrioritizedSampler):
                order = [torch.arange(r.start, r.stop) for r in self.storage.chronological()]
                state = self.sampler.state_dict()
                leaves = state["leaves"][torch.cat(order)] if order else state["leaves"]
                np.save(path / "priorities.npy", leaves.numpy(), allow_pickle=False)
                meta["max_priority"] = state["max_priority"]
            tmp = path / "buffer.json.tmp"
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, path / "buffer.json")

    def loads(self, path: str | Path) -> ReplayBuffer:
        """Replace this buffer's rows and counters by those :meth:`dumps` wrote at ``path``.

        Rows come back oldest first at positions ``0, 1, ...`` (a wrapped ring is unrolled).

        Raises:
            StoreNotFoundError: no dumped buffer at ``path``.
        """
        path = Path(path)
        meta_path = path / "buffer.json"
        if not meta_path.is_file():
            raise StoreNotFoundError(
                f"loads: {meta_path} not found; expected a ReplayBuffer.dumps directory"
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != "rldata-buffer":
            raise ConfigError(
                f"loads: {meta_path} is not an rldata buffer (format {meta.get('format')!r})"
            )
        store = stores.open(str(path / "rows"))
        try:
            rows = store.get(store.readable()) if len(store) else None
        finally:
            store.close()
        self.empty()
        if rows is not None:
            self.extend(rows)
        if isinstance(self.sampler, PrioritizedSampler) and (path / "priorities.npy").is_file():
            leaves = torch.from_numpy(np.load(path / "priorities.npy", allow_pickle=False))
            n = len(self.storage)
            self.sampler.load_state_dict(
                {
                    "leaves": leaves[-n:] if n else leaves[:0],
                    "max_priority": meta["max_priority"],
                    "written": n,
                }
            )
        self._write_count = int(meta["write_count"])
        return self

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
