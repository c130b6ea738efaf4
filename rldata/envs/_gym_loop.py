"""The fast inner path of the step loop: gymnasium envs stepped with numpy, one TensorDict per batch.

A TensorDict per environment step costs more than a gymnasium step of a classic-control
task, so a loop that built one per step could never keep up with a plain gymnasium loop.
When an environment says it is plain gymnasium underneath (``EnvBase._fast_layout``:
``GymEnv`` / ``GymWrapper`` and ``SerialEnv`` of them, with the standard TED keys), the
step loop (:mod:`rldata.envs._loop`) writes each step into preallocated numpy arrays and
wraps them as one TED TensorDict at the end (zero copy). Everything else takes the
generic path; both produce the same rows, keys, shapes and dtypes
(``tests/envs/test_loop.py``, ``tests/collectors/test_gym_collect.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rldata.envs._gym_spaces import np_dtype
from rldata.envs._run import IdSource, Run
from rldata.errors import SpecError
from rldata.specs import Bounded, Categorical, OneHot, Unbounded
from rldata.ted import TED_KEYS

ActFn = Callable[[np.ndarray], np.ndarray]
"""Maps observations ``[B, *obs]`` to gymnasium actions ``[B, ...]``."""


@dataclass(frozen=True)
class GymLayout:
    """What the fast path must reproduce of the environment's TED output.

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


_CPU = torch.device("cpu")

FastLayout = tuple[GymLayout, list]
"""A layout and the gymnasium envs (one per batch row) the fast path steps."""


def gym_layout(env: Any, gym_envs: list, batched: bool, validate: bool) -> FastLayout | None:
    """The fast-path layout for ``env`` stepping ``gym_envs``, or None if its specs do not fit.

    Fits: a Box observation under ``"observation"`` only, a Box action (Bounded or
    Unbounded spec) or a Discrete one starting at 0 (OneHot or Categorical spec), and a
    float32 reward of shape ``[1]``.
    """
    from gymnasium import spaces

    obs_space, act_space = gym_envs[0].observation_space, gym_envs[0].action_space
    if not isinstance(obs_space, spaces.Box):
        return None
    obs_keys = [
        k if isinstance(k, str) else tuple(k) for k in env.observation_spec.keys(True, True)
    ]
    if obs_keys != ["observation"]:
        return None
    nb = len(env.batch_size)
    obs_spec, act_spec = env.observation_spec["observation"], env.action_spec
    if isinstance(act_space, spaces.Box) and isinstance(act_spec, (Bounded, Unbounded)):
        kind, n = "continuous", 0
    elif isinstance(act_space, spaces.Discrete) and int(act_space.start) == 0:
        if isinstance(act_spec, OneHot):
            kind = "onehot"
        elif isinstance(act_spec, Categorical):
            kind = "categorical"
        else:
            return None
        n = int(act_space.n)
    else:
        return None
    if env.reward_spec.dtype != torch.float32 or tuple(env.reward_spec.shape[nb:]) != (1,):
        return None
    layout = GymLayout(
        obs_key="observation",
        obs_dtype=obs_spec.dtype,
        obs_shape=tuple(obs_spec.shape[nb:]),
        action_kind=kind,
        action_dtype=act_spec.dtype,
        action_shape=tuple(act_spec.shape[nb:]),
        n_actions=n,
        reward_dtype=env.reward_spec.dtype,
        batched=batched,
        validate=validate,
    )
    return layout, gym_envs


def _in_order(block: np.ndarray) -> ActFn:
    """Acts with the rows of ``block``, one per call, in order."""
    rows = iter(block)
    return lambda obs: next(rows)


