"""The one step loop: every collector batch and every ``env.rollout`` run through it.

``policy(td) -> td`` writes the action, ``env.step(td)`` adds ``"next"``, the row is
kept, then the ``"next"`` entries move to the root and finished environments are reset
(or, with ``break_when_any_done``, the loop stops). :func:`make_loop` picks the inner
path: environments that are plain gymnasium underneath (their ``_fast_layout`` says so)
with a random policy or a policy that only reads the observation are stepped in numpy by
:class:`~rldata.envs._gym_loop.GymLoop`; everything else (transforms, ParallelEnv, policies
that read other keys, callbacks) goes through :class:`StepLoop` here. Both give the same
rows; collectors add trajectory ids by passing a counter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.envs._gym_loop import GymLoop
from rldata.envs._policy import is_random_policy, tensor_act_fn
from rldata.envs._run import IdSource, Run
from rldata.envs._td import stack_tds
from rldata.ted import TED_KEYS, step_mdp

Policy = Callable[[TensorDictBase], TensorDictBase]

_RESET = "_reset"


class StepLoop:
    """The generic path: steps an EnvBase-like env with TensorDicts.

    Args:
        env: an environment with ``batch_size``, ``reset(td=None)``, ``step(td)`` and,
            when batched, partial resets through a boolean ``"_reset"`` entry.
        policy: what acts (``td -> td`` writing ``"action"``).
        random_policy: what acts on ``random=True`` steps (default: ``env.rand_action``).
    """

    def __init__(self, env: Any, policy: Policy, random_policy: Policy | None = None) -> None:
        self.env = env
        self.policy = policy
        self.random_policy = random_policy or env.rand_action
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

    def stop(self) -> None:
        """Forget the current root: the next batch starts with a reset."""
        self._td = None

    def reset(self, root: TensorDictBase, counter: IdSource | None) -> None:
        """Start from ``root`` (what ``env.reset`` returned); each row a new trajectory."""
        self._td = root
        if counter is not None:
            self._ids = counter.take(self.num_envs).reshape(self.batch)
        self._steps = torch.zeros(self.batch, dtype=torch.int64)

    def _reset_done(self, root: TensorDictBase, done: torch.Tensor) -> TensorDictBase:
        """Replace the rows of finished envs in ``root`` by fresh reset states."""
        if not self.batch:
            return self.env.reset(root)
        root.set(_RESET, done.reshape(*self.batch, 1).clone())
        return self.env.reset(root).exclude(_RESET)

    def rollout(self, run: Run) -> TensorDictBase:
        """TED rows ``[*batch, T]`` of ``run``."""
        frames, counter, max_steps = run.frames, run.counter, run.max_steps
        break_when_any_done, callback = run.break_when_any_done, run.callback
        keys = TED_KEYS
        rows: list[TensorDictBase] = []
        if self._td is None:
            raise RuntimeError("StepLoop.rollout before reset")
        td: TensorDictBase = self._td
        env, policy = self.env, self.random_policy if run.random else self.policy
        combined = max_steps is None and not break_when_any_done
        combined = combined and hasattr(env, "step_and_maybe_reset")
        to_root = getattr(env, "step_mdp", None) or step_mdp
        for _ in range(frames):
            td = policy(td)
            if counter is not None:
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
                if done.any() and not break_when_any_done:
                    root = self._reset_done(root, done)
            rows.append(td)
            if callback is not None:
                callback(env, td)
            finished = bool(done.any())
            if break_when_any_done and finished:
                self._td = None  # finished envs were not reset: the next run resets
                return stack_rows(rows, len(self.batch))
            if finished and counter is not None:
                self._ids = self._ids.clone()
                self._ids[done] = counter.take(int(done.sum()))
            if finished:
                self._steps = torch.where(done, 0, self._steps)
            td = root.exclude(keys.traj_ids[0]) if counter is not None else root
        self._td = td
        return stack_rows(rows, len(self.batch))

    def state_dict(self) -> dict:
        return {"ids": self._ids.reshape(-1).tolist(), "steps": self._steps.reshape(-1).tolist()}


Loop = StepLoop | GymLoop


def make_loop(
    env: Any,
    policy: Any,
    *,
    call: Policy | None = None,
    random_call: Policy | None = None,
    fast: bool = True,
) -> Loop:
    """The loop for ``env`` driven by ``policy``: the numpy path where it applies.

    Args:
        env: the environment.
        policy: the user's policy; ``None`` or a ``RandomPolicy`` draws from the env's
            action stream (``env.rand_action``).
        call: how the generic path calls the policy (default: ``policy`` itself, or
            ``env.rand_action`` for a random policy); e.g. a wrapper that moves devices.
        random_call: what the generic path calls on ``random=True`` steps.
        fast: allow the numpy path.
    """
    declared = getattr(env, "_fast_layout", None)  # EnvBase's hook; duck-typed envs lack it
    found = declared() if fast and declared is not None else None
    if found is not None:
        layout, gym_envs = found
        loop = GymLoop(gym_envs, layout, env.action_stream, None)
        if is_random_policy(policy):
            return loop
        act = tensor_act_fn(policy, layout.obs_key, loop.to_gym)
        if act is not None:
            loop.act = act
            return loop
    if call is None:
        call = env.rand_action if policy is None else policy
    return StepLoop(env, call, random_call)


def stack_rows(rows: list[TensorDictBase], dim: int) -> TensorDictBase:
    """Stack step outputs along time (column by column; see :func:`rldata.envs._td.stack_tds`)."""
    return stack_tds(rows, dim)
