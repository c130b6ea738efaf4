"""GymEnv and GymWrapper: gymnasium environments (single or vectorised) behind EnvBase.

A vector env runs with gymnasium's ``AutoresetMode.DISABLED``: a finished sub-env
waits until ``reset`` is asked for it (``"_reset"`` mask, as ``step_and_maybe_reset``
does), so the step that ends an episode returns its true final observation and no
step is spent on an implicit reset.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from rldata.envs._gym_loop import FastLayout, gym_layout
from rldata.envs._gym_spaces import (
    action_encoder,
    action_spec,
    observation_decoder,
    observation_spec,
)
from rldata.envs._make_errors import env_error
from rldata.envs._td import make_td
from rldata.envs.common import EnvBase, done_spec_for
from rldata.errors import ConfigError, EnvNotFoundError, RldataError, SpecError
from rldata.specs import Bounded, Composite, Unbounded


def _from_env_checker(err: AssertionError) -> bool:
    """Whether ``err`` was raised by gymnasium's passive env checker (a space it refuses)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "passive_env_checker" in tb.tb_frame.f_code.co_filename


class GymWrapper(EnvBase):
    """Wrap an existing gymnasium ``Env`` or ``VectorEnv`` (``AutoresetMode.DISABLED``).

    Args:
        env: the gymnasium environment; a VectorEnv gives ``batch_size=[num_envs]``.
        device: where output tensors live (actions may come from any device).
        categorical_action_encoding: Discrete actions as indices instead of one-hot.
        frame_skip: repeat each action this many times, summing rewards (stops early
            when the episode ends).
        from_pixels: observe ``"pixels"`` (``env.render()``, needs ``render_mode="rgb_array"``)
            instead of the state.
        validate_actions: refuse continuous actions outside the action spec's bounds with a
            :class:`~rldata.errors.SpecError`. Off by default, as in TorchRL: the action
            goes to gymnasium, which clips or refuses it as the env defines. Discrete
            actions and shapes are always checked.
    """

    def __init__(
        self,
        env: Any,
        device: Any = None,
        categorical_action_encoding: bool = False,
        frame_skip: int = 1,
        from_pixels: bool = False,
        validate_actions: bool = False,
    ) -> None:
        from gymnasium.vector import AutoresetMode, VectorEnv

        self._vector = isinstance(env, VectorEnv)
        if self._vector:
            mode = env.metadata.get("autoreset_mode", getattr(env, "autoreset_mode", None))
            if mode is not AutoresetMode.DISABLED and mode != AutoresetMode.DISABLED.value:
                raise ConfigError(
                    f"GymWrapper needs a vector env with autoreset_mode=AutoresetMode.DISABLED, "
                    f"got {mode!r}; GymEnv(..., num_envs=n) builds one"
                )
            batch: tuple[int, ...] = (int(env.num_envs),)
            obs_space, act_space = env.single_observation_space, env.single_action_space
        else:
            batch = ()
            obs_space, act_space = env.observation_space, env.action_space
        if frame_skip < 1:
            raise ConfigError(f"frame_skip must be >= 1, got {frame_skip}")
        super().__init__(batch, device)
        self._env = env
        self.frame_skip = int(frame_skip)
        self.from_pixels = bool(from_pixels)
        self._pending_seed: int | None = None
        self._needs_reset = np.zeros(batch or (1,), dtype=bool)
        self._move = self.device.type != "cpu"
        dev = self.device
        if from_pixels:
            frame = self._render_probe()
            single = Composite(
                {
                    "pixels": Bounded(
                        0, 255, frame.shape[len(batch) :], device=dev, dtype=torch.uint8
                    )
                },
                device=dev,
            )
            self._decode = None
        else:
            single = observation_spec(obs_space, dev)
            self._decode = observation_decoder(obs_space, single)
        single_action = action_spec(act_space, categorical_action_encoding, dev)
        self.observation_spec = single.expand(torch.Size(batch)) if batch else single
        self.action_spec = single_action.expand(torch.Size(batch)) if batch else single_action
        self.reward_spec = Unbounded((*batch, 1), device=dev, dtype=torch.float32)
        self.done_spec = done_spec_for(self.batch_size, dev)
        self._encode = action_encoder(act_space, single_action, batch, validate_actions)
        self._act_space, self._single_action_spec = act_space, single_action
        self.validate_actions = bool(validate_actions)
        self._reward_shape = (*batch, 1)
        self._last_done = False

    @property
    def gym_env(self) -> Any:
        """The wrapped gymnasium environment (for loops that step it directly)."""
        return self._env

    # -- conversion ---------------------------------------------------------------------
    def _render_probe(self) -> np.ndarray:
        self._env.reset()
        return self._frame()

    def _frame(self) -> np.ndarray:
        frame = self._env.render()
        if frame is None:
            raise ConfigError(
                "from_pixels=True needs render_mode='rgb_array'; render() returned None"
            )
        return np.stack(frame) if self._vector else np.asarray(frame)

    def _observe(self, obs: Any) -> dict[str, Any]:
        if self._decode is None:
            return {"pixels": torch.from_numpy(np.array(self._frame(), dtype=np.uint8))}
        return self._decode(obs)

    def _flags(self, terminated: Any, truncated: Any) -> dict[str, torch.Tensor]:
        if not self._vector:
            te_b, tr_b = bool(terminated), bool(truncated)
            return {
                "done": torch.from_numpy(np.array([te_b or tr_b])),
                "terminated": torch.from_numpy(np.array([te_b])),
                "truncated": torch.from_numpy(np.array([tr_b])),
            }
        te = np.array(terminated, dtype=bool).reshape(self._reward_shape)
        tr = np.array(truncated, dtype=bool).reshape(self._reward_shape)
        return {
            "done": torch.from_numpy(te | tr),
            "terminated": torch.from_numpy(te),
            "truncated": torch.from_numpy(tr),
        }

    def _finish(self, out: dict[str, Any]) -> TensorDictBase:
        if self._move:
            out = {k: _to(v, self.device) for k, v in out.items()}
        return make_td(out, self.batch_size, self.device)

    # -- EnvBase hooks ------------------------------------------------------------------
    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = self._encode(self._get_action(tensordict))
        env = self._env
        if self._vector and self._needs_reset.any():
            raise RldataError(
                f"step() on sub-envs {np.flatnonzero(self._needs_reset).tolist()} that finished; "
                "reset them first (reset(td) with a '_reset' mask, or step_and_maybe_reset)"
            )
        obs, reward, terminated, truncated, _ = env.step(action)
        if self.frame_skip > 1:
            reward = np.asarray(reward, dtype=np.float64)
            for _ in range(self.frame_skip - 1):
                if np.any(terminated) or np.any(truncated):
                    break
                obs, r, terminated, truncated, _ = env.step(action)
                reward = reward + r
        out = self._observe(obs)
        if self._vector:
            out["reward"] = torch.from_numpy(
                np.asarray(reward, dtype=np.float32).reshape(self._reward_shape)
            )
        else:
            out["reward"] = torch.from_numpy(np.array([reward], dtype=np.float32))
        flags = self._flags(terminated, truncated)
        out.update(flags)
        if self._vector:
            self._needs_reset = flags["done"].numpy().reshape(-1).copy()
        else:
            self._last_done = bool(terminated or truncated)
        return self._finish(out)

    def step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        if self._vector:
            return super().step_and_maybe_reset(tensordict)
        # single env: the step already knows (as Python bools) whether the episode ended
        tensordict = self.step(tensordict)
        root = self.step_mdp(tensordict)
        if self._last_done:
            root = self.reset(root)
        return tensordict, root

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        seed, self._pending_seed = self._pending_seed, None
        mask = self._reset_mask(tensordict) if self._vector else None
        if mask is None:
            obs, _ = self._env.reset(seed=seed)
            out = self._observe(obs)
            zeros = np.zeros(self._reward_shape, dtype=bool)
            out.update(self._flags(zeros, zeros))
            self._needs_reset[:] = False
            return self._finish(out)
        m = mask.cpu().numpy()
        obs, _ = self._env.reset(seed=seed, options={"reset_mask": m})
        out = self._observe(obs)
        keep = ~m.reshape(self._reward_shape)
        for key in ("done", "terminated", "truncated"):
            prev = tensordict.get(key, None) if tensordict is not None else None
            flag = np.zeros(self._reward_shape, dtype=bool)
            if prev is not None:
                flag = prev.cpu().numpy().reshape(self._reward_shape) & keep
            out[key] = torch.from_numpy(flag)
        self._needs_reset[m] = False
        return self._finish(out)

    def _fast_layout(self) -> FastLayout | None:
        """The gymnasium envs the step loop may step in numpy: this one, or a sync vector's.

        Only when stepping them is exactly what this wrapper's ``step`` does: its own
        step/reset (a subclass that overrides them keeps the generic path), on the CPU,
        without frame skip or pixels, and specs the fast path reproduces.
        """
        cls = type(self)
        own = all(
            getattr(cls, name) is getattr(GymWrapper, name)
            for name in ("step", "_step", "reset", "_reset", "step_and_maybe_reset")
        )
        if not own or self.frame_skip != 1 or self.from_pixels or self.device.type != "cpu":
            return None
        if not self._vector:
            return gym_layout(self, [self._env], False, self.validate_actions)
        from gymnasium.vector import SyncVectorEnv

        inner = self._env
        if not isinstance(inner, SyncVectorEnv) or len(inner.envs) != self.batch_size[0]:
            return None
        return gym_layout(self, list(inner.envs), True, self.validate_actions)

    def _set_seed(self, seed: int) -> int | None:
        self._pending_seed = int(seed)
        self._env.action_space.seed(int(seed))
        return None

    def _close(self) -> None:
        self._env.close()


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value.to(device, non_blocking=True)