class GymLoop:
    """Steps ``B`` gymnasium envs for ``T`` steps into one TED batch.

    Args:
        envs: the gymnasium environments (one per batch row).
        layout: the keys/dtypes/shapes to produce.
        actions: the wrapping env's ``action_stream`` (random actions, as ``rand_action``).
        act: the policy as a numpy function; None for random actions.
    """

    def __init__(
        self, envs: list, layout: GymLayout, actions: Callable[[], Any], act: ActFn | None
    ) -> None:
        self.envs = envs
        self.layout = layout
        self.actions = actions
        self.act = act
        self.num_envs = len(envs)
        self._obs: np.ndarray | None = None
        self._ids = np.zeros(self.num_envs, dtype=np.int64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        space = envs[0].action_space
        self._gym_act_shape = tuple(space.shape or ())
        self._gym_act_dtype = space.dtype
        self._obs_np_dtype = np_dtype(layout.obs_dtype)
        if layout.action_kind == "continuous":
            low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), self._gym_act_shape)
            high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), self._gym_act_shape)
            self._low, self._high = low, high
            self._bounded = bool(np.isfinite(low).all() and np.isfinite(high).all())

    # --- resets -------------------------------------------------------------------------
    def reset(self, root: TensorDictBase, counter: IdSource | None) -> None:
        """Start from ``root`` (what the wrapping env's ``reset`` returned); each row a new trajectory."""
        obs = np.empty((self.num_envs, *self.layout.obs_shape), dtype=self._obs_np_dtype)
        obs[:] = root.get(self.layout.obs_key).cpu().numpy().reshape(obs.shape)
        self._obs = obs
        if counter is not None:
            self._ids[:] = counter.take(self.num_envs).numpy()
        self._steps[:] = 0

    @property
    def started(self) -> bool:
        return self._obs is not None

    def stop(self) -> None:
        """Forget the current root: the next batch starts with a reset."""
        self._obs = None

    # --- actions ------------------------------------------------------------------------
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
        allowed range), so both paths refuse the same actions.
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
    def rollout(self, run: Run) -> TensorDict:
        """TED rows ``[B, T]`` (or ``[T]``) of ``run`` (which has no callback on this path)."""
        frames, counter, max_steps = run.frames, run.counter, run.max_steps
        break_when_any_done = run.break_when_any_done
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
        act = None if run.random else self.act
        drawn = act is None
        if act is None:  # random actions: the whole batch's draws at once, in the stream's order
            act = _in_order(self._random_block(T))
        used = T
        for t in range(T):
            a = act(obs)
            obs_b[t] = obs
            act_b[t] = a
            ids_b[t] = ids
            nobs_t, rew_t = nobs_b[t], rew_b[t]
            ended = False
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
                    ended = True
                    if break_when_any_done:
                        obs[i] = nobs
                        continue
                    obs[i], _ = envs[i].reset()
                    if counter is not None:
                        ids[i] = counter.take_one()
                    steps[i] = 0
                else:
                    obs[i] = nobs
            if ended and break_when_any_done:
                used = t + 1
                if drawn:
                    self.actions().put_back(T - used)
                self._obs = None  # finished envs were not reset: the next run resets
                break
        self._steps[:] = steps
        arrays = (obs_b, nobs_b, act_b, rew_b, term_b, trunc_b, ids_b)
        env_major = [np.ascontiguousarray(x[:used].swapaxes(0, 1)) for x in arrays]
        return self._to_tensordict(env_major, with_ids=counter is not None)

    def _to_tensordict(self, arrays: list[np.ndarray], with_ids: bool) -> TensorDict:
        obs_b, nobs_b, act_b, rew_b, term_b, trunc_b, ids_b = arrays
        lay, keys = self.layout, TED_KEYS
        action = torch.from_numpy(act_b)
        if lay.action_kind == "onehot":
            action = torch.nn.functional.one_hot(action.long(), lay.n_actions)
        action = action.reshape(*action.shape[:2], *lay.action_shape).to(lay.action_dtype)
        term = torch.from_numpy(term_b).unsqueeze(-1)
        trunc = torch.from_numpy(trunc_b).unsqueeze(-1)
        zeros = torch.zeros_like(term)
        batch = ids_b.shape
        entries: dict[Any, Any] = {
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
        }
        if with_ids:
            entries["collector"] = TensorDict(
                {"traj_ids": torch.from_numpy(ids_b)}, batch_size=batch
            )
        td = TensorDict(entries, batch_size=batch, device=_CPU)  # the generic path's device
        return td if lay.batched else td[0]

    # --- resuming -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"ids": self._ids.tolist(), "steps": self._steps.tolist()}
