"""The Storage base: checked writes, staged single-row adds, gathers, the ring cursor.

A storage checks and lands bytes; it never decides where rows go (the writer does)
or which rows are read (the sampler does). Every storage fixes its schema (keys,
per-row shapes, dtypes) on the first write and refuses writes that do not match,
before touching any row.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rldata.data._layout import REWARD_KEY, Key, Packed, check_finite_reward, flatten
from rldata.data._staging import RowReader
from rldata.data._tdbuild import make_td
from rldata.errors import ConfigError, RowIndexError, TedFormatError
from rldata.stores.format.schema import RowSchema
from rldata.ted import validate

Index = slice | torch.Tensor


FLAG_KEYS: tuple[Key, ...] = (
    ("done",),
    ("terminated",),
    ("truncated",),
    ("next", "done"),
    ("next", "terminated"),
    ("next", "truncated"),
)


def _cpu_array(t: torch.Tensor) -> np.ndarray | None:
    """``t``'s memory as numpy when it is a plain CPU tensor (None: use torch). A few numpy
    calls on a 1000-row chunk cost microseconds; the same torch ops wake the intra-op
    thread pool, which stalls on a loaded machine."""
    try:
        return t.numpy()  # refuses a GPU tensor, one needing grad, a dtype numpy lacks
    except (TypeError, RuntimeError):
        return None


def _agree(d: np.ndarray | None, a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """``d == a | b`` on every row, in numpy (False: not numpy arrays of one shape, or not)."""
    if d is None or a is None or b is None or not d.shape == a.shape == b.shape:
        return False
    return not (d != (a | b)).any()


def check_flags(flat: dict[Key, torch.Tensor]) -> None:
    """``done == terminated | truncated`` at the root and under ``next``, on every row, as the
    stores check it (a buffer and a dataset accept the same rows)."""
    for prefix in ((), ("next",)):
        done, term, trunc = (flat.get((*prefix, f)) for f in ("done", "terminated", "truncated"))
        if done is None or term is None or trunc is None:
            continue
        d, a, b = _cpu_array(done), _cpu_array(term), _cpu_array(trunc)
        if _agree(d, a, b):
            continue  # the torch ops below only find the first bad row
        bad = done != (term | trunc)
        if bool(bad.any()):
            name = ".".join((*prefix, "done"))
            row = int(bad.reshape(-1, done.shape[-1] if done.dim() else 1).any(-1).nonzero()[0])
            raise TedFormatError(
                f"key {name!r}: expected terminated | truncated at row {row}, got "
                f"{bool(done.reshape(-1)[row])}"
            )


def _check_finite_reward(flat: dict[Key, torch.Tensor]) -> None:
    """:func:`check_finite_reward`, in numpy for a CPU float reward (one reduction)."""
    reward = flat.get(REWARD_KEY)
    arr = None if reward is None else _cpu_array(reward)
    if arr is not None and arr.dtype.kind == "f" and np.isfinite(arr).all():
        return
    check_finite_reward(flat)


class Storage:
    """Base of storages: the row count, the write cursor, checked writes and gathers.

    Subclasses implement ``_allocate``, ``_land``, ``_write_slice``, ``_write_index``,
    ``_write_row``, ``_gather``, ``_column`` and ``_clear``.
    """

    _STAGE_ROWS = 256

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
        self.schema: RowSchema | None = None
        self._len = 0
        self._cursor = 0
        # rows from add(): held by reference and landed in one copy per group at the next
        # read or every _STAGE_ROWS rows; their version counters catch in-place edits
        self._reader: RowReader | None = None
        self._stage = 0  # rows staged, at positions _stage_start, _stage_start + 1, ...
        self._stage_start = 0
        self._stage_undo = (0, 0)
        self._rows: list[tuple] = []  # leaves of the staged rows, in group order
        self._versions = 0  # the sum of their version counters at add

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
            validate(data, require_traj_ids=True)
            self._fix_schema(RowSchema.from_flat(flat, 1))
        else:
            self.schema.check(flat, (n,))
        check_flags(flat)
        if not self.allow_nonfinite:
            _check_finite_reward(flat)
        return flat, n

    def check_row(self, data: TensorDictBase):
        """Validate one row (``batch_size=[]``); return it in the form ``write_row`` takes.

        The fast path reads the row's leaves, checked against the schema in one go, to be
        staged by reference; any doubt falls back to the full check (``_check_row``), which
        raises the precise error.
        """
        reader = self._reader
        if reader is not None:
            staged = reader.read(data, not self.allow_nonfinite)
            if staged is not None:
                return staged
        return self._check_row(data)

    def _check_row(self, data: TensorDictBase) -> dict[Key, torch.Tensor]:
        if not isinstance(data, TensorDictBase):
            raise TedFormatError(f"expected a TensorDict row, got {type(data).__name__}")
        if data.batch_dims != 0:
            raise TedFormatError(
                f"add takes one row (batch_size=[]), got batch_size={list(data.batch_size)}; "
                "use extend() for batches"
            )
        flat = flatten(data)
        if self.schema is None:
            validate(data.unsqueeze(0), require_traj_ids=True)
            self._fix_schema(RowSchema.from_flat(flat, 0))
        else:
            self.schema.check(flat, ())
        check_flags(flat)
        if not self.allow_nonfinite:
            check_finite_reward(flat)
        return flat

    def _fix_schema(self, schema: RowSchema) -> None:
        self.schema = schema
        self._allocate(schema)

    def write(self, index: Index, flat: dict[Key, torch.Tensor]) -> None:
        """Land checked rows at ``index`` (a slice of positions, or an int64 tensor)."""
        # numpy copies keep no autograd history: no no_grad context (~10 us a call)
        fast = isinstance(index, slice) and not self._stage
        if fast and self._write_slice_numpy(index.start, index.stop, flat):  # type: ignore[union-attr]
            self._advance(index.stop, index.stop)  # type: ignore[union-attr]
            return
        self._write_torch(index, flat)

    def _write_slice_numpy(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> bool:
        """Land rows ``[start, stop)`` with numpy copies; False: not possible, nothing written."""
        return False

    @torch.no_grad()  # a buffer keeps values, never autograd history
    def _write_torch(self, index: Index, flat: dict[Key, torch.Tensor]) -> None:
        self._flush()
        if isinstance(index, slice):
            self._write_slice(index.start, index.stop, flat)
            self._advance(index.stop, index.stop)
        else:
            self._write_index(index, flat)
            self._advance(int(index[-1]) + 1, int(index.max()) + 1)

    def last_rows(self, flat: dict[Key, torch.Tensor], n: int, m: int) -> dict[Key, torch.Tensor]:
        """Keep the newest ``m`` of ``n`` checked rows (a ring smaller than the batch)."""
        return {k: v[n - m :] for k, v in flat.items()}

    def write_row(self, pos: int, row) -> None:
        """Land one checked row at ``pos`` (staged when it came through the fast path)."""
        n = self._stage
        if type(row) is tuple:  # (leaves, version sum) from the fast path: stage it
            if n and pos != self._stage_start + n:
                self._flush()  # lands the n rows before it
                n = 0
            if not n:
                self._stage_start = pos
                self._stage_undo = (self._len, self._cursor)
            self._rows.append(row[0])
            self._versions += row[1]
            self._stage = n + 1
            # _advance, inlined: this runs once per environment step
            cap = self.capacity
            self._cursor = pos + 1 if cap is None or pos + 1 < cap else 0
            if pos >= self._len:
                self._len = pos + 1
            if n + 1 >= self._STAGE_ROWS:
                self._flush()
            return
        self._flush()
        with torch.no_grad():
            self._write_row(pos, row)
        self._advance(pos + 1, pos + 1)

    def flush(self) -> None:
        """Land rows staged by ``add`` now (reads and other writes do it themselves)."""
        self._flush()

    @torch.no_grad()
    def _flush(self) -> None:
        k = self._stage
        if not k:
            return
        reader = self._reader
        assert reader is not None  # rows are staged only once a reader exists
        rows, versions = self._rows, self._versions
        self._rows, self._versions, self._stage = [], 0, 0
        changed = reader.version_sum(rows) != versions
        try:
            self._land(self._stage_start, k, reader.blocks(rows))
            positions = torch.arange(self._stage_start, self._stage_start + k)
            check_flags({key: self._gather_key(key, positions) for key in FLAG_KEYS})
        except BaseException:
            self._len, self._cursor = self._stage_undo  # nothing of the stage is readable
            raise
        if changed:
            raise TedFormatError(
                "a row passed to add() was modified in place before it was stored; "
                "add a copy (td.clone()) when you reuse its tensors"
            )

    def _advance(self, last_stop: int, high: int) -> None:
        cap = self.capacity
        self._cursor = last_stop if cap is None else last_stop % cap
        if high > self._len:
            self._len = high

    def empty(self) -> None:
        """Forget every row (the schema stays)."""
        self._clear()
        self._stage = 0
        self._rows, self._versions = [], 0
        self._len = 0
        self._cursor = 0

    # --- reads ------------------------------------------------------------------------
    def get(
        self, index: torch.Tensor, extra: dict[Key, torch.Tensor] | None = None
    ) -> TensorDictBase:
        """Rows at positions ``index`` (int64 ``[B]``) as a TensorDict ``[B]`` on ``device``.

        ``extra`` entries (already ``[B]`` and on ``device``) are added to the batch.
        """
        if self._stage:
            self._flush()
        flat = self._gather(index)
        if extra:
            flat.update(extra)
        return make_td(flat, index.shape[0], self.device)

    def column(self, key: Key) -> torch.Tensor | None:
        """One column over ``[0, len)`` for samplers' index math; None when absent."""
        if self.schema is None or key not in self.schema.by_key:
            return None
        self._flush()
        return self._column(key)

    def segments(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Runs of rows of one trajectory that end at an episode end or a trajectory change,
        as ``(starts, lengths)`` int64 position tensors, when the storage knows them without
        reading a column (a store's episode index); None otherwise.

        Trajectory samplers draw windows from these in ``O(segments)`` memory instead of
        reading the trajectory-id and done columns of every row.
        """
        return None

    def chronological(self, chunk: int = 65536) -> Iterator[slice]:
        """Position ranges covering every row, oldest first (for saving)."""
        ranges = [(0, self._len)]
        if self.wrapped:
            ranges = [(self._cursor, self._len), (0, self._cursor)]
        for start, stop in ranges:
            for s in range(start, stop, chunk):
                yield slice(s, min(s + chunk, stop))

    # --- TorchRL-style access ----------------------------------------------------------
    @property
    def max_size(self) -> int | None:
        """TorchRL's name for :attr:`capacity` (None: an append-only storage that grows)."""
        return self.capacity

    def positions(self, index: int | slice | list | torch.Tensor) -> torch.Tensor:
        """Positions ``[0, len)`` for an int, slice, list or tensor (negatives count from the end).

        Raises:
            RowIndexError: a position outside ``[-len, len)``.
        """
        n = len(self)
        if isinstance(index, slice):
            return torch.arange(n)[index]
        pos = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        if pos.numel():
            lo, hi = (int(v) for v in torch.aminmax(pos))
            if lo < -n or hi >= n:
                raise RowIndexError(
                    f"storage index: expected positions in [{-n}, {n}), got [{lo}, {hi}]"
                )
        return torch.where(pos < 0, pos + n, pos)

    def __getitem__(self, index: int | slice | list | torch.Tensor) -> TensorDictBase:
        """Rows by position, as TorchRL's ``storage[idx]``: an int gives one row (``[]``)."""
        rows = self.get(self.positions(index))
        return rows[0] if isinstance(index, int) else rows

    def set(self, index: int | slice | list | torch.Tensor, data: TensorDictBase) -> None:
        """Overwrite rows at existing positions (TorchRL's ``storage.set``), checked first."""
        pos = self.positions(index)
        if data.batch_dims == 0:
            data = data.unsqueeze(0)
        flat, n = self.check(data)
        if n != pos.numel():
            raise ConfigError(f"storage.set: {pos.numel()} positions but {n} rows")
        if n:
            self.write(pos, flat)

    def state_dict(self) -> dict:
        """Rows ``[0, len)`` (one tensor per key, ``"a.b"`` names), length and cursor.

        Plain tensors and numbers only: ``torch.save`` it and ``torch.load(...,
        weights_only=True)`` it back.
        """
        n = len(self)
        rows = self.get(torch.arange(n)) if n else None
        leaves = {} if rows is None else flatten(rows)
        return {
            "rows": {".".join(k): v for k, v in leaves.items()},
            "len": n,
            "cursor": self._cursor,
            "max_size": self.capacity,
        }

    def load_state_dict(self, state: dict) -> None:
        """Replace every row by those of :meth:`state_dict` (same positions and cursor)."""
        if state.get("max_size") != self.capacity:
            raise ConfigError(
                f"load_state_dict: expected a storage of max_size={self.capacity}, the state "
                f"has max_size={state.get('max_size')}"
            )
        self.empty()
        n = int(state["len"])
        if not n:
            return
        td = TensorDict({}, batch_size=[n])
        for name, value in state["rows"].items():
            td.set(tuple(name.split(".")), value)
        flat, _ = self.check(td)
        self.write(slice(0, n), flat)
        self._cursor = int(state["cursor"])

    # --- backend hooks ----------------------------------------------------------------
    def _allocate(self, schema: RowSchema) -> None:
        """Prepare for rows of ``schema``; call ``_enable_staging`` to stage single adds."""
        raise NotImplementedError

    def _enable_staging(self, packed: Packed) -> None:
        self._reader = RowReader(packed)
        self._rows, self._versions = [], 0

    def _land(self, start: int, k: int, blocks: list[list[torch.Tensor]]) -> None:
        """Write ``k`` staged rows at positions ``start, start + 1, ...``.

        ``blocks[g]`` holds group ``g``'s leaves, row after row (see ``stack_pieces``).
        """
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

    def _gather_key(self, key: Key, index: torch.Tensor) -> torch.Tensor:
        """One key's rows at ``index`` (the flag check of staged rows)."""
        return self._column(key)[index]

    def _clear(self) -> None:
        pass
