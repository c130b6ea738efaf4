"""SyncDataCollector: run a policy in an environment and hand out TED batches.

A collector is an iterator. Each batch holds ``frames_per_batch`` transitions, shaped
``[frames_per_batch]`` for one environment and ``[num_envs, frames_per_batch // num_envs]``
for a batched one, with ``("collector", "traj_ids")`` numbering every episode. Batches
do not reset the environment: an episode may run across several batches and keeps its id.

Examples:
    >>> collector = SyncDataCollector(env, policy, frames_per_batch=200, total_frames=1000)
    >>> for batch in collector:          # doctest: +SKIP
    ...     store.append(batch.reshape(-1))
    >>> collector.shutdown()             # doctest: +SKIP

Collectors never write to disk; ``rldata.record`` joins one to a store.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors.trajectories import TrajCounter
from rldata.envs._gym_loop import GymLoop
from rldata.envs._loop import make_loop
from rldata.envs._policy import random_td_policy
from rldata.envs._run import Run
from rldata.errors import ConfigError
from rldata.exploration import ExplorationType, set_exploration_type
from rldata.ted import TED_KEYS


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


class SyncDataCollector:
    """Collect TED batches from one (possibly batched) environment in this process.

    Args:
        create_env_fn: an environment, or a function returning one.
        policy: a TensorDict policy (``td -> td`` writing ``"action"``); ``None`` or a
            ``RandomPolicy`` draws uniform actions from the action spec.
        frames_per_batch: transitions per batch (a multiple of the env's batch size).
        total_frames: stop after this many frames (rounded up to whole batches); -1 never stops.
        device: default for ``storing_device``, ``env_device`` and ``policy_device``.
        storing_device: device of the yielded batches.
        env_device: device the env runs on (informational for envs built here).
        policy_device: device the policy runs on; a copy is made if it differs.
        max_frames_per_traj: truncate (and reset) an episode after this many steps.
        init_random_frames: act at random for the first frames (e.g. to fill a buffer).
        reset_at_each_iter: reset every env at the start of each batch.
        split_trajs: yield batches padded per trajectory ``[n_traj, max_len]`` with a
            ``("collector", "mask")`` of valid rows.
        exploration_type: exploration mode the policy runs under.
        postproc: a function applied to each batch before it is yielded.
        traj_id_start / traj_id_stride / traj_id_offset: the id sequence this collector
            draws from (see :class:`~rldata.collectors.trajectories.TrajCounter`); workers
            of a multi-process collector share one sequence through stride and offset.
        fast: allow the numpy fast path for plain gymnasium envs (same output, faster).
        num_threads: CPU threads torch uses while a batch is collected (torch's setting is
            restored after each batch); ``None`` keeps torch's setting. Default 1: a policy
            acts on one step's observations at a time, which more threads do not speed up,
            and on busy cores the extra threads stall every call (a 256x256 MLP on a 1-D env,
            2 loaded cores: about 4,000 frames/s with 1 thread, 200 with torch's default 2;
            benchmarks/RESULTS-collect-policy.md).
    """

    def __init__(
        self,
        create_env_fn: Any,
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        frames_per_batch: int = 1000,
        total_frames: int = -1,
        device: torch.device | str | None = None,
        storing_device: torch.device | str | None = None,
        env_device: torch.device | str | None = None,
        policy_device: torch.device | str | None = None,
        max_frames_per_traj: int | None = None,
        init_random_frames: int = 0,
        reset_at_each_iter: bool = False,
        split_trajs: bool = False,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        postproc: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        traj_id_start: int = 0,
        traj_id_stride: int = 1,
        traj_id_offset: int = 0,
        fast: bool = True,
        num_threads: int | None = 1,
    ) -> None:
        self.env = (
            create_env_fn()
            if callable(create_env_fn) and not _is_env(create_env_fn)
            else create_env_fn
        )
        self._owns_env = self.env is not create_env_fn
        self.frames_per_batch = _positive("frames_per_batch", frames_per_batch)
        if total_frames != -1:
            _positive("total_frames", total_frames)
        self.total_frames = total_frames
        if max_frames_per_traj is not None:
            _positive("max_frames_per_traj", max_frames_per_traj)
        self.max_frames_per_traj = max_frames_per_traj
        if init_random_frames < 0:
            raise ConfigError(f"init_random_frames must be >= 0, got {init_random_frames}")
        self.init_random_frames = init_random_frames
        self.reset_at_each_iter = reset_at_each_iter
        self.split_trajs = split_trajs
        self.exploration_type = exploration_type
        self.postproc = postproc
        self.num_threads = None if num_threads is None else _positive("num_threads", num_threads)
        self.storing_device = _dev(storing_device or device)
        self.env_device = _dev(env_device or device)
        self.policy_device = _dev(policy_device or device)
        self.counter = TrajCounter(traj_id_start, traj_id_stride, traj_id_offset)
        self.frames = 0
        self.seed: int | None = None  # the last seed given to set_seed
        self._closed = False

        batch = tuple(self.env.batch_size)
        self.num_envs = int(torch.Size(batch).numel())
        if self.frames_per_batch % self.num_envs:
            raise ConfigError(
                f"frames_per_batch must be a multiple of the env's batch size {self.num_envs}, "
                f"got {self.frames_per_batch}"
            )
        self._steps_per_batch = self.frames_per_batch // self.num_envs

        self._source_policy = policy
        self.policy = self._place_policy(policy)
        self._random_td = random_td_policy(self.env.action_spec, self.env)
        # the env's own step loop (rollout's too): numpy inner path where it applies
        self._loop = make_loop(
            self.env,
            self.policy,
            call=self._random_td if self.policy is None else self._td_policy,
            random_call=self._random_td if self.policy is None else self._random_with_policy_keys,
            fast=fast,
        )
        self.fast = isinstance(self._loop, GymLoop)

    # --- policy ---------------------------------------------------------------------------
    def _place_policy(self, policy):
        if policy is None or self.policy_device is None or not isinstance(policy, torch.nn.Module):
            return policy
        params = list(policy.parameters())
        if not params or params[0].device == self.policy_device:
            return policy
        return copy.deepcopy(policy).to(self.policy_device)

    def update_policy_weights_(self, weights: TensorDictBase | dict | None = None) -> None:
        """Bring the collector's policy up to date with the learner's.

        Args:
            weights: parameters (``TensorDict.from_module(policy)`` or a ``state_dict``);
                default: those of the policy the collector was given.
        """
        target = self.policy
        if not isinstance(target, torch.nn.Module):
            return
        if weights is None:
            if target is self._source_policy:
                return
            if not isinstance(self._source_policy, torch.nn.Module):
                return
            weights = TensorDict.from_module(self._source_policy)
        if isinstance(weights, TensorDictBase):
            TensorDict.from_module(target).data.update_(
                weights.data.to(self.policy_device or "cpu")
            )
        else:
            target.load_state_dict(weights)

    # --- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TensorDictBase]:
        while self.total_frames == -1 or self.frames < self.total_frames:
            yield self.next()

    def __len__(self) -> int:
        if self.total_frames == -1:
            raise TypeError("an endless collector (total_frames=-1) has no length")
        return -(-self.total_frames // self.frames_per_batch)

    def next(self) -> TensorDictBase:
        """Collect and return one batch."""
        if self._closed:
            raise ConfigError("this collector was shut down; build a new one")
        if not self._loop.started or self.reset_at_each_iter:
            self._reset_loop()
        random = self.frames < self.init_random_frames
        with (
            torch.no_grad(),
            set_exploration_type(self.exploration_type),
            torch_threads(self.num_threads),
        ):
            run = Run(self._steps_per_batch, self.counter, self.max_frames_per_traj, random)
            batch = self._loop.rollout(run)
        self.frames += self.frames_per_batch
        if self.storing_device is not None and batch.device != self.storing_device:
            batch = batch.to(self.storing_device)
        if self.split_trajs:
            batch = split_trajectories(batch)
        if self.postproc is not None:
            batch = self.postproc(batch)
        return batch

    def _reset_loop(self) -> None:
        self._loop.reset(self.env.reset(), self.counter)

    def _random_with_policy_keys(self, td: TensorDictBase) -> TensorDictBase:
        """Random actions during ``init_random_frames``, with the keys the policy writes.

        The policy still runs so that every batch of a run has one key set (a store's
        schema is fixed by its first write); only the action it chose is replaced.
        """
        return self._random_td(self._td_policy(td))

    def _td_policy(self, td: TensorDictBase) -> TensorDictBase:
        if self.policy_device is None or td.device == self.policy_device:
            return self.policy(td)
        out = self.policy(td.to(self.policy_device))
        td.set(TED_KEYS.action, out.get(TED_KEYS.action).to(td.device or "cpu"))
        return td

    # --- seeding, state, shutdown ---------------------------------------------------------
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the env(s) and the random-action generator; return the next free seed."""
        self.seed = int(seed)  # what a recording writes into the dataset's provenance
        self.env.set_seed(int(seed))
        if self._loop.started:
            self._reset_loop()
        return int(seed) + (0 if static_seed else self.num_envs)

    def state_dict(self) -> dict[str, Any]:
        """Counters (and policy weights) to resume a collection where it stopped.

        The env's internal state is not saved: a resumed collector resets its envs and
        starts new episodes with ids that continue the sequence.
        """
        state: dict[str, Any] = {"frames": self.frames, "traj_counter": self.counter.state_dict()}
        if isinstance(self.policy, torch.nn.Module):
            state["policy_state_dict"] = self.policy.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: frame count, traj-id sequence, policy weights."""
        self.frames = int(state["frames"])
        self.counter.load_state_dict(state["traj_counter"])
        if "policy_state_dict" in state and isinstance(self.policy, torch.nn.Module):
            self.policy.load_state_dict(state["policy_state_dict"])
        self._loop.stop()  # the env restarts: new episodes with ids that continue

    def shutdown(self) -> None:
        """Close the env if this collector built it; further iteration raises."""
        if self._closed:
            return
        self._closed = True
        if self._owns_env and hasattr(self.env, "close"):
            self.env.close()

    def __enter__(self) -> SyncDataCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(frames_per_batch={self.frames_per_batch}, "
            f"total_frames={self.total_frames}, num_envs={self.num_envs}, fast={self.fast})"
        )


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the setting (``None``: keep it)."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _is_env(obj: object) -> bool:
    return hasattr(obj, "step") and hasattr(obj, "reset") and hasattr(obj, "batch_size")


def _dev(device: torch.device | str | None) -> torch.device | None:
    return None if device is None else torch.device(device)


def split_trajectories(batch: TensorDictBase) -> TensorDictBase:
    """Regroup a ``[*B, T]`` batch into ``[n_traj, max_len]`` padded rows with a mask.

    Rows keep their time order; ``("collector", "mask")`` marks the valid ones.
    """
    flat = batch.reshape(-1)
    ids = flat.get(TED_KEYS.traj_ids)
    uniq, inverse, counts = torch.unique(ids, return_inverse=True, return_counts=True)
    n, width = len(uniq), int(counts.max())
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    col = torch.arange(len(ids)) - starts[inverse[order]]
    out = flat[order].clone()
    padded = flat[:1].expand(n, width).clone().zero_()
    padded[inverse[order], col] = out
    mask = torch.zeros(n, width, dtype=torch.bool)
    mask[inverse[order], col] = True
    padded.set(("collector", "mask"), mask)
    return padded
