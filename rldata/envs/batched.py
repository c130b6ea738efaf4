"""SerialEnv and ParallelEnv: ``n`` copies of an environment as one ``[n]``-batched env.

Both take a function that builds one (unbatched) environment. SerialEnv steps the
copies in turn in this process; ParallelEnv runs each in a worker process, and the
two sides exchange actions and observations through shared-memory buffers, so a
step costs one short pipe message per worker rather than pickled tensors.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.envs._td import make_td, stack_tds
from rldata.envs.common import EnvBase
from rldata.errors import ConfigError, RldataError
from rldata.specs import Composite, TensorSpec, spec_from_json

EnvFn = Callable[..., EnvBase]


def _per_env(num_workers: int, create_env_fn: EnvFn | Sequence[EnvFn], kwargs: Any) -> list:
    if num_workers < 1:
        raise ConfigError(f"num_workers must be >= 1, got {num_workers}")
    fns = (
        list(create_env_fn)
        if isinstance(create_env_fn, Sequence)
        else [create_env_fn] * num_workers
    )
    kws = list(kwargs) if isinstance(kwargs, Sequence) else [dict(kwargs or {})] * num_workers
    if len(fns) != num_workers or len(kws) != num_workers:
        raise ConfigError(
            f"expected {num_workers} env functions and kwargs, got {len(fns)} and {len(kws)}"
        )
    return list(zip(fns, kws))


class _BatchedEnv(EnvBase):
    """Specs and partial-reset bookkeeping shared by SerialEnv and ParallelEnv."""

    def _set_specs(
        self, obs: Composite, action: TensorSpec, reward: TensorSpec, done: Composite
    ) -> None:
        n = self.batch_size
        self.observation_spec = obs.expand(n)
        self.action_spec = action.expand(n)
        self.reward_spec = reward.expand(n)
        self.done_spec = done.expand(n)
        self._root_keys = [*obs.keys(True, True), *done.keys(True, True)]
        self._next_keys = [*self._root_keys, self.reward_key]

    def _merge_reset(
        self, fresh: TensorDictBase, tensordict: TensorDictBase | None, mask: torch.Tensor | None
    ) -> TensorDictBase:
        """Rows outside ``mask`` take the values ``tensordict`` holds for them."""
        if mask is None or tensordict is None:
            return fresh
        for key in self._root_keys:
            prev = tensordict.get(key, None)
            new = fresh.get(key)
            if prev is None:
                continue
            m = mask.reshape(*mask.shape, *([1] * (new.dim() - 1)))
            fresh.set(key, torch.where(m.to(new.device), new, prev.to(new.device)))
        return fresh


class SerialEnv(_BatchedEnv):
    """``num_workers`` environments stepped one after the other in this process.

    Args:
        num_workers: number of environments (the batch size).
        create_env_fn: builds one unbatched env; or a list of ``num_workers`` functions.
        create_env_kwargs: keyword arguments for the function (or a list, one per env).
        device: output device (default: the sub-envs').
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFn | Sequence[EnvFn],
        create_env_kwargs: dict | Sequence[dict] | None = None,
        device: Any = None,
    ) -> None:
        pairs = _per_env(num_workers, create_env_fn, create_env_kwargs)
        self.envs: list[EnvBase] = [fn(**kw) for fn, kw in pairs]
        first = self.envs[0]
        if first.batch_size:
            raise ConfigError(
                f"SerialEnv needs unbatched sub-envs, got batch_size={tuple(first.batch_size)}"
            )
        super().__init__((num_workers,), device if device is not None else first.device)
        self._set_specs(
            first.observation_spec, first.action_spec, first.reward_spec, first.done_spec
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._get_action(tensordict)
        root = {
            k: tensordict.get(k) for k in self._root_keys if tensordict.get(k, None) is not None
        }
        nexts = []
        for i, env in enumerate(self.envs):
            row = {k: v[i] for k, v in root.items()}
            row[self.action_key] = action[i]
            nexts.append(env._step(make_td(row, env.batch_size, env.device)))
        return stack_tds(nexts, 0).to(self.device)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = self._reset_mask(tensordict)
        if mask is None:
            return stack_tds([env._reset(None) for env in self.envs], 0).to(self.device)
        rows = mask.tolist()
        fresh = {i: self.envs[i]._reset(None) for i, r in enumerate(rows) if r}
        template = next(iter(fresh.values()))
        out = [fresh[i] if i in fresh else template.clone() for i in range(len(self.envs))]
        return self._merge_reset(stack_tds(out, 0).to(self.device), tensordict, mask)

    def _set_seed(self, seed: int) -> int | None:
        for env in self.envs:
            seed = env.set_seed(seed)
        return seed

    def _close(self) -> None:
        for env in self.envs:
            env.close()


# --- ParallelEnv ----------------------------------------------------------------------------


def _worker(conn: Any, create_env_fn: EnvFn, kwargs: dict, index: int) -> None:
    """Worker loop: build the env, report its specs, then serve step/reset/seed/close."""
    torch.set_num_threads(1)
    try:
        env = create_env_fn(**kwargs)
        conn.send(
            (
                "specs",
                {
                    "observation": env.observation_spec.to_json(),
                    "action": env.action_spec.to_json(),
                    "reward": env.reward_spec.to_json(),
                    "done": env.done_spec.to_json(),
                },
            )
        )
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("error", err))
        return
    root: Any = None
    nxt: Any = None
    root_keys: list = []
    next_keys: list = []
    while True:
        try:
            cmd, arg = conn.recv()
        except EOFError:
            break
        try:
            if cmd == "buffers":
                root_buf, next_buf, root_keys, next_keys = arg
                root, nxt = root_buf[index], next_buf[index]
                conn.send(("ok", None))
            elif cmd == "step":
                out = env._step(root)
                for key in next_keys:
                    nxt.get(key).copy_(out.get(key))
                conn.send(("ok", None))
            elif cmd == "reset":
                out = env._reset(None)
                for key in root_keys:
                    root.get(key).copy_(out.get(key))
                conn.send(("ok", None))
            elif cmd == "seed":
                conn.send(("ok", env.set_seed(arg)))
            elif cmd == "close":
                env.close()
                conn.send(("ok", None))
                break
        except BaseException as err:  # noqa: BLE001
            conn.send(("error", err))
    conn.close()


