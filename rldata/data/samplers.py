"""Samplers: which rows a batch reads. Index math only; they never touch row bytes.

A sampler sees the storage only through ``len(storage)``, ``storage.cursor`` /
``storage.wrapped`` (the ring's seam) and, for :class:`SliceSampler`, the trajectory-id
and done columns. ``sample`` returns ``(index, info)``: int64 positions and extra
per-row entries such as prioritized importance weights (``info["_weight"]``).

Examples:
    >>> from rldata.data.storages import LazyTensorStorage
    >>> from rldata.testing import ted_transitions
    >>> storage = LazyTensorStorage(100)
    >>> flat, n = storage.check(ted_transitions(20))
    >>> storage.write(slice(0, n), flat)
    >>> index, info = RandomSampler().sample(storage, 8)
    >>> index.shape
    torch.Size([8])
"""

from __future__ import annotations

import math

import torch

from rldata.data._layout import Key
from rldata.data._sum_tree import SumMinTree
from rldata.data.storages import Index, Storage
from rldata.errors import ConfigError, EmptyBufferError, TedFormatError
from rldata.ted import TED_KEYS, NestedKey, key_name

_NEXT_DONE = TED_KEYS.nxt(TED_KEYS.done)


def _as_key(key: NestedKey) -> Key:
    return (key,) if isinstance(key, str) else tuple(key)


def _require_rows(storage: Storage, batch_size: int, who: str) -> int:
    n = len(storage)
    if n == 0:
        raise EmptyBufferError(
            f"{who}: cannot sample batch_size={batch_size} from an empty buffer (len 0)"
        )
    return n


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive int, got {batch_size!r}")


class Sampler:
    """Base: pick positions; hear about writes (``on_write``) and resets (``on_empty``)."""

    ran_out = False

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def on_write(self, index: Index) -> None:
        """Rows at ``index`` were (over)written."""

    def on_empty(self) -> None:
        """The storage was emptied."""

    def state_dict(self) -> dict:
        """What the sampler needs to continue where it stopped (tensors and numbers only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`."""


