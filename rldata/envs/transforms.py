"""TransformedEnv and the transforms the walkthrough uses.

A transform sees every reset output and every ``"next"`` a step produces, and may
rewrite the action before the base env sees it (``inv``). It also declares how it
changes the env's specs, so ``TransformedEnv(env, StepCounter()).observation_spec``
lists ``step_count``. Partial resets of batched envs reach transforms as the
``"_reset"`` mask of the reset input: rows outside the mask keep their running values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.envs._td import make_td
from rldata.envs.common import RESET_KEY, EnvBase
from rldata.errors import ConfigError
from rldata.specs import Bounded, Categorical, Composite, TensorSpec, Unbounded

__all__ = [
    "Transform",
    "Compose",
    "TransformedEnv",
    "StepCounter",
    "RewardSum",
    "DoubleToFloat",
    "ObservationNorm",
    "InitTracker",
]


def reset_rows(tensordict: TensorDictBase | None, batch: torch.Size) -> torch.Tensor | None:
    """The ``[*batch, 1]`` mask of rows being reset, or None when all of them are."""
    if tensordict is None or not batch:
        return None
    mask = tensordict.get(RESET_KEY, None)
    if mask is None:
        return None
    return mask.reshape(*batch, 1).to(torch.bool)


def _restart(
    tensordict: TensorDictBase | None, key: str, fresh: torch.Tensor, batch: torch.Size
) -> torch.Tensor:
    """``fresh`` in the rows being reset, the running value of ``key`` elsewhere."""
    mask = reset_rows(tensordict, batch)
    prev = None if tensordict is None else tensordict.get(key, None)
    if mask is None or prev is None:
        return fresh
    mask = mask.reshape(*mask.shape, *([1] * (fresh.dim() - mask.dim())))
    return torch.where(mask, fresh, prev)


def _with_dtype(spec: TensorSpec, dtype: torch.dtype) -> TensorSpec:
    out = spec.clone()
    out.dtype = dtype
    if isinstance(out, Bounded):
        out.low, out.high = out.low.to(dtype), out.high.to(dtype)
    return out


class Transform:
    """Base transform: every hook is the identity; override the ones you need."""

    def __init__(self) -> None:
        self.parent: TransformedEnv | None = None

    def transform_observation_spec(self, spec: Composite) -> Composite:
        return spec

    def transform_action_spec(self, spec: TensorSpec) -> TensorSpec:
        return spec

    def transform_reward_spec(self, spec: TensorSpec) -> TensorSpec:
        return spec

    def transform_done_spec(self, spec: Composite) -> Composite:
        return spec

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Rewrite the step input (e.g. the action) before the base env reads it."""
        return tensordict

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        """Rewrite ``next_tensordict``; ``tensordict`` is the root the step started from."""
        return next_tensordict

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        """Rewrite the reset output; ``tensordict`` is the reset input (may hold ``"_reset"``)."""
        return tensordict_reset

    def _changed(self) -> None:
        if self.parent is not None:
            self.parent.refresh_specs()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Compose(Transform):
    """Several transforms applied in order (``inv`` in reverse order)."""

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        self.transforms: list[Transform] = list(transforms)

    def append(self, transform: Transform) -> None:
        self.transforms.append(transform)
        transform.parent = self.parent
        self._changed()

    def __getitem__(self, index: int) -> Transform:
        return self.transforms[index]

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self.transforms)

    def _set_parent(self, parent: TransformedEnv) -> None:
        self.parent = parent
        for t in self.transforms:
            if isinstance(t, Compose):
                t._set_parent(parent)
            else:
                t.parent = parent

    def transform_observation_spec(self, spec: Composite) -> Composite:
        for t in self.transforms:
            spec = t.transform_observation_spec(spec)
        return spec

    def transform_action_spec(self, spec: TensorSpec) -> TensorSpec:
        for t in self.transforms:
            spec = t.transform_action_spec(spec)
        return spec

    def transform_reward_spec(self, spec: TensorSpec) -> TensorSpec:
        for t in self.transforms:
            spec = t.transform_reward_spec(spec)
        return spec

    def transform_done_spec(self, spec: Composite) -> Composite:
        for t in self.transforms:
            spec = t.transform_done_spec(spec)
        return spec

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        for t in reversed(self.transforms):
            tensordict = t.inv(tensordict)
        return tensordict

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            next_tensordict = t._step(tensordict, next_tensordict)
        return next_tensordict

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        for t in self.transforms:
            tensordict_reset = t._reset(tensordict, tensordict_reset)
        return tensordict_reset

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(t) for t in self.transforms)})"