def _shutdown(procs: list, conns: list) -> None:
    for conn in conns:
        with contextlib.suppress(OSError, BrokenPipeError):
            conn.send(("close", None))
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=1)
    for conn in conns:
        conn.close()


def _default_start_method() -> str:
    methods = mp.get_all_start_methods()
    cuda_busy = torch.cuda.is_available() and torch.cuda.is_initialized()
    return "fork" if "fork" in methods and not cuda_busy else "spawn"


class ParallelEnv(_BatchedEnv):
    """``num_workers`` environments, each in its own worker process.

    Actions, observations and flags travel through shared-memory buffers; the pipe only
    carries the command. Workers start with ``fork`` where available (fast, and lambdas
    work) unless CUDA is already initialised, then ``spawn`` (``create_env_fn`` must be
    picklable).

    Args:
        num_workers: number of worker processes (the batch size).
        create_env_fn: builds one unbatched env; or a list of ``num_workers`` functions.
        create_env_kwargs: keyword arguments for the function (or a list, one per env).
        device: output device (default: cpu; workers always run on cpu buffers).
        mp_start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"`` (default: see above).
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFn | Sequence[EnvFn],
        create_env_kwargs: dict | Sequence[dict] | None = None,
        device: Any = None,
        mp_start_method: str | None = None,
    ) -> None:
        import torch.multiprocessing as tmp  # registers tensor sharing with the pickler

        pairs = _per_env(num_workers, create_env_fn, create_env_kwargs)
        super().__init__((num_workers,), device)
        ctx: Any = tmp.get_context(mp_start_method or _default_start_method())
        self._conns: list = []
        self._procs: list = []
        for i, (fn, kw) in enumerate(pairs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, fn, kw, i), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            specs = [self._recv(i) for i in range(num_workers)]
        except BaseException:
            self._finalizer()
            raise
        first = specs[0]
        if first["observation"]["shape"]:
            self._finalizer()
            raise ConfigError(
                f"ParallelEnv needs unbatched sub-envs, got batch shape {first['observation']['shape']}"
            )
        self._set_specs(
            spec_from_json(first["observation"], device=self.device),  # type: ignore[arg-type]
            spec_from_json(first["action"], device=self.device),  # type: ignore[arg-type]
            spec_from_json(first["reward"], device=self.device),  # type: ignore[arg-type]
            spec_from_json(first["done"], device=self.device),  # type: ignore[arg-type]
        )
        root_spec = self.observation_spec.to("cpu")
        for key, spec in self.done_spec.to("cpu").items(True, True):
            root_spec[key] = spec
        root_spec[self.action_key] = self.action_spec.to("cpu")
        next_spec = self.observation_spec.to("cpu")
        for key, spec in self.done_spec.to("cpu").items(True, True):
            next_spec[key] = spec
        next_spec[self.reward_key] = self.reward_spec.to("cpu")
        self._root_buf = root_spec.zero().share_memory_()
        self._next_buf = next_spec.zero().share_memory_()
        for conn in self._conns:
            conn.send(
                ("buffers", (self._root_buf, self._next_buf, self._root_keys, self._next_keys))
            )
        for i in range(num_workers):
            self._recv(i)

    def _recv(self, i: int) -> Any:
        try:
            kind, payload = self._conns[i].recv()
        except EOFError:
            raise RldataError(
                f"ParallelEnv worker {i} died (exit code {self._procs[i].exitcode})"
            ) from None
        if kind == "error":
            raise payload
        return payload

    def _broadcast(self, cmd: str, rows: Sequence[int]) -> None:
        for i in rows:
            self._conns[i].send((cmd, None))
        errors = []
        for i in rows:  # read every reply, so no worker is left out of step with the pipe
            try:
                self._recv(i)
            except Exception as err:  # noqa: BLE001 - re-raised below
                errors.append(err)
        if errors:
            raise errors[0]

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._get_action(tensordict)
        self._root_buf.get(self.action_key).copy_(action)
        for key in self._root_keys:
            value = tensordict.get(key, None)
            if value is not None:
                self._root_buf.get(key).copy_(value)
        self._broadcast("step", range(len(self._conns)))
        return self._next_buf.clone().to(self.device)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = self._reset_mask(tensordict)
        rows = range(len(self._conns)) if mask is None else torch.nonzero(mask).reshape(-1).tolist()
        self._broadcast("reset", rows)
        fresh = self._root_buf.select(*self._root_keys).clone().to(self.device)
        return self._merge_reset(fresh, tensordict, mask)

    def _set_seed(self, seed: int) -> int | None:
        for i, conn in enumerate(self._conns):
            conn.send(("seed", seed))
            seed = self._recv(i)
        return seed

    def _close(self) -> None:
        self._finalizer()
