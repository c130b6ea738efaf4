"""The generic collection loop: any environment that follows the EnvBase contract.

``policy(td) -> td`` writes the action, ``env.step(td)`` adds ``"next"``, the row is
kept, then the ``"next"`` entries move to the root and finished environments are reset.
This path works with transforms, ParallelEnv and policies that read any key; the fast
path in ``_gym_loop.py`` handles the plain-gymnasium case without a TensorDict per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.collectors.trajectories import TrajCounter
from rldata.ted import TED_KEYS, step_mdp

Policy = Callable[[TensorDictBase], TensorDictBase]

_RESET = "_reset"


class EnvLoop:
    """Steps an EnvBase-like env ``T`` times per batch, resetting finished envs.

    Args:
        env: an environment with ``batch_size``, ``reset(td=None)``, ``step(td)`` and,
            when batched, partial resets through a boolean ``"_reset"`` entry.
    """

    def __init__(self, env) -> None:
        self.env = env
        self.batch = tuple(env.batch_size)
        self._td: TensorDictBase | None = None
        self._ids = torch.zeros(self.batch, dtype=torch.int64)
        self._steps = torch.zeros(self.batch, dtype=torch.int64)

    @property
    def num_envs(self) -> int:
        return int(torch.Size(self.batch).numel())

    @property
    def started(self) -> bool:
        return self._td is not None

    def reset(self, counter: TrajCounter) -> None:
        """Reset every env; each starts a new trajectory."""
        self._td = self.env.reset()
        self._ids = counter.take(self.num_envs).reshape(self.batch)
        self._steps = torch.zeros(self.batch, dtype=torch.int64)

    def _reset_done(self, root: TensorDictBase, done: torch.Tensor) -> TensorDictBase:
        """Replace the rows of finished envs in ``root`` by fresh reset states."""
        if not self.batch:
            return self.env.reset(root)
        root.set(_RESET, done.reshape(*self.batch, 1).clone())
        return self.env.reset(root).exclude(_RESET)

    def rollout(
        self, frames: int, policy: Policy, counter: TrajCounter, max_steps: int | None
    ) -> TensorDictBase:
        """Collect ``frames`` steps per env; return TED rows ``[*batch, T]``."""
        keys = TED_KEYS
        rows: list[TensorDictBase] = []
        if self._td is None:
            raise RuntimeError("EnvLoop.rollout before reset")
        td: TensorDictBase = self._td
        env = self.env
        combined = max_steps is None and hasattr(env, "step_and_maybe_reset")
        to_root = getattr(env, "step_mdp", None) or step_mdp
        for _ in range(frames):
            td = policy(td)
            td.set(keys.traj_ids, self._ids)
            if combined:  # the env steps, moves to the next root and resets finished rows
                td, root = env.step_and_maybe_reset(td)
                done = td.get((keys.next, keys.done)).reshape(self.batch)
            else:
                td = env.step(td)
                self._steps = self._steps + 1
                nxt = td.get(keys.next)
                if max_steps is not None:
                    hit = (self._steps >= max_steps).reshape(*self.batch, 1)
                    if hit.any():
                        nxt.set(keys.truncated, nxt.get(keys.truncated) | hit)
                        nxt.set(keys.done, nxt.get(keys.done) | hit)
                done = nxt.get(keys.done).reshape(self.batch)
                root = to_root(td)
                if done.any():
                    root = self._reset_done(root, done)
            rows.append(td)
            if done.any():
                self._ids = self._ids.clone()
                self._ids[done] = counter.take(int(done.sum()))
                self._steps = torch.where(done, 0, self._steps)
            td = root.exclude(keys.traj_ids[0])
        self._td = td
        return _stack_rows(rows, len(self.batch))

    def state_dict(self) -> dict:
        return {"ids": self._ids.reshape(-1).tolist(), "steps": self._steps.reshape(-1).tolist()}


def _stack_rows(rows: list[TensorDictBase], dim: int) -> TensorDictBase:
    """Stack step outputs along time, key by key (much cheaper than stacking TensorDicts)."""
    first = rows[0]
    keys = list(first.keys(True, True))
    batch = (*first.batch_size[:dim], len(rows), *first.batch_size[dim:])
    out = TensorDict({}, batch_size=batch, device=first.device)
    for key in keys:
        out.set(key, torch.stack([r.get(key) for r in rows], dim))
    return out