class TransformedEnv(EnvBase):
    """An environment seen through transforms; specs are the transformed ones.

    Args:
        env: the base environment (any EnvBase, batched or not).
        transform: one transform or a :class:`Compose`; more can be appended later.

    Examples:
        >>> env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=10))  # doctest: +SKIP
        >>> env.rollout(100).shape                                                   # doctest: +SKIP
        torch.Size([10])
    """

    def __init__(self, env: EnvBase, transform: Transform | None = None) -> None:
        super().__init__(env.batch_size, env.device)
        self.base_env = env
        if transform is None:
            transform = Compose()
        elif not isinstance(transform, Compose):
            transform = Compose(transform)
        self.transform: Compose = transform
        self.transform._set_parent(self)
        self.refresh_specs()

    def append_transform(self, transform: Transform) -> TransformedEnv:
        self.transform.append(transform)
        self.transform._set_parent(self)
        self.refresh_specs()
        return self

    def refresh_specs(self) -> None:
        """Recompute the specs through the transforms (after a transform changed)."""
        base = self.base_env
        self.observation_spec = self.transform.transform_observation_spec(
            base.observation_spec.clone()
        )
        self.action_spec = self.transform.transform_action_spec(base.action_spec.clone())
        self.reward_spec = self.transform.transform_reward_spec(base.reward_spec.clone())
        self.done_spec = self.transform.transform_done_spec(base.done_spec.clone())

    @property
    def is_closed(self) -> bool:
        return self.base_env.is_closed

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        nxt = self.base_env._step(self.transform.inv(tensordict))
        return self.transform._step(tensordict, nxt)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        out = self.base_env._reset(tensordict)
        return self.transform._reset(tensordict, out)

    def _set_seed(self, seed: int) -> int | None:
        return self.base_env.set_seed(seed)

    def _close(self) -> None:
        self.base_env.close()

    def __getattr__(self, name: str) -> Any:
        # Reached only for attributes TransformedEnv lacks: look them up on the base env
        # (e.g. ``env.gym_env``), as users of a wrapped env expect.
        if name.startswith("__") or name in ("base_env", "transform"):
            raise AttributeError(name)
        return getattr(self.base_env, name)

    def __repr__(self) -> str:
        return f"TransformedEnv(env={self.base_env!r}, transform={self.transform!r})"


# --- the transforms -----------------------------------------------------------------------


class StepCounter(Transform):
    """Count steps since the last reset in ``step_count``; truncate at ``max_steps``.

    At the step where the count reaches ``max_steps``, ``("next","truncated")`` and
    ``("next","done")`` become True, so rollouts and collectors end the episode there.
    """

    def __init__(
        self,
        max_steps: int | None = None,
        step_count_key: str = "step_count",
        truncated_key: str = "truncated",
        done_key: str = "done",
    ) -> None:
        super().__init__()
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"StepCounter(max_steps=...) must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self.step_count_key = step_count_key
        self.truncated_key = truncated_key
        self.done_key = done_key

    def transform_observation_spec(self, spec: Composite) -> Composite:
        spec[self.step_count_key] = Unbounded(
            (*spec.shape, 1), device=spec.device, dtype=torch.int64
        )
        return spec

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        batch = tensordict_reset.batch_size
        zeros = torch.zeros((*batch, 1), dtype=torch.int64, device=tensordict_reset.device)
        tensordict_reset.set(
            self.step_count_key, _restart(tensordict, self.step_count_key, zeros, batch)
        )
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        prev = tensordict.get(self.step_count_key, None)
        if prev is None:
            prev = torch.zeros(
                (*tensordict.batch_size, 1), dtype=torch.int64, device=tensordict.device
            )
        count = prev + 1
        next_tensordict.set(self.step_count_key, count)
        if self.max_steps is not None:
            hit = count >= self.max_steps
            next_tensordict.set(self.truncated_key, next_tensordict.get(self.truncated_key) | hit)
            next_tensordict.set(self.done_key, next_tensordict.get(self.done_key) | hit)
        return next_tensordict

    def __repr__(self) -> str:
        return f"StepCounter(max_steps={self.max_steps})"


