"""What the multi-process and the Ray collectors share: the worker, the plan, the iteration.

Both run one :class:`CollectorWorker` per worker (a :class:`SyncDataCollector` and a few
methods): in a :class:`~rldata.envs._pool.WorkerPool` process, or in a Ray actor. Both
split the work the same way (:class:`WorkerCollector`): ``W`` workers, worker ``w`` hands
out trajectory ids ``start + w + k * W`` so ids never collide; a sync collector waits for
every worker and stacks their batches (``[num_envs_total, T]``); an async one yields each
worker's batch as soon as it is ready, with ``("collector", "worker")``. Subclasses only
say how a request reaches a worker and how its answer comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.collectors.sync import SyncDataCollector, _positive
from rldata.envs._pool import chain_seeds, worker_init
from rldata.errors import ConfigError


class CollectorWorker:
    """One worker's collector: built inside the worker process or Ray actor.

    Args:
        create_env_fn: the worker's env factory.
        policy: the policy (or None for random actions).
        kwargs: the worker's :class:`SyncDataCollector` arguments.
        shared_weights: parameters in shared memory the policy reads directly (processes).
    """

    def __init__(
        self,
        create_env_fn: Any,
        policy: Any,
        kwargs: dict[str, Any],
        shared_weights: TensorDictBase | None = None,
    ) -> None:
        worker_init()
        if shared_weights is not None:
            shared_weights.to_module(policy)
        self.collector = SyncDataCollector(create_env_fn, policy, **kwargs)
        self._buffer: TensorDictBase | None = None

    def next(self) -> TensorDictBase:
        """The next batch."""
        return self.collector.next()

    def next_shared(self) -> TensorDictBase | None:
        """The next batch, written into this worker's shared-memory buffer.

        Returns the buffer when it was (re)allocated (the parent keeps it), else None.
        """
        batch = self.collector.next()
        if self._buffer is None or self._buffer.batch_size != batch.batch_size:
            self._buffer = batch.clone().share_memory_()
            return self._buffer
        self._buffer.update_(batch)
        return None

    def set_seed(self, seed: int) -> int:
        return self.collector.set_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        state = self.collector.state_dict()
        state.pop("policy_state_dict", None)  # the parent holds the weights
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.collector.load_state_dict(state)

    def update_weights(self, weights: TensorDictBase) -> None:
        self.collector.update_policy_weights_(weights)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(self.collector, *args, **kwargs)

    def close(self) -> None:
        self.collector.shutdown()

    shutdown = close


class WorkerCollector:
    """Work split, iteration, seeding and state of a collector with ``num_workers`` workers.

    Args:
        create_env_fn: one env factory for all workers, or a list with one per worker.
        policy: the learner's policy (``nn.Module``) or ``None`` for random actions.
        frames_per_batch: frames per yielded batch, split evenly between workers when
            ``sync``; frames of each worker's batch otherwise.
        total_frames: stop after this many frames; -1 never stops.
        num_workers: number of workers (default: ``len(create_env_fn)``, or 1).
        sync: stack every worker's batch, or yield each as it comes.
    """

    sync = True

    def __init__(
        self,
        create_env_fn: Any | Sequence[Any],
        policy: Any,
        frames_per_batch: int,
        total_frames: int,
        num_workers: int | None,
    ) -> None:
        fns = list(create_env_fn) if isinstance(create_env_fn, (list, tuple)) else None
        if num_workers is None:
            num_workers = len(fns) if fns else 1
        self.num_workers = _positive("num_workers", num_workers)
        self.fns = fns if fns is not None else [create_env_fn] * self.num_workers
        if len(self.fns) != self.num_workers:
            raise ConfigError(
                f"got {len(self.fns)} env factories for num_workers={self.num_workers}; "
                "give one or one per worker"
            )
        self.frames_per_batch = _positive("frames_per_batch", frames_per_batch)
        if total_frames != -1:
            _positive("total_frames", total_frames)
        self.total_frames = total_frames
        if self.sync and frames_per_batch % self.num_workers:
            raise ConfigError(
                f"frames_per_batch must be a multiple of num_workers={self.num_workers}, "
                f"got {frames_per_batch}"
            )
        self.policy = policy
        self.frames = 0
        self._closed = False
        self.seed: int | None = None  # the last seed given to set_seed

    def worker_kwargs(self, w: int, kwargs: dict[str, Any], traj_id_start: int) -> dict[str, Any]:
        """Worker ``w``'s SyncDataCollector arguments: its share of frames, its traj ids."""
        return dict(
            kwargs,
            frames_per_batch=self.frames_per_batch // self.num_workers
            if self.sync
            else self.frames_per_batch,
            total_frames=-1,
            traj_id_start=traj_id_start,
            traj_id_stride=self.num_workers,
            traj_id_offset=w,
        )

    # --- what a subclass provides ---------------------------------------------------------
    def _submit(self, w: int) -> None:
        """Ask worker ``w`` for its next batch."""
        raise NotImplementedError

    def _receive(self, w: int) -> TensorDictBase:
        """Worker ``w``'s batch (waits for it)."""
        raise NotImplementedError

    def _ready(self, workers: list[int]) -> list[int]:
        """Those of ``workers`` whose batch is ready (waits for at least one)."""
        raise NotImplementedError

    def _call(self, w: int, method: str, *args: Any) -> Any:
        """Run a :class:`CollectorWorker` method in worker ``w``; its result."""
        raise NotImplementedError

    def _call_all(self, method: str, per_worker: Sequence[tuple]) -> list[Any]:
        """Run ``method(*per_worker[w])`` in every worker at once; the results in order."""
        raise NotImplementedError

    # --- iteration ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this collector was shut down; build a new one")

    def __iter__(self) -> Iterator[TensorDictBase]:
        self._check_open()
        if self.sync:
            while self.total_frames == -1 or self.frames < self.total_frames:
                yield self.next()
        else:
            yield from self._iter_async()

    def next(self) -> TensorDictBase:
        """One batch from every worker, stacked along the first dim (``[num_envs_total, T]``)."""
        self._check_open()
        for w in range(self.num_workers):
            self._submit(w)
        parts = [self._receive(w) for w in range(self.num_workers)]
        self.frames += self.frames_per_batch
        out: Any = torch.cat([p.unsqueeze(0) if p.batch_dims == 1 else p for p in parts], 0)  # type: ignore[arg-type]
        return out  # tensordict overrides torch.cat: a TensorDict

    def _iter_async(self) -> Iterator[TensorDictBase]:
        pending: set[int] = set()
        requested = self.frames

        def more() -> bool:
            return self.total_frames == -1 or requested < self.total_frames

        for w in range(self.num_workers):
            if more():
                self._submit(w)
                pending.add(w)
                requested += self.frames_per_batch
        while pending:
            for w in self._ready(sorted(pending)):
                pending.discard(w)
                batch = self._receive(w)
                if more():
                    self._submit(w)
                    pending.add(w)
                    requested += self.frames_per_batch
                self.frames += self.frames_per_batch
                batch.set(
                    ("collector", "worker"), torch.full(batch.batch_size, w, dtype=torch.int64)
                )
                yield batch

    def __len__(self) -> int:
        if self.total_frames == -1:
            raise TypeError("an endless collector (total_frames=-1) has no length")
        return -(-self.total_frames // self.frames_per_batch)

    # --- seeds and state ------------------------------------------------------------------
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed every worker with its own seed; return the next free seed."""
        self.seed = int(seed)  # what a recording writes into the dataset's provenance
        return chain_seeds(
            lambda w, s: self._call(w, "set_seed", s), self.num_workers, seed, static_seed
        )

    def state_dict(self) -> dict[str, Any]:
        """Frame count and each worker's traj-id counter, to resume a collection."""
        workers = self._call_all("state_dict", [()] * self.num_workers)
        return {"frames": self.frames, "workers": workers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (same number of workers)."""
        if len(state["workers"]) != self.num_workers:
            raise ConfigError(
                f"state has {len(state['workers'])} workers, this collector {self.num_workers}"
            )
        self.frames = int(state["frames"])
        self._call_all("load_state_dict", [(s,) for s in state["workers"]])

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        raise NotImplementedError