def _unknown_env(env_id: str) -> EnvNotFoundError:
    from gymnasium import registry

    close = difflib.get_close_matches(env_id, list(registry.keys()), n=3, cutoff=0.5)
    return EnvNotFoundError(
        f"unknown gymnasium env id {env_id!r}; closest registered ids: {close or 'none'}"
    )


class GymEnv(GymWrapper):
    """A gymnasium environment made from its id; ``num_envs=n`` gives a ``[n]`` batch.

    Args:
        env_id: a registered gymnasium id, e.g. ``"Pendulum-v1"``.
        device: where output tensors live (``"cuda"`` for the GPU).
        num_envs: run ``n`` copies in a gymnasium vector env (``batch_size=[n]``).
        categorical_action_encoding: Discrete actions as indices instead of one-hot.
        frame_skip: repeat each action this many times, summing rewards.
        from_pixels: observe rendered frames under ``"pixels"``.
        vectorization_mode: gymnasium's ``"sync"`` (default) or ``"async"`` for ``num_envs``.
        **gym_kwargs: passed to ``gymnasium.make`` (``max_episode_steps``, ``render_mode``, ...).

    Raises:
        EnvNotFoundError: ``env_id`` is not registered; the message lists the closest ids.
    """

    def __init__(
        self,
        env_id: str,
        device: Any = None,
        num_envs: int | None = None,
        categorical_action_encoding: bool = False,
        frame_skip: int = 1,
        from_pixels: bool = False,
        *,
        vectorization_mode: str = "sync",
        validate_actions: bool = False,
        **gym_kwargs: Any,
    ) -> None:
        import gymnasium
        from gymnasium.vector import AutoresetMode

        self.env_id = env_id
        self.num_envs = num_envs
        self.gym_kwargs = dict(gym_kwargs)
        if from_pixels:
            gym_kwargs.setdefault("render_mode", "rgb_array")
        if num_envs is not None and num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        env: Any
        try:
            if num_envs is None:
                env = gymnasium.make(env_id, **gym_kwargs)
            else:
                env = gymnasium.make_vec(
                    env_id,
                    num_envs=num_envs,
                    vectorization_mode=vectorization_mode,
                    vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
                    **gym_kwargs,
                )
        except (gymnasium.error.Error, ImportError) as err:
            mapped = env_error(env_id, err)
            if mapped is None:
                raise
            raise mapped from None
        except AssertionError as err:  # gymnasium's env checker (an empty Dict space, ...)
            if not _from_env_checker(err):
                raise
            raise SpecError(f"env {env_id!r}: {str(err).strip() or 'refused'}") from None
        super().__init__(
            env,
            device=device,
            categorical_action_encoding=categorical_action_encoding,
            frame_skip=frame_skip,
            from_pixels=from_pixels,
            validate_actions=validate_actions,
        )

    def __repr__(self) -> str:
        n = f", num_envs={self.num_envs}" if self.num_envs else ""
        return f"GymEnv({self.env_id!r}{n}, device={self.device})"
