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
from collections.abc import Callable, Iterator
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors.sync import SyncDataCollector, _positive
from rldata.errors import ConfigError, MissingDependencyError


def import_ray() -> Any:
    """``ray``, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "RayCollector needs ray; install it with pip install 'rldata[ray]'"
        ) from None
    return ray


class _CollectorWorker:
    """What runs inside each Ray actor: one SyncDataCollector and a few remote methods."""

    def __init__(self, create_env_fn: Any, policy: Any, kwargs: dict[str, Any]) -> None:
        torch.set_num_threads(1)
        self.collector = SyncDataCollector(create_env_fn, policy, **kwargs)

    def next(self) -> TensorDictBase:
        return self.collector.next()

    def set_seed(self, seed: int) -> int:
        return self.collector.set_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        state = self.collector.state_dict()
        state.pop("policy_state_dict", None)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.collector.load_state_dict(state)

    def update_weights(self, weights: TensorDictBase) -> None:
        self.collector.update_policy_weights_(weights)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(self.collector, *args, **kwargs)

    def shutdown(self) -> None:
        self.collector.shutdown()


def _package_root() -> str:
    import rldata

    return os.path.dirname(os.path.dirname(os.path.abspath(rldata.__file__)))


class RayCollector:
    """Collect with ``num_workers`` Ray actors, each running its own envs and policy copy.

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
        fns = list(create_env_fn) if isinstance(create_env_fn, (list, tuple)) else None
        self.num_workers = _positive("num_workers", num_workers or (len(fns) if fns else 1))
        fns = fns or [create_env_fn] * self.num_workers
        if len(fns) != self.num_workers:
            raise ConfigError(f"got {len(fns)} env factories for num_workers={self.num_workers}")
        self.frames_per_batch = _positive("frames_per_batch", frames_per_batch)
        if total_frames != -1:
            _positive("total_frames", total_frames)
        self.total_frames = total_frames
        self.sync = sync
        if sync and frames_per_batch % self.num_workers:
            raise ConfigError(
                f"frames_per_batch must be a multiple of num_workers={self.num_workers}, got {frames_per_batch}"
            )
        worker_frames = frames_per_batch // self.num_workers if sync else frames_per_batch
        self.policy = policy
        self.frames = 0
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
        actor_cls = ray.remote(**(remote_config or {"num_cpus": 1}))(_CollectorWorker)
        self.workers = [
            actor_cls.remote(
                fn,
                policy,
                dict(
                    kwargs,
                    frames_per_batch=worker_frames,
                    total_frames=-1,
                    traj_id_start=traj_id_start,
                    traj_id_stride=self.num_workers,
                    traj_id_offset=w,
                ),
            )
            for w, fn in enumerate(fns)
        ]
        self._closed = False

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

    # --- iteration ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TensorDictBase]:
        if self._closed:
            raise ConfigError("this collector was shut down; build a new one")
        if self.sync:
            while self.total_frames == -1 or self.frames < self.total_frames:
                yield self.next()
            return
        yield from self._iter_async()

    def next(self) -> TensorDictBase:
        """One batch from every actor, stacked along the first dim."""
        parts = self._ray.get([w.next.remote() for w in self.workers])
        self.frames += self.frames_per_batch
        out: Any = torch.cat([p.unsqueeze(0) if p.batch_dims == 1 else p for p in parts], 0)
        return out  # tensordict overrides torch.cat: a TensorDict

    def _iter_async(self) -> Iterator[TensorDictBase]:
        ray = self._ray
        pending: dict[Any, int] = {}
        requested = self.frames

        def request(w: int) -> None:
            nonlocal requested
            pending[self.workers[w].next.remote()] = w
            requested += self.frames_per_batch

        for w in range(self.num_workers):
            if self.total_frames == -1 or requested < self.total_frames:
                request(w)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            w = pending.pop(ready[0])
            batch = ray.get(ready[0])
            if self.total_frames == -1 or requested < self.total_frames:
                request(w)
            self.frames += self.frames_per_batch
            batch.set(("collector", "worker"), torch.full(batch.batch_size, w, dtype=torch.int64))
            yield batch

    def __len__(self) -> int:
        if self.total_frames == -1:
            raise TypeError("an endless collector (total_frames=-1) has no length")
        return -(-self.total_frames // self.frames_per_batch)

    # --- weights, seeds, state -------------------------------------------------------------
    def update_policy_weights_(self, weights: TensorDictBase | None = None) -> None:
        """Send the learner's weights (default: the policy given at construction) to every actor."""
        if not isinstance(self.policy, torch.nn.Module) and weights is None:
            return
        src = weights if weights is not None else TensorDict.from_module(self.policy)
        ref = self._ray.put(src.data.cpu())
        self._ray.get([w.update_weights.remote(ref) for w in self.workers])

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed every actor with its own seed; return the next free seed."""
        for w in self.workers:
            nxt = self._ray.get(w.set_seed.remote(seed))
            seed = seed if static_seed else nxt
        return seed

    def state_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "workers": self._ray.get([w.state_dict.remote() for w in self.workers]),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames = int(state["frames"])
        self._ray.get([w.load_state_dict.remote(s) for w, s in zip(self.workers, state["workers"])])

    def shutdown(self) -> None:
        """Stop the actors, and Ray itself if this collector started it."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        for w in self.workers:
            with contextlib.suppress(Exception):  # an actor that died is already shut down
                ray.get(w.shutdown.remote(), timeout=30)
            ray.kill(w)
        self.workers = []
        if self._owns_ray:
            ray.shutdown()

    def __enter__(self) -> RayCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
