"""RayCollector: the multi-worker collector over Ray actors (Ray is the distributed engine).

Each actor runs its own :class:`SyncDataCollector`; batches come back through Ray's
object store, and trajectory ids never collide (actor ``w`` of ``W`` hands out
``start + w + k * W``). :meth:`RayCollector.run_on_workers` runs a function next to each
actor's collector, which is how ``rldata.api`` records one store shard per actor without
any data passing through the driver. Ray is imported only when a RayCollector is built.

Examples:
    >>> collector = RayCollector(make_env, policy, frames_per_batch=2000, num_workers=2)  # doctest: +SKIP
    >>> for batch in collector:                                                          # doctest: +SKIP
    ...     ...
    >>> collector.shutdown()                                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors._workers import CollectorWorker, WorkerCollector
from rldata.errors import MissingDependencyError


def import_ray() -> Any:
    """``ray``, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "RayCollector needs ray; install it with pip install 'rldata[ray]'"
        ) from None
    return ray


def _package_root() -> str:
    import rldata

    return os.path.dirname(os.path.dirname(os.path.abspath(rldata.__file__)))


class RayCollector(WorkerCollector):
    """Collect with ``num_workers`` Ray actors, each running its own envs and policy copy.

    The actors run the same :class:`~rldata.collectors._workers.CollectorWorker` as the
    processes of :class:`~rldata.collectors.MultiSyncDataCollector`, and the batches, ids,
    seeds and state follow the same rules; only the transport is Ray's.

    Args:
        create_env_fn: an env factory (picklable), or a list with one per worker.
        policy: a TensorDict policy (``nn.Module``) or ``None`` for random actions.
        frames_per_batch: frames per yielded batch, split evenly between actors (sync), or
            frames of each actor's batch (``sync=False``).
        total_frames: stop after this many frames; -1 never stops.
        num_workers: number of actors.
        sync: wait for every actor and stack their batches (``[num_envs_total, T]``), or
            yield each actor's batch as it arrives (with ``("collector", "worker")``).
        ray_init_config: ``ray.init`` arguments if Ray is not running yet (this collector
            then shuts Ray down on :meth:`shutdown`).
        remote_config: actor options, default ``{"num_cpus": 1}``.
        traj_id_start: the first trajectory id.
        **kwargs: passed to each actor's :class:`SyncDataCollector`.
    """

    def __init__(
        self,
        create_env_fn: Any,
        policy: Any = None,
        frames_per_batch: int = 1000,
        total_frames: int = -1,
        num_workers: int | None = None,
        *,
        sync: bool = True,
        ray_init_config: dict[str, Any] | None = None,
        remote_config: dict[str, Any] | None = None,
        traj_id_start: int = 0,
        **kwargs: Any,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self.sync = sync
        super().__init__(create_env_fn, policy, frames_per_batch, total_frames, num_workers)
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            config = dict(ray_init_config or {})
            env_vars = {
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [_package_root(), os.environ.get("PYTHONPATH")])
                )
            }
            config.setdefault("runtime_env", {"env_vars": env_vars})
            config.setdefault("include_dashboard", False)
            ray.init(**config)
        actor_cls = ray.remote(**(remote_config or {"num_cpus": 1}))(CollectorWorker)
        self.workers = [
            actor_cls.remote(fn, policy, self.worker_kwargs(w, kwargs, traj_id_start))
            for w, fn in enumerate(self.fns)
        ]
        self._pending: dict[int, Any] = {}

    # --- running things next to each collector -------------------------------------------
    def run_on_workers(
        self, fn: Callable[..., Any], *args: Any, per_worker: list[dict] | None = None
    ) -> list[Any]:
        """Call ``fn(collector, *args, **per_worker[w])`` inside every actor; return the results.

        ``fn`` must be importable by the actors (a module-level function).
        """
        per = per_worker or [{}] * self.num_workers
        refs = [w.run.remote(fn, *args, **kw) for w, kw in zip(self.workers, per)]
        return self._ray.get(refs)

    # --- Ray as transport -----------------------------------------------------------------
    def _submit(self, w: int) -> None:
        self._pending[w] = self.workers[w].next.remote()

    def _receive(self, w: int) -> TensorDictBase:
        return self._ray.get(self._pending.pop(w))

    def _ready(self, workers: list[int]) -> list[int]:
        refs = {self._pending[w]: w for w in workers}
        ready, _ = self._ray.wait(list(refs), num_returns=1)
        return [refs[r] for r in ready]

    def _call(self, w: int, method: str, *args: Any) -> Any:
        return self._ray.get(getattr(self.workers[w], method).remote(*args))

    def _call_all(self, method: str, per_worker: Sequence[tuple]) -> list[Any]:
        refs = [getattr(w, method).remote(*a) for w, a in zip(self.workers, per_worker)]
        return self._ray.get(refs)

    # --- weights, shutdown ------------------------------------------------------------------
    def update_policy_weights_(self, weights: TensorDictBase | None = None) -> None:
        """Send the learner's weights (default: the policy given at construction) to every actor."""
        if not isinstance(self.policy, torch.nn.Module) and weights is None:
            return
        src = weights if weights is not None else TensorDict.from_module(self.policy)
        ref = self._ray.put(src.data.cpu())
        self._call_all("update_weights", [(ref,)] * self.num_workers)

    def shutdown(self) -> None:
        """Stop the actors, and Ray itself if this collector started it."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        for w in self.workers:
            with contextlib.suppress(Exception):  # an actor that died is already shut down
                ray.get(w.close.remote(), timeout=30)
            ray.kill(w)
        self.workers = []
        if self._owns_ray:
            ray.shutdown()
