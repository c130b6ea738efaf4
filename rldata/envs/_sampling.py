"""Random draws from action specs with an environment's own generator.

``env.set_seed(seed)`` must make a random-policy rollout reproducible without
touching torch's global generator, so random actions come from a generator the
environment owns. The draw for each spec class is prepared once (bounds and
ranges precomputed) to keep the per-step cost to one or two torch calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict

from rldata.specs import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    Unbounded,
)

Sampler = Callable[[], torch.Tensor]


class ActionStream:
    """Random values of one spec, in a fixed order that only depends on the generator's seed.

    Calling the stream gives the next value (full spec shape). Values are drawn ``block``
    at a time (one torch call instead of ``block``); ``take``/``put_back`` let a fast loop
    consume several at once and return the ones it did not use, keeping the order.
    """

    def __init__(self, spec: TensorSpec, generator: torch.Generator, block: int = 128) -> None:
        self._draw = _block_sampler(spec, generator, block)
        self._buf = self._draw()[:0]
        self._pos = 0

    def _ensure(self, n: int) -> None:
        while self._buf.shape[0] - self._pos < n:
            self._buf = torch.cat([self._buf[self._pos :], self._draw()])
            self._pos = 0

    def __call__(self) -> torch.Tensor:
        if self._pos >= self._buf.shape[0]:
            self._ensure(1)
        value = self._buf[self._pos]
        self._pos += 1
        return value

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` values stacked on a leading dim, in stream order."""
        self._ensure(n)
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def put_back(self, n: int) -> None:
        """Return the last ``n`` values of the latest ``take`` so they come out next."""
        self._pos -= n


class CompositeStream:
    """Random values of a Composite spec (a Dict or Tuple action): one TensorDict a call, each
    entry from its own :class:`ActionStream` of the same generator, in key order."""

    def __init__(self, spec: Composite, generator: torch.Generator, block: int = 128) -> None:
        self.shape = spec.shape
        self._parts = {k: make_sampler(sub, generator, block) for k, sub in spec.items()}

    def __call__(self) -> TensorDict:
        return TensorDict({k: draw() for k, draw in self._parts.items()}, batch_size=self.shape)


def make_sampler(spec: TensorSpec | Composite, generator: torch.Generator, block: int = 128) -> Any:
    """The action stream of ``spec`` drawn from ``generator`` (see :class:`ActionStream`;
    a Composite gives a :class:`CompositeStream`)."""
    if isinstance(spec, Composite):
        return CompositeStream(spec, generator, block)
    return ActionStream(spec, generator, block)


def _block_sampler(spec: TensorSpec, generator: torch.Generator, block: int) -> Sampler:
    """A function drawing ``block`` values of ``spec`` at once: shape ``[block, *spec.shape]``."""
    dtype, device = spec.dtype, spec.device
    shape = torch.Size((block, *spec.shape))
    move = device is not None and device.type != "cpu"

    def _out(x: torch.Tensor) -> torch.Tensor:
        return x.to(device) if move else x

    if isinstance(spec, Bounded) and dtype.is_floating_point:
        # float16 / bfloat16 cannot hold the +-1e6 clamp: drawn in float32, then cast
        wide = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        low = spec.low.cpu().to(wide).clamp(min=-1e6)
        span = spec.high.cpu().to(wide).clamp(max=1e6) - low
        return lambda: _out(
            torch.rand(shape, generator=generator, dtype=wide).mul_(span).add_(low).to(dtype)
        )
    if isinstance(spec, Unbounded) and dtype.is_floating_point:
        return lambda: _out(torch.randn(shape, generator=generator, dtype=dtype))
    if isinstance(spec, OneHot):
        n = spec.n
        return lambda: _out(
            torch.nn.functional.one_hot(torch.randint(0, n, shape[:-1], generator=generator), n).to(
                dtype
            )
        )
    if isinstance(spec, Categorical):
        n = spec.n
        return lambda: _out(torch.randint(0, n, shape, generator=generator, dtype=dtype))
    if isinstance(spec, Binary):
        return lambda: _out(torch.randint(0, 2, shape, generator=generator).to(dtype))
    if isinstance(spec, MultiCategorical):
        nvec = torch.as_tensor(spec.nvec, dtype=torch.float64).reshape(spec.nvec_shape)
        return lambda: _out(
            (torch.rand(shape, generator=generator, dtype=torch.float64) * nvec).floor().to(dtype)
        )
    if isinstance(spec, MultiOneHot):
        sizes = [int(n) for n in torch.as_tensor(spec.nvec).reshape(-1).tolist()]
        batch = shape[:-1]

        def _multi_one_hot() -> torch.Tensor:
            parts = [
                torch.nn.functional.one_hot(torch.randint(0, n, batch, generator=generator), n)
                for n in sizes
            ]
            return _out(torch.cat(parts, -1).to(dtype))

        return _multi_one_hot
    if isinstance(spec, Bounded):
        low = spec.low.cpu().to(torch.float64)
        span = spec.high.cpu().to(torch.float64) + 1 - low
        return lambda: _out(
            (torch.rand(shape, generator=generator, dtype=torch.float64) * span + low)
            .floor()
            .to(dtype)
        )
    return lambda: spec.rand((block,))  # pragma: no cover - every leaf class is handled above
