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

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator

import torch
from tensordict import TensorDictBase

from rldata.data._layout import (
    Key,
    Packed,
    RowReader,
    Schema,
    check_finite_reward,
    flatten,
    make_td,
)
from rldata.errors import ConfigError, TedFormatError
from rldata.ted import validate

Index = slice | torch.Tensor


class Storage:
    """Base of storages: the row count, the write cursor, checked writes and gathers.

    Subclasses implement ``_allocate``, ``_write_slice``, ``_write_index``,
    ``_write_row``, ``_gather``, ``_column`` and ``_clear``.
    """

    def __init__(
        self,
        max_size: int | None,
        device: torch.device | str = "cpu",
        allow_nonfinite: bool = False,
    ) -> None:
        if max_size is not None and (not isinstance(max_size, int) or max_size < 1):
            raise ConfigError(f"max_size: expected a positive int or None, got {max_size!r}")
        self.capacity = max_size
        self.device = torch.device(device)
        self.allow_nonfinite = allow_nonfinite
        self.schema: Schema | None = None
        self._len = 0
        self._cursor = 0

    # --- sizes ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @property
    def cursor(self) -> int:
        """Position after the last written row; once a ring is full, its oldest row."""
        return self._cursor

    @property
    def wrapped(self) -> bool:
        """True when a ring has overwritten rows (the seam at ``cursor`` splits time)."""
        return self.capacity is not None and self._len == self.capacity and self._cursor != 0

    # --- writes -----------------------------------------------------------------------
    def check(self, data: TensorDictBase) -> tuple[dict[Key, torch.Tensor], int]:
        """Validate a batch of rows; return its leaves and row count. Fixes the schema once.

        Raises:
            TedFormatError: the first write is not TED, or a reward is NaN/inf.
            SchemaMismatchError: a later write has a missing/extra key, wrong shape or dtype.
        """
        if not isinstance(data, TensorDictBase):
            raise TedFormatError(f"expected a TensorDict of rows, got {type(data).__name__}")
        if data.batch_dims == 0:
            raise TedFormatError(
                "extend needs a batch of rows (batch_size=[N]); use add() for one row"
            )
        if data.batch_dims > 1:
            data = data.reshape(-1)
        n = data.batch_size[0]
        flat = flatten(data)
        if self.schema is None:
            validate(data)
            self._fix_schema(Schema.from_flat(flat, 1))
        else:
            self.schema.check(flat, (n,))
        if not self.allow_nonfinite:
            check_finite_reward(flat)
        return flat, n

    def check_row(self, data: TensorDictBase) -> dict[Key, torch.Tensor]:
        """Validate one row (``batch_size=[]``); return its leaves."""
        if not isinstance(data, TensorDictBase):
            raise TedFormatError(f"expected a TensorDict row, got {type(data).__name__}")
        if data.batch_dims != 0:
            raise TedFormatError(
                f"add takes one row (batch_size=[]), got batch_size={list(data.batch_size)}; "
                "use extend() for batches"
            )
        flat = flatten(data)
        if self.schema is None:
            validate(data.unsqueeze(0))
            self._fix_schema(Schema.from_flat(flat, 0))
        else:
            self.schema.check(flat, ())
        if not self.allow_nonfinite:
            check_finite_reward(flat)
        return flat

    def _fix_schema(self, schema: Schema) -> None:
        self.schema = schema
        self._allocate(schema)

    def write(self, index: Index, flat: dict[Key, torch.Tensor]) -> None:
        """Land checked rows at ``index`` (a slice of positions, or an int64 tensor)."""
        if isinstance(index, slice):
            self._write_slice(index.start, index.stop, flat)
            self._advance(index.stop, index.stop)
        else:
            self._write_index(index, flat)
            self._advance(int(index[-1]) + 1, int(index.max()) + 1)

    def last_rows(self, flat: dict[Key, torch.Tensor], n: int, m: int) -> dict[Key, torch.Tensor]:
        """Keep the newest ``m`` of ``n`` checked rows (a ring smaller than the batch)."""
        return {k: v[n - m :] for k, v in flat.items()}

    def write_row(self, pos: int, flat: dict[Key, torch.Tensor]) -> None:
        """Land one checked row at ``pos``."""
        self._write_row(pos, flat)
        self._advance(pos + 1, pos + 1)

    def _advance(self, last_stop: int, high: int) -> None:
        cap = self.capacity
        self._cursor = last_stop if cap is None else last_stop % cap
        if high > self._len:
            self._len = high

    def empty(self) -> None:
        """Forget every row (the schema stays)."""
        self._clear()
        self._len = 0
        self._cursor = 0

    # --- reads ------------------------------------------------------------------------
    def get(
        self, index: torch.Tensor, extra: dict[Key, torch.Tensor] | None = None
    ) -> TensorDictBase:
        """Rows at positions ``index`` (int64 ``[B]``) as a TensorDict ``[B]`` on ``device``.

        ``extra`` entries (already ``[B]`` and on ``device``) are added to the batch.
        """
        flat = self._gather(index)
        if extra:
            flat.update(extra)
        return make_td(flat, index.shape[0], self.device)

    def column(self, key: Key) -> torch.Tensor | None:
        """One column over ``[0, len)`` for samplers' index math; None when absent."""
        if self.schema is None or key not in self.schema.by_key:
            return None
        return self._column(key)

    def chronological(self, chunk: int = 65536) -> Iterator[slice]:
        """Position ranges covering every row, oldest first (for saving)."""
        ranges = [(0, self._len)]
        if self.wrapped:
            ranges = [(self._cursor, self._len), (0, self._cursor)]
        for start, stop in ranges:
            for s in range(start, stop, chunk):
                yield slice(s, min(s + chunk, stop))

    # --- backend hooks ----------------------------------------------------------------
    def _allocate(self, schema: Schema) -> None:
        raise NotImplementedError

    def _write_slice(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> None:
        raise NotImplementedError

    def _write_index(self, index: torch.Tensor, flat: dict[Key, torch.Tensor]) -> None:
        raise NotImplementedError

    def _write_row(self, pos: int, flat: dict[Key, torch.Tensor]) -> None:
        raise NotImplementedError

    def _gather(self, index: torch.Tensor) -> dict[Key, torch.Tensor]:
        raise NotImplementedError

    def _column(self, key: Key) -> torch.Tensor:
        raise NotImplementedError

    def _clear(self) -> None:
        pass


class LazyTensorStorage(Storage):
    """Rows in RAM or on a GPU, packed one tensor per dtype; allocated on the first write.

    Args:
        max_size: ring capacity in rows, or None for an append-only storage that grows.
        device: where rows live and samples land.
        allow_nonfinite: keep NaN/inf rewards instead of refusing them.
    """

    _INITIAL_ROWS = 1024
    _STAGE_ROWS = 256

    def __init__(
        self,
        max_size: int | None,
        device: torch.device | str = "cpu",
        allow_nonfinite: bool = False,
    ) -> None:
        super().__init__(max_size, device, allow_nonfinite)
        self._packed: Packed | None = None
        self._reader: RowReader | None = None
        # rows from add(): held by reference, landed in one copy per dtype at the next read
        self._stage: list[list[list[torch.Tensor]]] = []
        self._stage_start = 0
        self._stage_versions: list[int] = []

    def _allocate(self, schema: Schema) -> None:
        rows = self.capacity if self.capacity is not None else self._INITIAL_ROWS
        self._packed = Packed(schema, rows, self.device)
        self._reader = RowReader(self._packed)

    def check_row(self, data: TensorDictBase):
        # fast path: leaves read in packed order with cheap checks; any doubt -> full check
        reader = self._reader
        if reader is not None:
            versions = self._stage_versions
            mark = len(versions)
            pieces = reader.read(data, versions)
            if pieces is not None and (self.allow_nonfinite or reader.finite_reward(pieces)):
                return pieces
            del versions[mark:]
        return super().check_row(data)

    def _flush(self) -> None:
        """Land the rows staged by ``add`` (consecutive positions from ``_stage_start``)."""
        rows = self._stage
        if not rows:
            return
        now = [p._version for row in rows for group in row for p in group]
        # versions of a row being added right now (checked, not yet staged) stay listed
        changed = now != self._stage_versions[: len(now)]
        self._reserve(self._stage_start + len(rows))
        self._packed.write_rows_pieces(self._stage_start, rows)
        self._stage = []
        self._stage_versions = self._stage_versions[len(now) :]
        if changed:
            raise TedFormatError(
                "a row passed to add() was modified in place before it was stored; "
                "add a copy (td.clone()) when you reuse its tensors"
            )

    def _reserve(self, stop: int) -> None:
        packed = self._packed
        if self.capacity is None and stop > packed.rows:
            packed.grow(max(stop, 2 * packed.rows), self._len)

    def _write_slice(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> None:
        self._flush()
        self._reserve(stop)
        self._packed.write_slice(start, stop, flat)

    def _write_index(self, index: torch.Tensor, flat: dict[Key, torch.Tensor]) -> None:
        self._flush()
        if self.capacity is None:
            self._reserve(int(index.max()) + 1)
        self._packed.write_index(index.to(self.device), flat)

    def _write_row(self, pos: int, row) -> None:
        stage = self._stage
        if stage and pos != self._stage_start + len(stage):
            self._flush()
            stage = self._stage
        if isinstance(row, list):
            if not stage:
                self._stage_start = pos
            stage.append(row)
            if len(stage) >= self._STAGE_ROWS:
                self._flush()
            return
        self._flush()
        self._reserve(pos + 1)
        self._packed.write_row(pos, row)

    def _gather(self, index: torch.Tensor) -> dict[Key, torch.Tensor]:
        if self._stage:
            self._flush()
        if index.device != self.device:
            index = index.to(self.device)
        return self._packed.gather(index)

    def _clear(self) -> None:
        self._stage = []
        self._stage_versions = []

    def _column(self, key: Key) -> torch.Tensor:
        self._flush()
        return self._packed.column(key, self._len)


class StoreStorage(Storage):
    """Rows in an rldata store (``rldata.stores``): a saved buffer and a dataset are one thing.

    Writes go through ``Store.append`` (which checks schema, TED flags and rewards, and
    wraps a ring exactly as :class:`RoundRobinWriter` does); reads gather from the
    store's zero-copy ``tensordict()`` view when the backend offers one, else from
    ``Store.get``. A read-only store (``rldata.load``) is sampled in time order over its
    committed, readable rows.

    Args:
        store: an open store (writable or read-only).
        device: where samples land.
    """

    def __init__(self, store, device: torch.device | str = "cpu") -> None:
        super().__init__(store.capacity, device, allow_nonfinite=True)
        self.store = store
        self._leaves: list[tuple[Key, torch.Tensor]] | None = None
        self._logical: torch.Tensor | None = None
        self._attach()

    def _attach(self) -> None:
        store = self.store
        n = len(store)
        if store.schema is not None:
            self._fix_schema(_schema_of(store.schema))
        if store.writable:
            self._len = (
                n if store.capacity is None else min(store.manifest["written"], store.capacity)
            )
            self._cursor = store.manifest["cursor"] if store.capacity else n
        else:
            # read-only: logical row i is the i-th readable row, oldest first (no seam)
            self._len, self._cursor = n, n
            if store.capacity is not None:
                self._logical = store.readable()

    @property
    def specs(self):
        return self.store.specs

    # --- writes: the store checks and lands rows ----------------------------------------
    def check(self, data: TensorDictBase) -> tuple[TensorDictBase, int]:
        if not isinstance(data, TensorDictBase):
            raise TedFormatError(f"expected a TensorDict of rows, got {type(data).__name__}")
        if data.batch_dims == 0:
            raise TedFormatError(
                "extend needs a batch of rows (batch_size=[N]); use add() for one row"
            )
        if data.batch_dims > 1:
            data = data.reshape(-1)
        self._check_writable()
        _, n = super().check(data)  # same checks and messages as in memory; the store re-checks
        return data, n

    def check_row(self, data: TensorDictBase) -> TensorDictBase:
        self._check_writable()
        super().check_row(data)
        return data.unsqueeze(0)

    def _check_writable(self) -> None:
        if not self.store.writable:
            raise ConfigError(
                f"the store at {self.store.path} was opened read-only; open it with mode='a' to write"
            )

    def write(self, index: Index, data: TensorDictBase) -> None:
        positions = self.store.append(data)
        self._leaves = None
        if positions.shape[0]:
            top = int(positions.max()) + 1
            self._advance(int(positions[-1]) + 1, top)

    def write_row(self, pos: int, row: TensorDictBase) -> None:
        self.write(slice(pos, pos + 1), row)

    def last_rows(self, data: TensorDictBase, n: int, m: int) -> TensorDictBase:
        return data  # the store keeps a too-large batch's newest rows itself

    def commit(self) -> None:
        """Make every row written so far durable and visible to readers."""
        self.store.commit()

    def _allocate(self, schema: Schema) -> None:
        pass

    def _clear(self) -> None:
        raise ConfigError(f"a store-backed buffer cannot be emptied in place ({self.store.path})")

    # --- reads: one gather per key over the memory-mapped view ---------------------------
    def _view(self) -> list[tuple[Key, torch.Tensor]] | None:
        if self._leaves is None:
            td = self.store.tensordict()
            if td is None:
                return None
            self._leaves = [(k, v.as_subclass(torch.Tensor)) for k, v in flatten(td).items()]
        return self._leaves

    def _gather(self, index: torch.Tensor) -> dict[Key, torch.Tensor]:
        if self._logical is not None:
            index = self._logical.index_select(0, index)
        leaves = self._view()
        dev = self.device
        if leaves is None:
            td = self.store.get(index)
            return {k: v.to(dev) for k, v in flatten(td).items()}
        if dev.type == "cpu":
            return {k: v.index_select(0, index) for k, v in leaves}
        return {k: v.index_select(0, index).to(dev, non_blocking=True) for k, v in leaves}

    def _column(self, key: Key) -> torch.Tensor:
        for k, v in self._view() or ():
            if k == key:
                v = v[: self._len]
                return v if self._logical is None else v.index_select(0, self._logical)
        rows = self.store.get(torch.arange(self._len) if self._logical is None else self._logical)
        return rows.get(key)


def _schema_of(store_schema: dict[str, dict]) -> Schema:
    from rldata.data._layout import Column

    cols = []
    for name, entry in store_schema.items():
        dtype = getattr(torch, entry["dtype"])
        cols.append(Column(tuple(name.split(".")), tuple(entry["shape"]), dtype))
    return Schema(cols)


class LazyMemmapStorage(StoreStorage):
    """Rows in a memory-mapped store directory, created on the first write.

    Args:
        max_size: ring capacity in rows, or None for an append-only dataset that grows.
        scratch_dir: the store directory (must not exist or be empty); default a temporary
            directory, removed when the storage is garbage collected.
        device: where samples land.
        allow_nonfinite: keep NaN/inf rewards instead of refusing them.
        commit_every: commit (fsync + manifest) every this many rows; rows are readable by
            this buffer at once either way, and by other processes after a commit.
    """

    def __init__(
        self,
        max_size: int | None,
        scratch_dir: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        allow_nonfinite: bool = False,
        commit_every: int | None = None,
    ) -> None:
        Storage.__init__(self, max_size, device, allow_nonfinite)
        self.scratch_dir = scratch_dir
        self.commit_every = commit_every
        self.store = None
        self._leaves = None
        self._logical = None

    def _open_store(self) -> None:
        from rldata import stores

        path = self.scratch_dir
        if path is None:
            path = tempfile.mkdtemp(prefix="rldata-memmap-")
            weakref.finalize(self, shutil.rmtree, path, True)
        self.store = stores.create(
            path,
            backend="memmap",
            capacity=self.capacity,
            commit_every=self.commit_every,
            allow_nonfinite=self.allow_nonfinite,
        )

    def check(self, data: TensorDictBase) -> tuple[TensorDictBase, int]:
        if self.store is None:
            self._open_store()
        return super().check(data)

    def check_row(self, data: TensorDictBase) -> TensorDictBase:
        if self.store is None:
            self._open_store()
        return super().check_row(data)

    @property
    def specs(self):
        return None if self.store is None else self.store.specs

    def close(self) -> None:
        """Commit and release the store's writer lock."""
        if self.store is not None:
            self.store.close()