class RandomSampler(Sampler):
    """Uniform with replacement over the rows held.

    Args:
        generator: a ``torch.Generator`` for reproducible draws (default: torch's global RNG).
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        n = len(storage)
        if n == 0:
            raise EmptyBufferError(
                f"RandomSampler: cannot sample batch_size={batch_size} from an empty buffer (len 0)"
            )
        return torch.randint(n, (batch_size,), generator=self.generator), {}


class SamplerWithoutReplacement(Sampler):
    """Each row once per epoch, in random (``shuffle``) or storage order.

    Args:
        drop_last: end the epoch rather than return a last batch smaller than asked.
        shuffle: visit rows in a random permutation (else in position order).
        generator: a ``torch.Generator`` for reproducible permutations.

    An epoch starts over when it is used up or when the row count changed since it began.
    ``ran_out`` is True right after the batch that ended an epoch (iteration stops there).
    """

    def __init__(
        self,
        drop_last: bool = False,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.generator = generator
        self._order: torch.Tensor | None = None
        self._next = 0
        self._epoch_len = -1

    def _new_epoch(self, n: int) -> None:
        self._order = (
            torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        )
        self._next = 0
        self._epoch_len = n
        self.ran_out = False

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        n = _require_rows(storage, batch_size, "SamplerWithoutReplacement")
        if batch_size > n:
            raise EmptyBufferError(
                f"SamplerWithoutReplacement: batch_size={batch_size} asks for more rows than the "
                f"buffer holds (len {n})"
            )
        left = self._epoch_len - self._next
        if (
            self._order is None
            or n != self._epoch_len
            or left == 0
            or (self.drop_last and left < batch_size)
        ):
            self._new_epoch(n)
        order: torch.Tensor = self._order  # type: ignore[assignment]  # set by _new_epoch
        index = order[self._next : self._next + batch_size]
        self._next += index.shape[0]
        left = n - self._next
        self.ran_out = left == 0 or (self.drop_last and left < batch_size)
        return index, {}

    def on_empty(self) -> None:
        self._order = None
        self._epoch_len = -1
        self.ran_out = False

    def state_dict(self) -> dict:
        return {"order": self._order, "next": self._next, "epoch_len": self._epoch_len}

    def load_state_dict(self, state: dict) -> None:
        self._order, self._next = state["order"], int(state["next"])
        self._epoch_len = int(state["epoch_len"])


class PrioritizedSampler(Sampler):
    """Proportional prioritized replay (Schaul et al., 2016) on a wide segment tree.

    Row ``i`` is drawn with probability ``P(i) = p_i^alpha / sum_k p_k^alpha`` where
    ``p_i = |priority_i| + eps``; new rows get the largest priority seen so far. The
    importance weight ``w_i = (N P(i))^-beta / max_k (N P(k))^-beta = (p_i^alpha /
    min_k p_k^alpha)^-beta`` is returned as ``info["_weight"]``.

    Args:
        max_capacity: rows the tree covers (the storage capacity).
        alpha: priority exponent (0 = uniform).
        beta: importance-weight exponent (1 = full correction).
        eps: added to every priority so no row becomes unreachable.
        generator: a ``torch.Generator`` for reproducible draws.
    """

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(max_capacity, int) or max_capacity < 1:
            raise ConfigError(f"max_capacity: expected a positive int, got {max_capacity!r}")
        if alpha < 0 or beta < 0 or eps <= 0:
            raise ConfigError(
                f"PrioritizedSampler: expected alpha >= 0, beta >= 0, eps > 0, got "
                f"alpha={alpha}, beta={beta}, eps={eps}"
            )
        self.max_capacity = max_capacity
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.generator = generator
        self._tree = SumMinTree(max_capacity)
        self._max_priority = 1.0
        self._written = 0  # positions [0, written) hold rows; the rest have no priority

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        n = _require_rows(storage, batch_size, "PrioritizedSampler")
        if n > self.max_capacity:
            raise ConfigError(
                f"PrioritizedSampler: max_capacity={self.max_capacity} is smaller than the "
                f"buffer's {n} rows"
            )
        tree = self._tree
        mass = torch.rand(batch_size, generator=self.generator, dtype=tree.dtype).mul_(tree.total())
        index = tree.find(mass)
        weight = (tree.leaves(index) / tree.minimum()).pow_(-self.beta).to(torch.float32)
        return index, {"_weight": weight}

    def _set(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        value = (priority.abs() + self.eps).pow_(self.alpha)
        self._tree.update(index, value)

    def on_write(self, index: Index) -> None:
        if isinstance(index, slice):
            index = torch.arange(index.start, index.stop)
        if index.numel():
            self._written = max(self._written, int(index.max()) + 1)
        self._set(index, torch.full(index.shape, self._max_priority, dtype=torch.float64))

    def update_priority(self, index: torch.Tensor | int, priority: torch.Tensor | float) -> None:
        """Set the priorities of rows ``index`` (e.g. to their TD errors)."""
        index = torch.as_tensor(index, dtype=torch.int64).reshape(-1)
        priority = torch.as_tensor(priority).detach().to("cpu", torch.float64).reshape(-1)
        if priority.numel() == 1 and index.numel() > 1:
            priority = priority.expand(index.numel())
        if priority.numel() != index.numel():
            raise ConfigError(
                f"update_priority: expected one priority per index ({index.numel()}), "
                f"got {priority.numel()}"
            )
        if index.numel() == 0:
            return
        lo, hi = (int(v) for v in torch.aminmax(index))
        if lo < 0 or hi >= self._written:
            raise ConfigError(
                f"update_priority: index must lie among the rows written so far, "
                f"[0, {self._written}), got [{lo}, {hi}]"
            )
        top = float(priority.abs().max())
        if not math.isfinite(top):
            raise ConfigError("update_priority: expected finite priorities, got NaN or inf")
        self._max_priority = max(self._max_priority, top + self.eps)
        self._set(index, priority)

    def on_empty(self) -> None:
        self._tree.clear()
        self._max_priority = 1.0
        self._written = 0

    def state_dict(self) -> dict:
        """Tree leaves (``(|p| + eps) ** alpha``) of the written rows, the largest priority."""
        n = self._written
        return {
            "leaves": self._tree.leaves(torch.arange(n)).clone(),
            "max_priority": self._max_priority,
            "written": n,
        }

    def load_state_dict(self, state: dict) -> None:
        leaves = torch.as_tensor(state["leaves"], dtype=self._tree.dtype)
        n = int(state["written"])
        if n > self.max_capacity or leaves.shape != (n,):
            raise ConfigError(
                f"PrioritizedSampler.load_state_dict: expected at most {self.max_capacity} "
                f"priorities, got {tuple(leaves.shape)} for {n} rows"
            )
        self._tree.clear()
        if n:
            self._tree.update(torch.arange(n), leaves)
        self._max_priority = float(state["max_priority"])
        self._written = n


class SliceSampler(Sampler):
    """Contiguous slices of ``slice_len`` rows, each inside one episode segment.

    A slice never spans two trajectory ids, a ``("next", "done")`` row other than its
    last, the ring's seam (where the newest row meets the oldest) or the end of the
    storage. Starts are drawn uniformly over all valid windows: proposals are checked in
    ``O(batch)`` and redrawn when invalid, so the cost does not grow with the buffer; an
    exact scan is the fallback when valid windows are rare.

    Args:
        num_slices: slices per batch (``slice_len = batch_size // num_slices``), or
        slice_len: rows per slice (``num_slices = batch_size // slice_len``); give one.
        traj_key: the trajectory-id column; required in the data.
        end_key: the episode-end flag column (optional in the data).
        strict_length: True: every slice has ``slice_len`` rows. False: slices are
            cut at episode ends, so a batch may hold fewer rows than asked
            (``info["slice_lengths"]`` gives each slice's length).
        generator: a ``torch.Generator`` for reproducible draws.
    """

    _TRIES = 8

    def __init__(
        self,
        num_slices: int | None = None,
        slice_len: int | None = None,
        traj_key: NestedKey = TED_KEYS.traj_ids,
        end_key: NestedKey = _NEXT_DONE,
        strict_length: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if (num_slices is None) == (slice_len is None):
            raise ConfigError(
                f"SliceSampler: give exactly one of num_slices / slice_len, got "
                f"num_slices={num_slices}, slice_len={slice_len}"
            )
        for name, v in (("num_slices", num_slices), ("slice_len", slice_len)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"SliceSampler: {name} must be a positive int, got {v!r}")
        self.num_slices = num_slices
        self.slice_len = slice_len
        self.traj_key: Key = (traj_key,) if isinstance(traj_key, str) else tuple(traj_key)
        self.end_key: Key = (end_key,) if isinstance(end_key, str) else tuple(end_key)
        self.strict_length = strict_length
        self.generator = generator

    def _shape(self, batch_size: int) -> tuple[int, int]:
        if self.slice_len is not None:
            length, count = self.slice_len, batch_size // self.slice_len
            given = f"slice_len={self.slice_len}"
        else:
            count = self.num_slices or 1  # one of the two is set (checked in __init__)
            length = batch_size // count
            given = f"num_slices={self.num_slices}"
        if count * length != batch_size or length == 0:
            raise ConfigError(f"SliceSampler: batch_size={batch_size} is not a multiple of {given}")
        return count, length

    def sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict]:
        count, length = self._shape(batch_size)
        n = _require_rows(storage, batch_size, "SliceSampler")
        runs = self._runs(storage)
        if runs is not None:  # the store's episode index: no column read, O(segments) memory
            return self._from_runs(*runs, n, count, length)
        traj = storage.column(self.traj_key)
        if traj is None:
            raise TedFormatError(
                f"SliceSampler: key {key_name(self.traj_key)!r} is missing from the buffer; "
                "expected int64 trajectory ids of shape [N]"
            )
        done = storage.column(self.end_key)
        if done is not None:
            done = done.reshape(n)
        seam = storage.cursor if storage.wrapped else None
        if self.strict_length:
            starts = self._strict_starts(traj, done, seam, n, count, length)
            return (starts.unsqueeze(1) + torch.arange(length)).reshape(-1), {}
        index, lengths = self._cut_slices(traj, done, seam, n, count, length)
        return index, {"slice_lengths": lengths}

    def _runs(self, storage: Storage) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Position runs of one trajectory each, when the storage has them and this sampler
        cuts where they are cut (the default trajectory and end keys)."""
        if self.traj_key != _as_key(TED_KEYS.traj_ids) or self.end_key != _as_key(_NEXT_DONE):
            return None
        return storage.segments()

    def _from_runs(
        self, starts: torch.Tensor, lengths: torch.Tensor, n: int, count: int, length: int
    ) -> tuple[torch.Tensor, dict]:
        """Windows drawn as the column path draws them: uniform over valid windows (strict),
        or a uniform start row cut at its run's end (not strict)."""
        arange = torch.arange(length)
        if self.strict_length:
            windows = (lengths - length + 1).clamp(min=0)
            total = int(windows.sum())
            if total == 0:
                raise EmptyBufferError(
                    f"SliceSampler: no episode segment holds slice_len={length} rows "
                    f"(buffer of {n} rows); lower slice_len or pass strict_length=False"
                )
            upto = windows.cumsum(0)
            k = torch.randint(total, (count,), generator=self.generator)
            run = torch.searchsorted(upto, k, right=True)
            first = starts[run] + k - (upto[run] - windows[run])
            return (first.unsqueeze(1) + arange).reshape(-1), {}
        ends = starts + lengths
        first = torch.randint(n, (count,), generator=self.generator)
        run = (torch.searchsorted(starts, first, right=True) - 1).clamp(min=0)
        inside = (first >= starts[run]) & (first < ends[run])
        cut = torch.where(inside, (ends[run] - first).clamp(max=length), 1)  # a row in no run
        keep = arange.unsqueeze(0) < cut.unsqueeze(1)
        return (first.unsqueeze(1) + arange)[keep], {"slice_lengths": keep.sum(1)}

    def _window_ok(self, traj, done, seam, starts, length) -> torch.Tensor:
        win = starts.unsqueeze(1) + torch.arange(length)
        ids = traj[win]
        ok = (ids == ids[:, :1]).all(1)
        if done is not None and length > 1:
            ok &= ~done[win[:, :-1]].any(1)
        if seam is not None:
            ok &= ~((starts < seam) & (starts + length > seam))
        return ok

    def _strict_starts(self, traj, done, seam, n, count, length) -> torch.Tensor:
        if n < length:
            raise EmptyBufferError(
                f"SliceSampler: slice_len={length} is longer than the buffer's {n} rows"
            )
        got: list[torch.Tensor] = []
        need = count
        for _ in range(self._TRIES):
            starts = torch.randint(n - length + 1, (need,), generator=self.generator)
            ok = self._window_ok(traj, done, seam, starts, length)
            kept = starts[ok]
            got.append(kept)
            need -= kept.shape[0]
            if need == 0:
                return torch.cat(got)
        valid = self._all_valid_starts(traj, done, seam, n, length)
        pick = torch.randint(valid.shape[0], (need,), generator=self.generator)
        return torch.cat([*got, valid[pick]])

    def _links(self, traj, done, seam, n) -> torch.Tensor:
        """``links[p]``: rows ``p`` and ``p + 1`` belong to the same segment."""
        links = traj[1:n] == traj[: n - 1]
        if done is not None:
            links &= ~done[: n - 1]
        if seam is not None and 0 < seam < n:
            links[seam - 1] = False
        return links

    def _all_valid_starts(self, traj, done, seam, n, length) -> torch.Tensor:
        if length == 1:
            return torch.arange(n)
        breaks = torch.cat(
            [torch.zeros(1, dtype=torch.int64), (~self._links(traj, done, seam, n)).cumsum(0)]
        )
        # window [p, p + length) is valid when no break lies in links p .. p + length - 2
        ok = breaks[length - 1 :] == breaks[: n - length + 1]
        valid = torch.nonzero(ok).reshape(-1)
        if valid.numel() == 0:
            raise EmptyBufferError(
                f"SliceSampler: no episode segment holds slice_len={length} rows "
                f"(buffer of {n} rows); lower slice_len or pass strict_length=False"
            )
        return valid

    def _cut_slices(self, traj, done, seam, n, count, length) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(n, (count,), generator=self.generator)
        win = starts.unsqueeze(1) + torch.arange(length)
        inside = win < n
        win = win.clamp(max=n - 1)
        same = traj[win] == traj[starts].unsqueeze(1)
        if done is not None and length > 1:
            prev_done = torch.zeros_like(same)
            prev_done[:, 1:] = done[win[:, :-1]]
            same &= ~prev_done
        if seam is not None:
            same &= ~((win >= seam) & (starts.unsqueeze(1) < seam))
        keep = (inside & same).to(torch.int64).cumprod(1).bool()
        return win[keep], keep.sum(1)
