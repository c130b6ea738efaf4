"""Multi-process collectors: worker processes, batches through shared memory, synced weights.

Each worker process (a :class:`~rldata.envs._pool.WorkerPool` process) runs a
:class:`~rldata.collectors._workers.CollectorWorker`: its own :class:`SyncDataCollector`
with its envs and a copy of the policy. A worker writes every batch into one
shared-memory TensorDict it allocated on its first batch, and answers over its pipe; the
parent copies the rows out and asks for the next batch. The policy's parameters live in
shared memory too: workers' policies read them directly, so
:meth:`update_policy_weights_` is one in-place copy in the parent.

- :class:`MultiSyncDataCollector` waits for every worker and yields their batches stacked
  along the first dim (``[num_envs_total, T]``), like one big batched env.
- :class:`MultiaSyncDataCollector` yields each worker's batch as soon as it is ready, with
  ``("collector", "worker")`` telling which worker made it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors._workers import CollectorWorker, WorkerCollector
from rldata.envs._pool import WorkerError, WorkerPool

__all__ = ["MultiSyncDataCollector", "MultiaSyncDataCollector", "WorkerError"]


class _MultiCollectorBase(WorkerCollector):
    """Worker processes shared by the sync and async multi-process collectors.

    Args:
        create_env_fn: one env factory for all workers, or a list with one per worker.
            Factories must be picklable when the start method is ``"spawn"``.
        policy: the learner's policy (an ``nn.Module`` TensorDict policy) or ``None`` for
            random actions.
        frames_per_batch: frames per yielded batch, split evenly between workers
            (async: frames of each worker's batch).
        total_frames: stop after this many frames; -1 never stops.
        num_workers: number of worker processes (default: ``len(create_env_fn)``).
        traj_id_start: the first trajectory id (``store.next_traj_id()`` when resuming).
        mp_start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; default: the pool's
            rule (:func:`rldata.envs._pool.start_method`).
        **kwargs: passed to each worker's :class:`SyncDataCollector`
            (``max_frames_per_traj``, ``init_random_frames``, ``exploration_type``, ...).

    Raises:
        WorkerError: a worker died; an error raised in a worker is raised here with its
            own class, chained from a WorkerError with the worker's traceback.
    """

    def __init__(
        self,
        create_env_fn: Any | Sequence[Any],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        frames_per_batch: int = 1000,
        total_frames: int = -1,
        num_workers: int | None = None,
        *,
        traj_id_start: int = 0,
        mp_start_method: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(create_env_fn, policy, frames_per_batch, total_frames, num_workers)
        self._shared_weights: TensorDictBase | None = None
        if isinstance(policy, torch.nn.Module):
            self._shared_weights = TensorDict.from_module(policy).data.clone().share_memory_()
        args = [
            (fn, policy, self.worker_kwargs(w, kwargs, traj_id_start), self._shared_weights)
            for w, fn in enumerate(self.fns)
        ]
        self._buffers: list[TensorDictBase | None] = [None] * self.num_workers
        self._pool = WorkerPool("collector", CollectorWorker, args, mp_start_method)

    @property
    def _procs(self) -> list:
        return self._pool.procs

    # --- the pool as transport ------------------------------------------------------------
    def _guarded(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on any worker failure stop every worker first, then raise."""
        try:
            return fn()
        except BaseException:
            self.shutdown()
            raise

    def _submit(self, w: int) -> None:
        self._pool.send(w, "next_shared")

    def _receive(self, w: int) -> TensorDictBase:
        fresh = self._guarded(lambda: self._pool.recv(w))
        if fresh is not None:
            self._buffers[w] = fresh
        buffer = self._buffers[w]
        if buffer is None:
            self.shutdown()
            raise WorkerError(f"collector worker {w} sent a batch before its buffer")
        return buffer.clone()

    def _ready(self, workers: list[int]) -> list[int]:
        return self._pool.ready(workers)

    def _call(self, w: int, method: str, *args: Any) -> Any:
        return self._guarded(lambda: self._pool.call(w, method, *args))

    def _call_all(self, method: str, per_worker: Sequence[tuple]) -> list[Any]:
        def run() -> list[Any]:
            for w, args in enumerate(per_worker):
                self._pool.send(w, method, *args)
            return self._pool.gather(range(self.num_workers))

        return self._guarded(run)

    # --- public API -----------------------------------------------------------------------
    def update_policy_weights_(self, weights: TensorDictBase | None = None) -> None:
        """Copy the learner's weights (default: the policy given at construction) to the workers."""
        if self._shared_weights is None:
            return
        if weights is not None:
            src = weights
        elif isinstance(self.policy, torch.nn.Module):
            src = TensorDict.from_module(self.policy)
        else:
            return
        self._shared_weights.update_(src.data)

    def shutdown(self) -> None:
        """Stop the workers (politely, then by force) and release shared memory."""
        if self._closed:
            return
        self._closed = True
        self._pool.close()
        self._buffers = [None] * self.num_workers

    def __del__(self) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            pool.close()


class MultiSyncDataCollector(_MultiCollectorBase):
    """Collect in ``num_workers`` processes; each batch holds one slice from every worker.

    Batches are ``[num_envs_total, T]``: worker batches of ``[T]`` (one env) or ``[B, T]``
    (a batched env) stacked along the first dim, so every row is one env's time line.
    """

    sync = True


class MultiaSyncDataCollector(_MultiCollectorBase):
    """Collect in ``num_workers`` processes; yield each worker's batch as soon as it is ready.

    ``frames_per_batch`` is the size of each worker's batch. Workers keep collecting while
    the caller works on a batch, so weights may lag one batch behind an update.
    """

    sync = False