class RewardSum(Transform):
    """Running sum of the reward over the episode, in ``episode_reward`` (root and ``"next"``)."""

    def __init__(
        self, in_keys: Sequence[str] = ("reward",), out_keys: Sequence[str] = ("episode_reward",)
    ) -> None:
        super().__init__()
        if len(in_keys) != len(out_keys):
            raise ConfigError(
                f"RewardSum needs as many out_keys as in_keys, got {list(in_keys)} -> {list(out_keys)}"
            )
        self.in_keys = list(in_keys)
        self.out_keys = list(out_keys)

    def transform_observation_spec(self, spec: Composite) -> Composite:
        for out in self.out_keys:
            spec[out] = Unbounded((*spec.shape, 1), device=spec.device, dtype=torch.float32)
        return spec

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        batch = tensordict_reset.batch_size
        zeros = torch.zeros((*batch, 1), dtype=torch.float32, device=tensordict_reset.device)
        for out in self.out_keys:
            tensordict_reset.set(out, _restart(tensordict, out, zeros, batch))
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        for key, out in zip(self.in_keys, self.out_keys):
            reward = next_tensordict.get(key)
            prev = tensordict.get(out, None)
            next_tensordict.set(out, reward if prev is None else prev + reward)
        return next_tensordict


class InitTracker(Transform):
    """``is_init``: True on the first root of each episode (after a reset), False after steps."""

    def __init__(self, init_key: str = "is_init") -> None:
        super().__init__()
        self.init_key = init_key

    def transform_observation_spec(self, spec: Composite) -> Composite:
        spec[self.init_key] = Categorical(2, (*spec.shape, 1), device=spec.device, dtype=torch.bool)
        return spec

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        batch = tensordict_reset.batch_size
        mask = reset_rows(tensordict, batch)
        if mask is None:
            mask = torch.ones((*batch, 1), dtype=torch.bool, device=tensordict_reset.device)
        tensordict_reset.set(self.init_key, mask.clone())
        return tensordict_reset

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        batch = next_tensordict.batch_size
        next_tensordict.set(
            self.init_key, torch.zeros((*batch, 1), dtype=torch.bool, device=next_tensordict.device)
        )
        return next_tensordict


class DoubleToFloat(Transform):
    """Expose float64 observations, rewards and actions as float32.

    Args:
        in_keys: observation keys to cast (default: every float64 observation leaf).
            The reward is cast when it is float64; a float64 action spec becomes float32
            and actions are cast back to float64 before the base env reads them.
    """

    def __init__(self, in_keys: Sequence[str] | None = None) -> None:
        super().__init__()
        self._given = None if in_keys is None else list(in_keys)
        self.in_keys: list[Any] = list(in_keys or [])
        self._cast_action = False
        self._action_key = "action"

    def transform_observation_spec(self, spec: Composite) -> Composite:
        keys: list[Any] | None = self._given
        if keys is None:
            keys = [
                k for k, s in spec.items(True, True) if s is not None and s.dtype == torch.float64
            ]
        self.in_keys = list(keys)
        for key in self.in_keys:
            spec[key] = _with_dtype(spec[key], torch.float32)
        return spec

    def transform_reward_spec(self, spec: TensorSpec) -> TensorSpec:
        self._cast_reward = spec.dtype == torch.float64
        return _with_dtype(spec, torch.float32) if self._cast_reward else spec

    def transform_action_spec(self, spec: TensorSpec) -> TensorSpec:
        self._cast_action = spec.dtype == torch.float64
        return _with_dtype(spec, torch.float32) if self._cast_action else spec

    def _cast(self, td: TensorDictBase, keys: Sequence[Any]) -> TensorDictBase:
        for key in keys:
            value = td.get(key, None)
            if value is not None and value.dtype == torch.float64:
                td.set(key, value.to(torch.float32))
        return td

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not self._cast_action:
            return tensordict
        action = tensordict.get(self._action_key)
        out = make_td(dict(tensordict.items()), tensordict.batch_size, tensordict.device)
        out.set(self._action_key, action.to(torch.float64))
        return out

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        keys = [*self.in_keys, "reward"] if getattr(self, "_cast_reward", False) else self.in_keys
        return self._cast(next_tensordict, keys)

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        return self._cast(tensordict_reset, self.in_keys)

    def __repr__(self) -> str:
        return f"DoubleToFloat(in_keys={self.in_keys})"


