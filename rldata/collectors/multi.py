"""Multi-process collectors: worker processes, batches through shared memory, synced weights.

Each worker process runs its own :class:`SyncDataCollector` (its envs and a copy of the
policy). A worker writes every batch into one shared-memory TensorDict it allocated on its
first batch, and tells the parent over a pipe; the parent copies the rows out and asks for
the next batch. The policy's parameters live in shared memory too: workers' policies read
them directly, so :meth:`update_policy_weights_` is one in-place copy in the parent.

Trajectory ids never collide: worker ``w`` of ``W`` hands out ids ``start + w + k * W``.

- :class:`MultiSyncDataCollector` waits for every worker and yields their batches stacked
  along the first dim (``[num_envs_total, T]``), like one big batched env.
- :class:`MultiaSyncDataCollector` yields each worker's batch as soon as it is ready, with
  ``("collector", "worker")`` telling which worker made it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, NoReturn

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors.sync import SyncDataCollector, _positive
from rldata.errors import ConfigError, RldataError


class WorkerError(RldataError, RuntimeError):
    """A collector worker failed; the message carries the worker's traceback."""


def _worker(
    conn: Connection,
    create_env_fn: Any,
    policy: Any,
    shared_weights: TensorDictBase | None,
    kwargs: dict[str, Any],
) -> None:
    torch.set_num_threads(1)
    buffer: TensorDictBase | None = None
    try:
        if shared_weights is not None:
            shared_weights.to_module(policy)
        collector = SyncDataCollector(create_env_fn, policy, **kwargs)
    except BaseException as err:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            break
        try:
            if cmd == "collect":
                batch = collector.next()
                if buffer is None or buffer.batch_size != batch.batch_size:
                    buffer = batch.clone().share_memory_()
                    conn.send(("buffer", buffer))
                else:
                    buffer.update_(batch)
                    conn.send(("batch", None))
            elif cmd == "seed":
                conn.send(("seed", collector.set_seed(arg)))
            elif cmd == "state_dict":
                state = collector.state_dict()
                state.pop("policy_state_dict", None)
                conn.send(("state", state))
            elif cmd == "load_state_dict":
                collector.load_state_dict(arg)
                conn.send(("ok", None))
            elif cmd == "close":
                collector.shutdown()
                conn.send(("closed", None))
                break
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
            break
    conn.close()


def _default_start_method() -> str:
    return (
        "fork" if sys.platform.startswith("linux") and not torch.cuda.is_initialized() else "spawn"
    )


