"""The fast collection loop: gymnasium environments stepped with numpy, one TensorDict per batch.

A TensorDict per environment step costs more than a gymnasium step of a classic-control
task, so a collector that built one per step could never keep up with a plain gymnasium
loop. When the environment is a plain gymnasium environment (or a batch of them) behind
``GymEnv`` / ``SerialEnv`` with the standard TED keys, this loop writes each step into
preallocated numpy arrays and wraps them as one TED TensorDict at the end of the batch
(zero copy). Everything else goes through the generic loop in ``_env_loop.py``; both
produce the same keys, shapes and dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from rldata.collectors.trajectories import TrajCounter
from rldata.errors import SpecError
from rldata.ted import TED_KEYS

ActFn = Callable[[np.ndarray], np.ndarray]
"""Maps observations ``[B, *obs]`` (or ``[*obs]`` unbatched) to gymnasium actions."""


@dataclass(frozen=True)
class GymLayout:
    """What the fast loop must reproduce of the environment's TED output.

    Attributes:
        obs_key: the observation key (``"observation"``).
        obs_dtype: torch dtype of the observation spec.
        obs_shape: observation shape, without batch dims.
        action_kind: ``"continuous"``, ``"onehot"`` or ``"categorical"``.
        action_dtype: torch dtype of the action spec.
        action_shape: action shape in the spec's encoding, without batch dims.
        n_actions: number of discrete actions (0 for continuous).
        reward_dtype: torch dtype of the reward spec.
        batched: whether the env has a batch dim (``[B, T]`` batches) or not (``[T]``).
        validate: refuse continuous policy actions outside the action space's bounds
            (``GymEnv``'s ``validate_actions``); discrete encodings are always checked.
    """

    obs_key: str
    obs_dtype: torch.dtype
    obs_shape: tuple[int, ...]
    action_kind: str
    action_dtype: torch.dtype
    action_shape: tuple[int, ...]
    n_actions: int
    reward_dtype: torch.dtype
    batched: bool
    validate: bool = False


def _np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


class GymLoop:
    """Steps ``B`` gymnasium envs for ``T`` steps into one TED batch.

    Args:
        envs: the gymnasium environments (one per batch row).
        layout: the keys/dtypes/shapes to produce.
    """

    def __init__(self, envs: list, layout: GymLayout, actions: Callable[[], Any]) -> None:
        self.envs = envs
        self.layout = layout
        self.actions = actions
        self.num_envs = len(envs)
        self._obs: np.ndarray | None = None
        self._ids = np.zeros(self.num_envs, dtype=np.int64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        space = envs[0].action_space
        self._gym_act_shape = tuple(space.shape or ())
        self._gym_act_dtype = space.dtype
        self._obs_np_dtype = _np_dtype(layout.obs_dtype)
        if layout.action_kind == "continuous":
            low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), self._gym_act_shape)
            high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), self._gym_act_shape)
            self._low, self._high = low, high
            self._bounded = bool(np.isfinite(low).all() and np.isfinite(high).all())

    # --- resets -------------------------------------------------------------------------
    def reset(self, counter: TrajCounter, env_reset: Callable[[], np.ndarray]) -> None:
        """Reset every env through the wrapping env's own ``reset``; each starts a trajectory.

        Args:
            counter: where the new trajectory ids come from.
            env_reset: the wrapping rldata env's reset (observations ``[B, *obs]``), so a
                seed given to the env (``env.set_seed``) applies exactly as in the
                generic loop.
        """
        obs = np.empty((self.num_envs, *self.layout.obs_shape), dtype=self._obs_np_dtype)
        obs[:] = env_reset().reshape(obs.shape)
        self._obs = obs
        self._ids[:] = counter.take(self.num_envs).numpy()
        self._steps[:] = 0

    @property
    def started(self) -> bool:
        return self._obs is not None

    # --- actions ------------------------------------------------------------------------
    def random_act(self, obs: np.ndarray) -> np.ndarray:
        """The next random action of the env's own stream (what ``env.rand_action`` draws)."""
        return self._random_block(1)[0]

    def _random_block(self, steps: int) -> np.ndarray:
        """The stream's next ``steps`` actions as gymnasium actions ``[steps, B, ...]``."""
        action = self.actions().take(steps)
        x = action.numpy() if action.is_cpu else action.cpu().numpy()
        lay, b = self.layout, self.num_envs
        if lay.action_kind == "continuous":
            return x.reshape(steps, b, *self._gym_act_shape)
        if lay.action_kind == "onehot":
            return x.reshape(steps, b, lay.n_actions).argmax(-1)
        return x.reshape(steps, b)

    def to_gym(self, action: torch.Tensor) -> np.ndarray:
        """A policy's action tensor (spec encoding, batch ``[B]``) as gymnasium actions.

        Checked as ``GymEnv`` checks them (a :class:`SpecError` naming the value and the
        allowed range), so both loops refuse the same actions.
        """
        if action.device.type != "cpu":
            action = action.cpu()
        x = action.detach().numpy()
        kind, check = self.layout.action_kind, self.layout.validate  # check: Box bounds only
        if kind == "continuous":
            if check and self._bounded and ((x < self._low) | (x > self._high)).any():
                raise SpecError(
                    f"action {x.tolist()} is outside the action spec: expected values in "
                    f"[{self._low.tolist()}, {self._high.tolist()}]"
                )
            return x
        if kind == "onehot":
            if not (((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all()):
                raise SpecError(
                    f"action {x.tolist()} is outside the action spec: expected a one-hot "
                    f"vector of length {self.layout.n_actions}"
                )
            return x.argmax(-1)
        x = x.reshape(x.shape[0])
        if not ((x >= 0).all() and (x < self.layout.n_actions).all()):
            raise SpecError(
                f"action {x.tolist()} is outside the action spec: expected an index in "
                f"[0, {self.layout.n_actions})"
            )
        return x

    # --- the loop -----------------------------------------------------------------------
    def rollout(
        self, frames: int, act: ActFn, counter: TrajCounter, max_steps: int | None
    ) -> TensorDict:
        """Collect ``frames`` steps per env; return TED rows ``[B, T]`` (or ``[T]``)."""
        lay = self.layout
        n, T = self.num_envs, frames
        # time-major while stepping (one contiguous row per step), env-major at the end
        obs_b = np.empty((T, n, *lay.obs_shape), dtype=self._obs_np_dtype)
        nobs_b = np.empty_like(obs_b)
        act_b = np.empty((T, n, *self._gym_act_shape), dtype=self._gym_act_dtype)
        rew_b = np.empty((T, n), dtype=np.float64)
        term_b = np.zeros((T, n), dtype=bool)
        trunc_b = np.zeros((T, n), dtype=bool)
        ids_b = np.empty((T, n), dtype=np.int64)
        if self._obs is None:
            raise RuntimeError("GymLoop.rollout before reset")
        envs, obs, ids = self.envs, self._obs, self._ids
        steps = self._steps.tolist()
        limit = max_steps if max_steps is not None else -1
        # random actions: the whole batch's draws at once, in the stream's order
        block = self._random_block(T) if act == self.random_act else None
        for t in range(T):
            a = act(obs) if block is None else block[t]
            obs_b[t] = obs
            act_b[t] = a
            ids_b[t] = ids
            nobs_t, rew_t = nobs_b[t], rew_b[t]
            for i in range(n):
                nobs, r, term, trunc, _ = envs[i].step(a[i])
                nobs_t[i] = nobs
                rew_t[i] = r
                steps[i] += 1
                if steps[i] == limit:
                    trunc = True
                if term or trunc:
                    term_b[t, i] = term
                    trunc_b[t, i] = trunc
                    obs[i], _ = envs[i].reset()
                    ids[i] = counter.take_one()
                    steps[i] = 0
                else:
                    obs[i] = nobs
        self._steps[:] = steps
        env_major = (
            np.ascontiguousarray(x.swapaxes(0, 1))
            for x in (obs_b, nobs_b, act_b, rew_b, term_b, trunc_b, ids_b)
        )
        return self._to_tensordict(*env_major)

    def _to_tensordict(self, obs_b, nobs_b, act_b, rew_b, term_b, trunc_b, ids_b) -> TensorDict:
        lay, keys = self.layout, TED_KEYS
        action = torch.from_numpy(act_b)
        if lay.action_kind == "onehot":
            action = torch.nn.functional.one_hot(action.long(), lay.n_actions)
        action = action.reshape(*action.shape[:2], *lay.action_shape).to(lay.action_dtype)
        term = torch.from_numpy(term_b).unsqueeze(-1)
        trunc = torch.from_numpy(trunc_b).unsqueeze(-1)
        zeros = torch.zeros_like(term)
        batch = ids_b.shape
        td = TensorDict(
            {
                lay.obs_key: torch.from_numpy(obs_b),
                keys.action: action,
                keys.done: zeros,
                keys.terminated: zeros.clone(),
                keys.truncated: zeros.clone(),
                keys.next: TensorDict(
                    {
                        lay.obs_key: torch.from_numpy(nobs_b),
                        keys.reward: torch.from_numpy(rew_b).to(lay.reward_dtype).unsqueeze(-1),
                        keys.done: term | trunc,
                        keys.terminated: term,
                        keys.truncated: trunc,
                    },
                    batch_size=batch,
                ),
                "collector": TensorDict({"traj_ids": torch.from_numpy(ids_b)}, batch_size=batch),
            },
            batch_size=batch,
        )
        return td if lay.batched else td[0]

    # --- resuming -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"ids": self._ids.tolist(), "steps": self._steps.tolist()}