class ObservationNorm(Transform):
    """Affine normalisation of observations: ``(obs - loc) / scale`` (``standard_normal``).

    ``loc``/``scale`` are fixed at construction, or estimated from the env with
    :meth:`init_stats`. Until then the transform passes observations through.

    Args:
        loc, scale: tensors (or floats) broadcastable to the observation.
        in_keys: observation keys to normalise.
        standard_normal: True gives ``(obs - loc) / scale``; False gives ``obs * scale + loc``.
        eps: lower bound for ``scale`` estimated by ``init_stats``.
    """

    def __init__(
        self,
        loc: float | torch.Tensor | None = None,
        scale: float | torch.Tensor | None = None,
        in_keys: Sequence[str] = ("observation",),
        standard_normal: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if (loc is None) != (scale is None):
            raise ConfigError(
                "ObservationNorm needs both loc and scale, or neither (then init_stats)"
            )
        self.in_keys = list(in_keys)
        self.standard_normal = standard_normal
        self.eps = eps
        self.loc = None if loc is None else torch.as_tensor(loc, dtype=torch.float32)
        self.scale = None if scale is None else torch.as_tensor(scale, dtype=torch.float32)

    @property
    def initialized(self) -> bool:
        return self.loc is not None

    def init_stats(self, num_iter: int, key: str | None = None) -> None:
        """Estimate ``loc`` and ``scale`` from ``num_iter`` random steps of the parent env.

        Raises:
            ConfigError: the transform is not attached to an env, or is already initialised.
        """
        if self.parent is None:
            raise ConfigError(
                "ObservationNorm.init_stats needs the transform inside a TransformedEnv"
            )
        if self.initialized:
            raise ConfigError("ObservationNorm.init_stats: loc and scale are already set")
        key = key or self.in_keys[0]
        rows = self.parent.rollout(num_iter, break_when_any_done=False)
        obs = rows.get(key).to(torch.float32)
        obs = obs.reshape(-1, *obs.shape[rows.batch_dims :])
        self.loc = obs.mean(0)
        self.scale = obs.std(0).clamp_min(self.eps)
        self._changed()

    def transform_observation_spec(self, spec: Composite) -> Composite:
        for key in self.in_keys:
            old = spec[key]
            spec[key] = Unbounded(old.shape, device=old.device, dtype=old.dtype)
        return spec

    def _apply(self, td: TensorDictBase) -> TensorDictBase:
        if self.loc is None or self.scale is None:
            return td
        for key in self.in_keys:
            value = td.get(key, None)
            if value is None:
                continue
            loc, scale = self.loc.to(value.device), self.scale.to(value.device)
            if self.standard_normal:
                td.set(key, ((value - loc) / scale).to(value.dtype))
            else:
                td.set(key, (value * scale + loc).to(value.dtype))
        return td

    def _step(self, tensordict: TensorDictBase, next_tensordict: TensorDictBase) -> TensorDictBase:
        return self._apply(next_tensordict)

    def _reset(
        self, tensordict: TensorDictBase | None, tensordict_reset: TensorDictBase
    ) -> TensorDictBase:
        out = self._apply(tensordict_reset)
        # rows not being reset keep the (already normalised) values the caller holds
        batch = out.batch_size
        for key in self.in_keys:
            value = out.get(key, None)
            if value is not None:
                out.set(key, _restart(tensordict, key, value, batch))
        return out

    def __repr__(self) -> str:
        return f"ObservationNorm(in_keys={self.in_keys}, initialized={self.initialized})"
