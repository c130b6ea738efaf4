"""SerialEnv and ParallelEnv: ``n`` copies of an environment as one ``[n]``-batched env.

Both take a function that builds one (unbatched) environment. SerialEnv steps the
copies in turn in this process; ParallelEnv runs each in a worker process, and the
two sides exchange actions and observations through shared-memory buffers, so a
step costs one short pipe message per worker rather than pickled tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.envs._gym_loop import FastLayout, gym_layout
from rldata.envs._pool import WorkerPool, chain_seeds
from rldata.envs._td import make_td, stack_tds
from rldata.envs.common import EnvBase
from rldata.errors import ConfigError
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

    def _fast_layout(self) -> FastLayout | None:
        """The sub-envs' gymnasium envs, one per row, if each may be stepped in numpy."""
        if type(self)._step is not SerialEnv._step or self.device.type != "cpu":
            return None
        subs = [found for env in self.envs if (found := env._fast_layout()) is not None]
        if len(subs) != len(self.envs):
            return None
        validate = subs[0][0].validate
        return gym_layout(self, [gym_envs[0] for _, gym_envs in subs], True, validate)

    def _set_seed(self, seed: int) -> int | None:
        for env in self.envs:
            seed = env.set_seed(seed)
        return seed

    def _close(self) -> None:
        for env in self.envs:
            env.close()


# --- ParallelEnv ----------------------------------------------------------------------------


class _EnvServer:
    """What each ParallelEnv worker runs: one env, stepping in place in the shared buffers."""

    def __init__(self, create_env_fn: EnvFn, kwargs: dict, index: int) -> None:
        self.env = create_env_fn(**kwargs)
        self.index = index
        self.root: Any = None
        self.next: Any = None
        self.root_keys: list = []
        self.next_keys: list = []

    def specs(self) -> dict[str, dict]:
        env = self.env
        return {
            "observation": env.observation_spec.to_json(),
            "action": env.action_spec.to_json(),
            "reward": env.reward_spec.to_json(),
            "done": env.done_spec.to_json(),
        }

    def buffers(
        self, root: TensorDictBase, nxt: TensorDictBase, root_keys: list, next_keys: list
    ) -> None:
        self.root, self.next = root[self.index], nxt[self.index]
        self.root_keys, self.next_keys = root_keys, next_keys

    def step(self) -> None:
        out = self.env._step(self.root)
        for key in self.next_keys:
            self.next.get(key).copy_(out.get(key))

    def reset(self) -> None:
        out = self.env._reset(None)
        for key in self.root_keys:
            self.root.get(key).copy_(out.get(key))

    def set_seed(self, seed: int) -> int:
        return self.env.set_seed(seed)

    def close(self) -> None:
        self.env.close()


class ParallelEnv(_BatchedEnv):
    """``num_workers`` environments, each in its own worker process.

    Actions, observations and flags travel through shared-memory buffers; the pipe only
    carries the command. Workers are a :class:`~rldata.envs._pool.WorkerPool`: they start
    with ``fork`` on Linux unless CUDA is already initialised, else ``spawn``
    (``create_env_fn`` must then be picklable), and an error in a worker is raised here
    with its own class.

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
        pairs = _per_env(num_workers, create_env_fn, create_env_kwargs)
        super().__init__((num_workers,), device)
        args = [(fn, kw, i) for i, (fn, kw) in enumerate(pairs)]
        self._pool = WorkerPool("ParallelEnv", _EnvServer, args, mp_start_method)
        try:
            self._setup_buffers(self._pool.call(0, "specs"))
        except BaseException:
            self._pool.close()
            raise

    @property
    def _procs(self) -> list:
        return self._pool.procs

    def _setup_buffers(self, first: dict[str, Any]) -> None:
        if first["observation"]["shape"]:
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
        next_spec = self.observation_spec.to("cpu")
        for key, spec in self.done_spec.to("cpu").items(True, True):
            root_spec[key] = spec
            next_spec[key] = spec
        root_spec[self.action_key] = self.action_spec.to("cpu")
        next_spec[self.reward_key] = self.reward_spec.to("cpu")
        self._root_buf = root_spec.zero().share_memory_()
        self._next_buf = next_spec.zero().share_memory_()
        self._pool.call_all(
            "buffers", self._root_buf, self._next_buf, self._root_keys, self._next_keys
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._get_action(tensordict)
        self._root_buf.get(self.action_key).copy_(action)
        for key in self._root_keys:
            value = tensordict.get(key, None)
            if value is not None:
                self._root_buf.get(key).copy_(value)
        self._pool.call_all("step")
        return self._next_buf.clone().to(self.device)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = self._reset_mask(tensordict)
        rows = None if mask is None else torch.nonzero(mask).reshape(-1).tolist()
        self._pool.call_all("reset", workers=rows)
        fresh = self._root_buf.select(*self._root_keys).clone().to(self.device)
        return self._merge_reset(fresh, tensordict, mask)

    def _set_seed(self, seed: int) -> int | None:
        return chain_seeds(
            lambda w, s: self._pool.call(w, "set_seed", s), len(self._pool), seed, False
        )

    def _close(self) -> None:
        self._pool.close()
