"""Exploration noise as TensorDict modules placed after a deterministic policy.

Each module rewrites the ``action`` entry only while
:func:`rldata.exploration.is_exploring` (RANDOM mode); under MEAN, MODE or
DETERMINISTIC it passes the TensorDict through untouched, so one policy serves
collection and evaluation. ``step(frames)`` anneals the noise scale.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.exploration import is_exploring
from rldata.ted import NestedKey


def _batch_prefix(action: torch.Tensor, spec: Any) -> torch.Size:
    event = len(spec.shape)
    if action.dim() < event or tuple(action.shape[action.dim() - event :]) != tuple(spec.shape):
        raise ConfigError(
            f"exploration: action of shape {tuple(action.shape)} does not end with the "
            f"spec's shape {tuple(spec.shape)}"
        )
    return action.shape[: action.dim() - event]


class _Annealed(TensorDictModuleBase):
    """A value annealed linearly from ``init`` to ``end`` over ``annealing_num_steps`` frames."""

    _value: torch.Tensor  # a buffer, registered in __init__

    def __init__(
        self, spec: Any, init: float, end: float, annealing_num_steps: int, action_key: NestedKey
    ) -> None:
        super().__init__()
        if spec is None:
            raise ConfigError(f"{type(self).__name__} needs the action spec (spec=env.action_spec)")
        if annealing_num_steps <= 0:
            raise ConfigError(
                f"{type(self).__name__}: annealing_num_steps must be > 0, got {annealing_num_steps}"
            )
        self.spec = spec
        self.action_key = action_key
        # tensordict types the key setters as list[str | tuple[str]]; nested keys are longer tuples
        self.in_keys = cast(list[Any], [action_key])
        self.out_keys = cast(list[Any], [action_key])
        self.init, self.end = float(init), float(end)
        self.annealing_num_steps = int(annealing_num_steps)
        self.register_buffer("_value", torch.tensor(float(init)))

    def step(self, frames: int = 1) -> None:
        """Anneal by ``frames`` environment steps (call once per collected batch)."""
        delta = (self.init - self.end) * frames / self.annealing_num_steps
        value = (
            max(self.end, float(self._value) - delta)
            if self.init >= self.end
            else min(self.end, float(self._value) - delta)
        )
        self._value.fill_(value)

    def _project(self, action: torch.Tensor) -> torch.Tensor:
        low, high = getattr(self.spec, "low", None), getattr(self.spec, "high", None)
        if low is None or high is None:
            return action
        return torch.max(torch.min(action, high.to(action.device)), low.to(action.device))


class EGreedyModule(_Annealed):
    """With probability ``eps`` replace the action by a random one drawn from the spec.

    Args:
        spec: the action spec (``OneHot``, ``Categorical``, ``Bounded`` ...).
        eps_init: the initial probability of a random action.
        eps_end: the final probability, reached after ``annealing_num_steps`` frames.
        annealing_num_steps: frames over which ``eps`` decays linearly.
        action_key: the entry to rewrite.
    """

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        *,
        action_key: NestedKey = "action",
    ) -> None:
        if not (0.0 <= eps_end <= 1.0 and 0.0 <= eps_init <= 1.0):
            raise ConfigError(
                f"EGreedyModule: eps_init and eps_end must lie in [0, 1], got {eps_init}, {eps_end}"
            )
        super().__init__(spec, eps_init, eps_end, annealing_num_steps, action_key)

    @property
    def eps(self) -> float:
        """The current probability of a random action."""
        return float(self._value)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not is_exploring():
            return tensordict
        action = tensordict.get(self.action_key)
        prefix = _batch_prefix(action, self.spec)
        random = self.spec.rand(prefix).to(device=action.device, dtype=action.dtype)
        rows = tensordict.batch_size  # one coin per row, also when the spec has env batch dims
        take = torch.rand(rows, device=action.device) < self._value
        take = take.reshape(*rows, *([1] * (action.dim() - len(rows))))
        tensordict.set(self.action_key, torch.where(take, random, action))
        return tensordict


class AdditiveGaussianModule(_Annealed):
    """Add ``sigma * N(mean, std)`` to the action, then clamp it to the spec's bounds.

    Args:
        spec: a bounded action spec (``low``/``high``) or an unbounded one (no clamp).
        sigma_init: initial noise scale.
        sigma_end: final noise scale after ``annealing_num_steps`` frames.
        annealing_num_steps: frames over which sigma decays linearly.
        mean: mean of the noise.
        std: standard deviation of the noise before scaling.
        action_key: the entry to rewrite.
    """

    def __init__(
        self,
        spec: Any,
        sigma_init: float = 1.0,
        sigma_end: float = 0.1,
        annealing_num_steps: int = 1000,
        mean: float = 0.0,
        std: float = 1.0,
        *,
        action_key: NestedKey = "action",
    ) -> None:
        super().__init__(spec, sigma_init, sigma_end, annealing_num_steps, action_key)
        self.mean, self.std = float(mean), float(std)

    @property
    def sigma(self) -> float:
        """The current noise scale."""
        return float(self._value)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not is_exploring():
            return tensordict
        action = tensordict.get(self.action_key)
        noise = torch.randn_like(action) * self.std + self.mean
        tensordict.set(self.action_key, self._project(action + self._value * noise))
        return tensordict


class OrnsteinUhlenbeckModule(_Annealed):
    """Temporally correlated noise (DDPG): ``x += theta (mu - x) dt + sigma sqrt(dt) N(0, 1)``.

    The action becomes ``action + eps * x``, clamped to the spec, with ``eps`` annealed
    from ``eps_init`` to ``eps_end`` by :meth:`step` (TorchRL's argument names). The noise
    state ``x`` travels in the TensorDict (``noise_key``), so it follows each trajectory
    through ``step_mdp`` and starts again from zero after a reset, whose TensorDict does
    not carry it; rows flagged by ``is_init_key`` (when present) restart too.

    Args:
        spec: the action spec (bounds are used to clamp).
        eps_init: initial scale of the added noise; ``eps_end``: final one.
        annealing_num_steps: frames over which eps decays.
        theta: mean-reversion rate.
        mu: long-run mean of the noise.
        sigma: volatility of the process.
        dt: time step.
        action_key: the entry to rewrite.
        noise_key: where the noise state is kept in the TensorDict.
        is_init_key: a boolean entry that marks the first step of a trajectory.
    """

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        theta: float = 0.15,
        mu: float = 0.0,
        sigma: float = 0.2,
        dt: float = 1e-2,
        *,
        action_key: NestedKey = "action",
        noise_key: NestedKey = "_ou_prev_noise",
        is_init_key: NestedKey = "is_init",
    ) -> None:
        super().__init__(spec, eps_init, eps_end, annealing_num_steps, action_key)
        self.theta, self.mu, self.sigma, self.dt = float(theta), float(mu), float(sigma), float(dt)
        self.noise_key, self.is_init_key = noise_key, is_init_key
        self.out_keys = cast(list[Any], [action_key, noise_key])

    @property
    def eps(self) -> float:
        """The current scale of the added noise."""
        return float(self._value)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not is_exploring():
            return tensordict
        action = tensordict.get(self.action_key)
        prev = tensordict.get(self.noise_key, None)
        if prev is None:
            prev = torch.zeros_like(action)
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is not None:
            mask = is_init.reshape(*is_init.shape, *([1] * (action.dim() - is_init.dim())))
            prev = torch.where(mask, torch.zeros_like(prev), prev)
        noise = (
            prev
            + self.theta * (self.mu - prev) * self.dt
            + self.sigma * math.sqrt(self.dt) * torch.randn_like(action)
        )
        tensordict.set(self.noise_key, noise)
        tensordict.set(self.action_key, self._project(action + self._value * noise))
        return tensordict