class _MultiCollectorBase:
    """Worker management shared by the sync and async multi-process collectors.

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
        mp_start_method: ``"fork"`` (Linux default) or ``"spawn"``.
        **kwargs: passed to each worker's :class:`SyncDataCollector`
            (``max_frames_per_traj``, ``init_random_frames``, ``exploration_type``, ...).
    """

    _per_worker_split = True

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
        fns = list(create_env_fn) if isinstance(create_env_fn, (list, tuple)) else None
        if num_workers is None:
            num_workers = len(fns) if fns is not None else 1
        self.num_workers = _positive("num_workers", num_workers)
        if fns is None:
            fns = [create_env_fn] * self.num_workers
        if len(fns) != self.num_workers:
            raise ConfigError(
                f"got {len(fns)} env factories for num_workers={self.num_workers}; give one or one per worker"
            )
        self.frames_per_batch = _positive("frames_per_batch", frames_per_batch)
        if total_frames != -1:
            _positive("total_frames", total_frames)
        self.total_frames = total_frames
        if self._per_worker_split:
            if frames_per_batch % self.num_workers:
                raise ConfigError(
                    f"frames_per_batch must be a multiple of num_workers={self.num_workers}, got {frames_per_batch}"
                )
            worker_frames = frames_per_batch // self.num_workers
        else:
            worker_frames = frames_per_batch
        self.policy = policy
        self.frames = 0
        self._shared_weights: TensorDictBase | None = None
        if isinstance(policy, torch.nn.Module):
            self._shared_weights = TensorDict.from_module(policy).data.clone().share_memory_()
        ctx: Any = mp.get_context(mp_start_method or _default_start_method())
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._buffers: list[TensorDictBase | None] = [None] * self.num_workers
        self._closed = False
        for w, fn in enumerate(fns):
            parent, child = ctx.Pipe()
            worker_kwargs = dict(
                kwargs,
                frames_per_batch=worker_frames,
                total_frames=-1,
                traj_id_start=traj_id_start,
                traj_id_stride=self.num_workers,
                traj_id_offset=w,
            )
            proc = ctx.Process(
                target=_worker,
                args=(child, fn, policy, self._shared_weights, worker_kwargs),
                daemon=True,
            )
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        for w in range(self.num_workers):
            self._expect(w, "ready")

    # --- messaging --------------------------------------------------------------------------
    def _expect(self, w: int, *kinds: str) -> Any:
        try:
            kind, payload = self._conns[w].recv()
        except EOFError:
            self._fail(f"collector worker {w} died (exit code {self._procs[w].exitcode})")
        if kind == "error":
            self._fail(f"collector worker {w} failed: {payload}")
        if kind not in kinds:
            self._fail(f"collector worker {w} answered {kind!r}, expected one of {kinds}")
        return kind, payload

    def _fail(self, message: str) -> NoReturn:
        self.shutdown()
        raise WorkerError(message)

    def _receive_batch(self, w: int) -> TensorDictBase:
        kind, payload = self._expect(w, "buffer", "batch")
        if kind == "buffer":
            self._buffers[w] = payload
        buffer = self._buffers[w]
        if buffer is None:
            self._fail(f"collector worker {w} sent a batch before its buffer")
        return buffer.clone()

    def _request(self, w: int) -> None:
        self._conns[w].send(("collect", None))

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

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed every worker with its own seed; return the next free seed."""
        for w, conn in enumerate(self._conns):
            conn.send(("seed", seed))
            _, nxt = self._expect(w, "seed")
            seed = seed if static_seed else nxt
        return seed

    def state_dict(self) -> dict[str, Any]:
        """Frame count and each worker's traj-id counter, to resume a collection."""
        workers = []
        for w, conn in enumerate(self._conns):
            conn.send(("state_dict", None))
            workers.append(self._expect(w, "state")[1])
        return {"frames": self.frames, "workers": workers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (same number of workers)."""
        if len(state["workers"]) != self.num_workers:
            raise ConfigError(
                f"state has {len(state['workers'])} workers, this collector {self.num_workers}"
            )
        self.frames = int(state["frames"])
        for w, conn in enumerate(self._conns):
            conn.send(("load_state_dict", state["workers"][w]))
            self._expect(w, "ok")

    def __len__(self) -> int:
        if self.total_frames == -1:
            raise TypeError("an endless collector (total_frames=-1) has no length")
        return -(-self.total_frames // self.frames_per_batch)

    def shutdown(self) -> None:
        """Stop the workers (politely, then by force) and release shared memory."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._buffers = [None] * self.num_workers

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter teardown
            self.shutdown()


class MultiSyncDataCollector(_MultiCollectorBase):
    """Collect in ``num_workers`` processes; each batch holds one slice from every worker.

    Batches are ``[num_envs_total, T]``: worker batches of ``[T]`` (one env) or ``[B, T]``
    (a batched env) stacked along the first dim, so every row is one env's time line.
    """

    def __iter__(self) -> Iterator[TensorDictBase]:
        while self.total_frames == -1 or self.frames < self.total_frames:
            yield self.next()

    def next(self) -> TensorDictBase:
        """Collect one batch from every worker and return them stacked."""
        if self._closed:
            raise ConfigError("this collector was shut down; build a new one")
        for w in range(self.num_workers):
            self._request(w)
        parts = []
        for w in range(self.num_workers):
            part = self._receive_batch(w)
            parts.append(part.unsqueeze(0) if part.batch_dims == 1 else part)
        self.frames += self.frames_per_batch
        out: Any = torch.cat(parts, 0)  # type: ignore[arg-type]  # tensordict overrides torch.cat
        return out


class MultiaSyncDataCollector(_MultiCollectorBase):
    """Collect in ``num_workers`` processes; yield each worker's batch as soon as it is ready.

    ``frames_per_batch`` is the size of each worker's batch. Workers keep collecting while
    the caller works on a batch, so weights may lag one batch behind an update.
    """

    _per_worker_split = False

    def __iter__(self) -> Iterator[TensorDictBase]:
        if self._closed:
            raise ConfigError("this collector was shut down; build a new one")
        pending: dict[Any, int] = {}

        def request(w: int) -> None:
            self._request(w)
            pending[self._conns[w]] = w

        requested = self.frames
        for w in range(self.num_workers):
            if self.total_frames == -1 or requested < self.total_frames:
                request(w)
                requested += self.frames_per_batch
        while pending:
            for conn in wait(list(pending)):
                w = pending.pop(conn)
                batch = self._receive_batch(w)
                if self.total_frames == -1 or requested < self.total_frames:
                    request(w)
                    requested += self.frames_per_batch
                self.frames += self.frames_per_batch
                batch.set(
                    ("collector", "worker"), torch.full(batch.batch_size, w, dtype=torch.int64)
                )
                yield batch
