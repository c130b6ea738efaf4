"""Storages over rldata stores: a saved buffer and a recorded dataset are one thing."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rldata import stores
from rldata.data._layout import Key, Packed, flatten, stack_pieces
from rldata.data._storage import Index, Storage
from rldata.data._tdbuild import build_tree, make_td, tree_plan
from rldata.errors import ConfigError, TedFormatError
from rldata.stores.format.schema import RowSchema


class StoreStorage(Storage):
    """Rows in an rldata store (``rldata.stores``): a saved buffer and a dataset are one thing.

    Writes go through ``Store.append`` (which checks schema, TED flags and rewards, and
    wraps a ring exactly as :class:`RoundRobinWriter` does); reads gather from the
    store's zero-copy ``rows_view()`` when the backend offers one, else from
    ``Store.get``. A read-only store (``rldata.load``) is sampled in time order over its
    committed, readable rows.

    Args:
        store: an open store (writable or read-only).
        device: where samples land.
    """

    _STAGE_ROWS = 1024  # each landing is one Store.append, with its own checks: fewer, larger
    _no_view_at = -1  # the row count at which the store last had no rows_view() (_view)

    def __init__(self, store, device: torch.device | str = "cpu") -> None:
        super().__init__(store.capacity, device, allow_nonfinite=True)
        self.store = store
        self._leaves: list[tuple[Key, torch.Tensor]] | None = None
        self._logical: torch.Tensor | None = None
        self._columns: dict[Key, torch.Tensor] = {}
        self._attach()

    def set(self, index, data: TensorDictBase) -> None:
        """Refused: a store only appends (committed rows are never rewritten in place)."""
        raise ConfigError(
            f"storage.set: the store at {self.store.path} only appends rows; overwrite rows "
            "in place with an in-memory LazyTensorStorage"
        )

    def state_dict(self) -> dict:
        """Refused: the rows live in the store; ``ReplayBuffer.dumps(path)`` copies them."""
        raise ConfigError(
            f"state_dict: the rows of a store-backed storage live in its store "
            f"({self.store.path}); commit it, or copy the buffer with ReplayBuffer.dumps(path)"
        )

    def load_state_dict(self, state: dict) -> None:
        """Refused, as :meth:`state_dict`: ``ReplayBuffer.loads(path)`` reads a dumped buffer."""
        raise ConfigError(
            f"load_state_dict: a store-backed storage ({self.store.path}) is loaded from its "
            "store; use ReplayBuffer.loads(path) to read a dumped buffer into it"
        )

    def _attach(self) -> None:
        store = self.store
        n = len(store)
        if store.schema is not None:
            self._fix_schema(RowSchema.from_json(store.schema))
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

    def check_row(self, data: TensorDictBase):
        reader = self._reader  # the fast path of Storage.check_row, for a writable store
        if reader is not None and self.store.writable:
            staged = reader.read(data, not self.allow_nonfinite)
            if staged is not None:
                return staged
        return self._check_row(data)

    def _check_row(self, data: TensorDictBase) -> dict[Key, torch.Tensor]:
        self._check_writable()
        return super()._check_row(data)

    def _check_writable(self) -> None:
        if not self.store.writable:
            raise ConfigError(
                f"the store at {self.store.path} was opened read-only; open it with mode='a' to write"
            )

    @torch.no_grad()  # a buffer keeps values, never autograd history
    def write(self, index: Index, data: TensorDictBase) -> None:  # type: ignore[override]
        self._flush()
        positions = self.store.append(data)
        self._leaves = None
        if positions.shape[0]:
            top = int(positions.max()) + 1
            self._advance(int(positions[-1]) + 1, top)

    def _write_row(self, pos: int, flat: dict[Key, torch.Tensor]) -> None:
        self.store.append(make_td({k: v.unsqueeze(0) for k, v in flat.items()}, 1, None))
        self._leaves = None

    def _land(self, start: int, k: int, blocks: list[list[torch.Tensor]]) -> None:
        flat = {}
        for g, pieces in zip(self._row_layout.groups, blocks):
            block = stack_pieces(g, pieces, k)
            parts = (block,) if len(g.keys) == 1 else torch.split_with_sizes(block, g.widths, 1)
            for col, part in zip(g.columns, parts):
                flat[col.key] = part.reshape(k, *col.shape)
        self.store.append(make_td(flat, k, None))
        self._leaves = None

    def last_rows(self, data: TensorDictBase, n: int, m: int) -> TensorDictBase:  # type: ignore[override]
        return data  # the store keeps a too-large batch's newest rows itself

    def commit(self) -> None:
        """Make every row written so far durable and visible to readers."""
        self._flush()
        self.store.commit()

    def _allocate(self, schema: RowSchema) -> None:
        self._row_layout = Packed(schema, 0, torch.device("cpu"))
        self._enable_staging(self._row_layout)

    def _clear(self) -> None:
        raise ConfigError(f"a store-backed buffer cannot be emptied in place ({self.store.path})")

    # --- reads: one gather per key over the memory-mapped view ---------------------------
    def _view(self) -> list[tuple[Key, torch.Tensor]] | None:
        if self._leaves is None:
            if self._no_view_at == self._len:
                return None  # asked at this row count already (~2 us a batch saved)
            if not getattr(self.store, "random_reads_mapped", True):
                self._no_view_at = self._len
                return None  # a store past RLDATA_MAP_BYTES: get() preads each row
            td = self.store.rows_view()
            if td is None:
                self._no_view_at = self._len
                return None
            self._leaves = [(k, v.as_subclass(torch.Tensor)) for k, v in flatten(td).items()]
            nodes, self._parents = tree_plan([k for k, _ in self._leaves])
            self._plan = [(nodes[k[:-1]], k[-1], v) for k, v in self._leaves]
        return self._leaves

    def get(self, index: torch.Tensor, extra: dict[Key, torch.Tensor] | None = None) -> TensorDict:
        # the hot path: one gather per key over the memory-mapped view, no re-validation
        if self._stage:
            self._flush()
        if self._view() is None:
            if not extra and self._logical is None:
                # a store without a zero-copy view (observations stored once, decoded
                # chunks) builds the batch itself: no second pass over its leaves
                td = self.store.get(index)
                return td if td.device == self.device else td.to(self.device)
            return super().get(index, extra)
        if self._logical is not None:
            index = self._logical.index_select(0, index)
        dev = self.device
        on_cpu = dev.type == "cpu"
        dicts: list[dict] = [{} for _ in range(len(self._parents) + 1)]
        for node, name, column in self._plan:
            rows = column.index_select(0, index)
            dicts[node][name] = rows if on_cpu else rows.to(dev, non_blocking=True)
        if extra:
            for key, value in extra.items():
                dicts[0][key[-1]] = value
        return build_tree(dicts, self._parents, index.shape[0], dev)

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

    def segments(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The store's episode index as position runs (append-only stores; a ring's time
        order is a permutation of positions, so it reads its columns instead)."""
        store = self.store
        table = getattr(store, "segments", None)
        if store.capacity is not None or self._logical is not None or table is None:
            return None
        if self._stage:
            self._flush()
        key = (self._len, len(store))  # append-only: the runs are a function of the rows
        cached = getattr(self, "_runs_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        seg = table()  # built from the episode index: O(episodes), so once per length
        starts, lengths = seg.get("start").numpy(), seg.get("length").numpy()
        ends = np.minimum(starts + lengths, self._len)
        keep = starts < ends
        traj = seg.get("traj_id").numpy()[keep]
        runs = merge_runs(
            torch.from_numpy(traj),
            torch.from_numpy(starts[keep]),
            torch.from_numpy((ends - starts)[keep]),
        )
        self._runs_cache = (key, runs)
        return runs

    def _column(self, key: Key) -> torch.Tensor:
        if self._logical is not None:  # read-only: gather the column once, in time order
            cached = self._columns.get(key)
            if cached is None:
                cached = self._columns[key] = self._read_column(key)
            return cached
        return self._read_column(key)

    def _read_column(self, key: Key) -> torch.Tensor:
        for k, v in self._view() or ():
            if k == key:
                v = v[: self._len] if self._logical is None else v
                return v if self._logical is None else v.index_select(0, self._logical)
        column = self.store.column(".".join(key))  # one key, not every row of every key
        if column is not None:
            return column[: self._len] if self._logical is None else column[self._logical]
        rows = self.store.get(torch.arange(self._len) if self._logical is None else self._logical)
        return rows.get(key)


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
        self._columns = {}

    def _open_store(self) -> None:
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

    def _check_row(self, data: TensorDictBase) -> dict[Key, torch.Tensor]:
        if self.store is None:  # (the fast path runs only once a first write opened it)
            self._open_store()
        return super()._check_row(data)

    @property
    def specs(self):
        return None if self.store is None else self.store.specs

    def close(self) -> None:
        """Commit and release the store's writer lock."""
        if self.store is not None:
            self._flush()
            self.store.close()


def merge_runs(
    traj: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Join segments that continue each other (same trajectory, adjacent rows): a sampler
    reading columns sees them as one run, and so must a sampler reading the index.

    In numpy: torch's boolean-mask indexing of a few thousand elements waits ~20 ms on
    its worker threads when the machine's cores are busy (once per batch of a live buffer)."""
    if starts.numel() < 2:
        return starts, lengths
    t, s, n = traj.numpy(), starts.numpy(), lengths.numpy()
    joins = (t[1:] == t[:-1]) & (s[1:] == s[:-1] + n[:-1])
    heads = np.flatnonzero(np.concatenate([[True], ~joins]))
    return torch.from_numpy(s[heads]), torch.from_numpy(np.add.reduceat(n, heads))
