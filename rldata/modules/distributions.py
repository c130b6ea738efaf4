"""``TanhNormal``: a Gaussian squashed by ``tanh`` into ``[low, high]``.

SAC-style actors sample from it. Its log-probability is computed from the
pre-squash value with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``,
which stays finite where ``tanh`` saturates; :func:`tanh_normal_rsample` returns a
sample and its log-probability together so losses never invert ``tanh``.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D
from torch.nn import functional as F

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


def _as_bound(x: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _log_prob_pre_tanh(
    u: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, log_half_range: torch.Tensor
) -> torch.Tensor:
    """Log-density of ``mid + half * tanh(u)`` summed over the last (action) dim."""
    z = (u - loc) / scale
    normal = -0.5 * z.pow(2) - scale.log() - _HALF_LOG_2PI
    log_det = 2.0 * (_LOG2 - u - F.softplus(-2.0 * u)) + log_half_range
    return (normal - log_det).sum(-1)


def tanh_normal_rsample(
    loc: torch.Tensor,
    scale: torch.Tensor,
    low: float | torch.Tensor = -1.0,
    high: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A reparameterised sample of ``TanhNormal(loc, scale, low, high)`` and its log-prob.

    Returns:
        ``(action [*batch, d], log_prob [*batch])``.
    """
    low_t, high_t = _as_bound(low, loc), _as_bound(high, loc)
    half = (high_t - low_t) / 2
    u = loc + scale * torch.randn_like(loc)
    action = torch.tanh(u) * half + (high_t + low_t) / 2
    return action, _log_prob_pre_tanh(u, loc, scale, half.log().expand_as(loc))


class TanhNormal(D.Distribution):
    """Normal(loc, scale) squashed by tanh and rescaled to ``[low, high]``.

    The last dim is the event (action) dim: ``log_prob`` sums over it.
    ``deterministic_sample``, ``mode`` and ``mean`` are the squashed ``loc`` (the mean
    of a squashed Gaussian has no closed form; the squashed location is what
    deterministic evaluation uses).

    Args:
        loc: location of the Gaussian before squashing, ``[*batch, d]``.
        scale: its standard deviation (positive), same shape.
        low: lower bound of the action (scalar or ``[d]``).
        high: upper bound of the action.
    """

    arg_constraints = {"loc": D.constraints.real, "scale": D.constraints.positive}
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        scale: torch.Tensor,
        low: float | torch.Tensor = -1.0,
        high: float | torch.Tensor = 1.0,
        validate_args: bool = False,
    ) -> None:
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.low = _as_bound(low, self.loc)
        self.high = _as_bound(high, self.loc)
        self._half = (self.high - self.low) / 2
        self._mid = (self.high + self.low) / 2
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        super().__init__(self.loc.shape[:-1], self.loc.shape[-1:], validate_args=validate_args)

    @property
    def support(self) -> D.constraints.Constraint:
        return D.constraints.interval(self.low, self.high)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return torch.tanh(u) * self._half + self._mid

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        u = self.loc.expand(shape) + self.scale.expand(shape) * torch.randn(
            shape, dtype=self.loc.dtype, device=self.loc.device
        )
        value = self._squash(u)
        self._cache = (value, u)
        return value

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._cache is not None and self._cache[0] is value:
            u = self._cache[1]
        else:
            eps = torch.finfo(value.dtype).eps
            y = ((value - self._mid) / self._half).clamp(-1 + eps, 1 - eps)
            u = torch.atanh(y)
        return _log_prob_pre_tanh(u, self.loc, self.scale, self._half.log().expand_as(self.loc))

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self._squash(self.loc)

    @property
    def mode(self) -> torch.Tensor:
        return self._squash(self.loc)

    @property
    def mean(self) -> torch.Tensor:
        return self._squash(self.loc)
