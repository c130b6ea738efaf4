"""Tensor specs: what an environment reads and writes, and how a store records it.

A spec knows the shape, dtype and device of a tensor and the set of values it may
hold. Specs are what stores write into their manifest (as JSON, via :meth:`to_json`
and :func:`spec_from_json`, never pickle) and what policies and losses read to
size their networks. Batched environments expand their specs with the batch dims
in front, as TorchRL does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rldata import _untrusted as untrusted
from rldata.errors import SpecError

NestedKey = str | tuple[str, ...]
ShapeLike = int | Sequence[int] | torch.Size
DeviceLike = str | int | torch.device | None

__all__ = [
    "TensorSpec",
    "Unbounded",
    "Bounded",
    "Categorical",
    "OneHot",
    "Binary",
    "MultiCategorical",
    "MultiOneHot",
    "Composite",
    "spec_from_json",
    "from_gym_space",
]


def _size(shape: ShapeLike) -> torch.Size:
    if isinstance(shape, int):
        return torch.Size([shape])
    return torch.Size(shape)


def _batch_size(batch: tuple[int | torch.Size, ...]) -> torch.Size:
    if len(batch) == 1 and not isinstance(batch[0], int):
        return _size(batch[0])
    return torch.Size([int(b) for b in batch])  # type: ignore[arg-type]


def _device(device: DeviceLike) -> torch.device | None:
    return None if device is None else torch.device(device)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise SpecError(f"unknown dtype {name!r} in spec JSON")
    return dtype


def _num_to_json(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _num_from_json(x: float | str) -> float:
    return float(x)


def _tensor_to_json(t: torch.Tensor) -> Any:
    """Bounds as a scalar when uniform, else a nested list; non-finite values as strings."""
    flat = t.detach().cpu().reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        return {"fill": _num_to_json(flat[0].item())}
    values = [_num_to_json(v) for v in flat.tolist()]
    return {"values": values}


def _tensor_from_json(data: Any, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    if "fill" in data:
        return torch.full(shape, _num_from_json(data["fill"]), dtype=dtype)
    values = [_num_from_json(v) for v in data["values"]]
    return torch.tensor(values, dtype=dtype).reshape(shape)


class TensorSpec:
    """Base of the leaf specs: a shape, a dtype, a device and a set of allowed values."""

    def __init__(self, shape: ShapeLike, device: DeviceLike, dtype: torch.dtype) -> None:
        self.shape = _size(shape)
        self.device = _device(device)
        self.dtype = dtype

    # -- values -------------------------------------------------------------------
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """A random value of shape ``(*shape, *self.shape)`` inside the spec."""
        raise NotImplementedError

    def zero(self, shape: ShapeLike = ()) -> torch.Tensor:
        """An all-zero value of shape ``(*shape, *self.shape)``."""
        return torch.zeros((*_size(shape), *self.shape), dtype=self.dtype, device=self.device)

    def is_in(self, value: torch.Tensor) -> bool:
        """True when ``value`` has this spec's trailing shape and dtype, and lies in its domain."""
        if not isinstance(value, torch.Tensor) or value.dtype != self.dtype:
            return False
        if tuple(value.shape[value.dim() - len(self.shape) :]) != tuple(self.shape):
            return False
        return self._values_in(value)

    def _values_in(self, value: torch.Tensor) -> bool:
        return True

    def assert_is_in(self, value: torch.Tensor, key: str = "value") -> None:
        """Raise :class:`SpecError` naming ``key`` when ``value`` is outside the spec."""
        if not isinstance(value, torch.Tensor):
            raise SpecError(f"{key}: expected a tensor, got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise SpecError(f"{key}: expected dtype {self.dtype}, got {value.dtype}")
        if tuple(value.shape[value.dim() - len(self.shape) :]) != tuple(self.shape):
            raise SpecError(
                f"{key}: expected trailing shape {tuple(self.shape)}, got {tuple(value.shape)}"
            )
        if not self._values_in(value):
            raise SpecError(f"{key}: values outside {self!r}")

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """The closest value inside the spec (clamped, rounded or re-encoded)."""
        return value.to(self.dtype)

    # -- structure ------------------------------------------------------------------
    def to(self, device: DeviceLike) -> TensorSpec:
        out = self.clone()
        out.device = _device(device)
        out._move_tensors(out.device)
        return out

    def _move_tensors(self, device: torch.device | None) -> None:
        pass

    def clone(self) -> TensorSpec:
        out = spec_from_json(self.to_json(), device=self.device)
        assert isinstance(out, TensorSpec)  # a leaf's JSON always rebuilds a leaf
        return out

    def expand(self, *batch: int | torch.Size) -> TensorSpec:
        """This spec with batch dims in front, e.g. for ``n`` environments."""
        batch_t = _batch_size(batch)
        out = self.clone()
        out._expand(batch_t)
        return out

    def _expand(self, batch: torch.Size) -> None:
        self.shape = torch.Size((*batch, *self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    # -- serialisation --------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict that :func:`spec_from_json` turns back into an equal spec."""
        return {
            "type": type(self).__name__,
            "shape": list(self.shape),
            "dtype": _dtype_name(self.dtype),
        }

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.to_json() == other.to_json()  # type: ignore[attr-defined]
            and self.device == other.device  # type: ignore[attr-defined]
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={tuple(self.shape)}, dtype={self.dtype}, device={self.device})"


class Unbounded(TensorSpec):
    """Any real (or integer) value: random draws are standard normal (or small integers)."""

    def __init__(
        self, shape: ShapeLike = (), device: DeviceLike = None, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__(shape, device, dtype)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape)
        if self.dtype.is_floating_point:
            return torch.randn(full, dtype=self.dtype, device=self.device)
        if self.dtype == torch.bool:
            return torch.randint(0, 2, full, device=self.device).bool()
        return torch.randint(-100, 100, full, dtype=self.dtype, device=self.device)


class Bounded(TensorSpec):
    """Values between ``low`` and ``high`` (inclusive), element-wise."""

    def __init__(
        self,
        low: float | torch.Tensor | np.ndarray,
        high: float | torch.Tensor | np.ndarray,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        low_t = torch.as_tensor(np.asarray(low) if isinstance(low, np.ndarray) else low)
        high_t = torch.as_tensor(np.asarray(high) if isinstance(high, np.ndarray) else high)
        if shape is None:
            shape = torch.broadcast_shapes(low_t.shape, high_t.shape)
        super().__init__(shape, device, dtype)
        self.low = low_t.to(dtype=dtype, device=self.device).expand(self.shape).clone()
        self.high = high_t.to(dtype=dtype, device=self.device).expand(self.shape).clone()
        if bool((self.low > self.high).any()):
            raise SpecError(f"Bounded spec needs low <= high, got low={low!r}, high={high!r}")

    @property
    def space(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.low, self.high

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape)
        if self.dtype.is_floating_point:
            low = self.low.clamp(min=-1e6)
            high = self.high.clamp(max=1e6)
            u = torch.rand(full, dtype=self.dtype, device=self.device)
            return low + u * (high - low)
        low_i = self.low.to(torch.float64)
        high_i = self.high.to(torch.float64) + 1
        u = torch.rand(full, dtype=torch.float64, device=self.device)
        return (low_i + u * (high_i - low_i)).floor().clamp(low_i, high_i - 1).to(self.dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        low = self.low.to(value.device)
        high = self.high.to(value.device)
        return bool(((value >= low) & (value <= high)).all())

    def project(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype).clamp(self.low.to(value.device), self.high.to(value.device))

    def _move_tensors(self, device: torch.device | None) -> None:
        self.low = self.low.to(device)
        self.high = self.high.to(device)

    def _expand(self, batch: torch.Size) -> None:
        super()._expand(batch)
        self.low = self.low.expand(self.shape).clone()
        self.high = self.high.expand(self.shape).clone()

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "low": _tensor_to_json(self.low),
            "high": _tensor_to_json(self.high),
        }

    def __repr__(self) -> str:
        lo, hi = self.low.reshape(-1), self.high.reshape(-1)
        return (
            f"Bounded(shape={tuple(self.shape)}, low={lo[:4].tolist()}, high={hi[:4].tolist()}, "
            f"dtype={self.dtype}, device={self.device})"
        )


class Categorical(TensorSpec):
    """An integer index in ``[0, n)``; the shape holds no trailing category dim."""

    def __init__(
        self,
        n: int,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
    ) -> None:
        if n < 1:
            raise SpecError(f"Categorical needs n >= 1, got n={n}")
        super().__init__(shape, device, dtype)
        self.n = int(n)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape)
        return torch.randint(0, self.n, full, dtype=self.dtype, device=self.device)

    def _values_in(self, value: torch.Tensor) -> bool:
        return bool(((value >= 0) & (value < self.n)).all())

    def project(self, value: torch.Tensor) -> torch.Tensor:
        return value.round().clamp(0, self.n - 1).to(self.dtype)

    def to_one_hot(self, value: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(value.long(), self.n).to(torch.int64)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "n": self.n}


class OneHot(TensorSpec):
    """A one-hot vector over ``n`` categories (the last dim), int64 by default."""

    def __init__(
        self,
        n: int,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
    ) -> None:
        if n < 1:
            raise SpecError(f"OneHot needs n >= 1, got n={n}")
        shape = torch.Size([n]) if shape is None else _size(shape)
        if shape[-1] != n:
            raise SpecError(f"OneHot shape must end with n={n}, got {tuple(shape)}")
        super().__init__(shape, device, dtype)
        self.n = int(n)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape[:-1])
        idx = torch.randint(0, self.n, full, device=self.device)
        return torch.nn.functional.one_hot(idx, self.n).to(self.dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        v = value.to(torch.int64)
        return bool((((v == 0) | (v == 1)).all()) and (v.sum(-1) == 1).all())

    def project(self, value: torch.Tensor) -> torch.Tensor:
        return self.to_one_hot(value.argmax(-1))

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        """Index of the hot entry: ``[..., n] -> [...]``."""
        return value.argmax(-1)

    def to_one_hot(self, index: torch.Tensor) -> torch.Tensor:
        """Encode indices ``[...]`` as one-hot vectors ``[..., n]``."""
        return torch.nn.functional.one_hot(index.long(), self.n).to(self.dtype)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "n": self.n}


class Binary(TensorSpec):
    """``n`` independent 0/1 entries (gymnasium's MultiBinary)."""

    def __init__(
        self,
        n: int | None = None,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int8,
    ) -> None:
        if shape is None:
            if n is None:
                raise SpecError("Binary needs n or shape")
            shape = torch.Size([n])
        super().__init__(shape, device, dtype)
        self.n = int(self.shape[-1]) if len(self.shape) else 1

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape)
        return torch.randint(0, 2, full, device=self.device).to(self.dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        v = value.to(torch.int64)
        return bool(((v == 0) | (v == 1)).all())

    def project(self, value: torch.Tensor) -> torch.Tensor:
        return (
            (value > 0.5).to(self.dtype)
            if value.is_floating_point()
            else value.clamp(0, 1).to(self.dtype)
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "n": self.n}


def _category_counts(nvec: Sequence[int] | torch.Tensor | np.ndarray, owner: str) -> list[int]:
    counts = [int(v) for v in np.asarray(nvec).reshape(-1).tolist()]
    if any(v < 1 for v in counts):
        raise SpecError(f"{owner} needs every n >= 1, got nvec={counts}")
    return counts


class MultiCategorical(TensorSpec):
    """Several categorical indices side by side, entry ``i`` in ``[0, nvec[i])``."""

    def __init__(
        self,
        nvec: Sequence[int] | torch.Tensor | np.ndarray,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
    ) -> None:
        self.nvec = _category_counts(nvec, "MultiCategorical")
        super().__init__(torch.Size([len(self.nvec)]) if shape is None else shape, device, dtype)
        self.nvec_shape  # noqa: B018 - a shape that cannot hold nvec is refused here

    @property
    def nvec_shape(self) -> torch.Size:
        """The trailing dims of ``shape`` that ``nvec`` (kept flat, row-major) fills: ``[2, 3]``
        for a gymnasium ``MultiDiscrete`` with ``nvec`` of shape ``(2, 3)``, so each entry is
        compared with its own count and a batched value broadcasts against it."""
        for k in range(1, len(self.shape) + 1):
            if math.prod(self.shape[len(self.shape) - k :]) == len(self.nvec):
                return torch.Size(self.shape[len(self.shape) - k :])
        raise SpecError(
            f"MultiCategorical shape {list(self.shape)} does not end with dims holding its "
            f"{len(self.nvec)} counts (nvec={self.nvec[:8]}{'...' if len(self.nvec) > 8 else ''})"
        )

    def _nvec(self, device: torch.device | None) -> torch.Tensor:
        return torch.tensor(self.nvec, device=device).reshape(self.nvec_shape)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape)
        u = torch.rand(full, device=self.device)
        return (u * self._nvec(self.device)).floor().to(self.dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        return bool(((value >= 0) & (value < self._nvec(value.device))).all())

    def project(self, value: torch.Tensor) -> torch.Tensor:
        upper = self._nvec(value.device) - 1
        return torch.minimum(value.round().clamp(min=0), upper).to(self.dtype)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "nvec": list(self.nvec)}


class MultiOneHot(TensorSpec):
    """Several one-hot vectors concatenated on the last dim (lengths ``nvec``)."""

    def __init__(
        self,
        nvec: Sequence[int] | torch.Tensor | np.ndarray,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
    ) -> None:
        self.nvec = _category_counts(nvec, "MultiOneHot")
        shape = torch.Size([sum(self.nvec)]) if shape is None else _size(shape)
        if shape[-1] != sum(self.nvec):
            raise SpecError(
                f"MultiOneHot shape must end with sum(nvec)={sum(self.nvec)}, got {tuple(shape)}"
            )
        super().__init__(shape, device, dtype)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        full = (*_size(shape), *self.shape[:-1])
        parts = [
            torch.nn.functional.one_hot(torch.randint(0, n, full, device=self.device), n)
            for n in self.nvec
        ]
        return torch.cat(parts, -1).to(self.dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        return all(
            OneHot(n)._values_in(part) for n, part in zip(self.nvec, value.split(self.nvec, -1))
        )

    def project(self, value: torch.Tensor) -> torch.Tensor:
        parts = [
            torch.nn.functional.one_hot(part.argmax(-1), n)
            for n, part in zip(self.nvec, value.split(self.nvec, -1))
        ]
        return torch.cat(parts, -1).to(self.dtype)

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        return torch.stack([part.argmax(-1) for part in value.split(self.nvec, -1)], -1)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "nvec": list(self.nvec)}


def _as_key(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


class Composite:
    """A (nested) mapping from keys to specs, with a batch shape shared by all of them.

    Examples:
        >>> spec = Composite(observation=Unbounded(3), next=Composite(reward=Unbounded(1)))
        >>> spec["next", "reward"].shape
        torch.Size([1])
        >>> sorted(spec.keys(include_nested=True, leaves_only=True))
        ['observation', ('next', 'reward')]
    """

    def __init__(
        self,
        specs: Mapping[str, TensorSpec | Composite | None] | None = None,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        **kwargs: TensorSpec | Composite | None,
    ) -> None:
        self.shape = _size(shape)
        self.device = _device(device)
        self._specs: dict[str, TensorSpec | Composite | None] = {}
        for key, spec in {**(specs or {}), **kwargs}.items():
            self[key] = spec

    dtype = None

    # -- mapping ------------------------------------------------------------------------
    def __getitem__(self, key: NestedKey) -> Any:
        parts = _as_key(key)
        node: Any = self
        for i, part in enumerate(parts):
            if not isinstance(node, Composite) or part not in node._specs:
                raise KeyError(
                    f"spec key {parts[: i + 1]!r} not found; available: {sorted(self._names())}"
                )
            node = node._specs[part]
        return node

    def get(self, key: NestedKey, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: NestedKey, spec: TensorSpec | Composite | None) -> None:
        parts = _as_key(key)
        node = self
        for part in parts[:-1]:
            child = node._specs.get(part)
            if child is None:
                child = Composite(shape=node.shape, device=node.device)
                node._specs[part] = child
            if not isinstance(child, Composite):
                raise SpecError(f"spec key {part!r} holds a leaf; cannot nest {parts!r} under it")
            node = child
        if spec is not None and tuple(spec.shape[: len(node.shape)]) != tuple(node.shape):
            raise SpecError(
                f"spec {parts!r}: shape {tuple(spec.shape)} must start with the batch shape "
                f"{tuple(node.shape)}"
            )
        node._specs[parts[-1]] = spec

    def __delitem__(self, key: NestedKey) -> None:
        parts = _as_key(key)
        parent = self[parts[:-1]] if len(parts) > 1 else self
        del parent._specs[parts[-1]]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, tuple)):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def _names(self) -> list[str]:
        return ["/".join(_as_key(k)) for k in self.keys(True, True)]

    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> list[NestedKey]:
        out: list[NestedKey] = []
        for name, spec in self._specs.items():
            is_node = isinstance(spec, Composite)
            if not (leaves_only and is_node):
                out.append(name)
            if include_nested and isinstance(spec, Composite):
                out.extend((name, *_as_key(sub)) for sub in spec.keys(True, leaves_only))
        return out

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> list[tuple[NestedKey, Any]]:
        return [(k, self[k]) for k in self.keys(include_nested, leaves_only)]

    def values(self, include_nested: bool = False, leaves_only: bool = False) -> list[Any]:
        return [self[k] for k in self.keys(include_nested, leaves_only)]

    # -- values ---------------------------------------------------------------------------
    def _build(self, make: str, shape: ShapeLike) -> TensorDict:
        batch = (*_size(shape), *self.shape)
        td = TensorDict({}, batch_size=batch, device=self.device)
        for name, spec in self._specs.items():
            if spec is not None:
                td.set(name, getattr(spec, make)(shape))
        return td

    def rand(self, shape: ShapeLike = ()) -> TensorDict:
        """A TensorDict of random values, batch size ``(*shape, *self.shape)``."""
        return self._build("rand", shape)

    def zero(self, shape: ShapeLike = ()) -> TensorDict:
        return self._build("zero", shape)

    def is_in(self, td: TensorDictBase) -> bool:
        for key, spec in self.items(True, True):
            if spec is None:
                continue
            value = td.get(key, None)
            if value is None or not spec.is_in(value):
                return False
        return True

    def assert_is_in(self, td: TensorDictBase, key: str = "") -> None:
        for sub, spec in self.items(True, True):
            if spec is None:
                continue
            name = "/".join(_as_key(sub))
            value = td.get(sub, None)
            if value is None:
                raise SpecError(f"key {name!r} is missing")
            spec.assert_is_in(value, key=name)

    def project(self, td: TensorDictBase) -> TensorDictBase:
        out = td.clone(False)
        for key, spec in self.items(True, True):
            if spec is not None and td.get(key, None) is not None:
                out.set(key, spec.project(td.get(key)))
        return out

    # -- structure ------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def to(self, device: DeviceLike) -> Composite:
        out = Composite(shape=self.shape, device=device)
        for name, spec in self._specs.items():
            out._specs[name] = None if spec is None else spec.to(device)
        return out

    def clone(self) -> Composite:
        return spec_from_json(self.to_json(), device=self.device)  # type: ignore[return-value]

    def expand(self, *batch: int | torch.Size) -> Composite:
        batch_t = _batch_size(batch)
        out = Composite(shape=(*batch_t, *self.shape), device=self.device)
        for name, spec in self._specs.items():
            out._specs[name] = None if spec is None else spec.expand(batch_t)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "Composite",
            "shape": list(self.shape),
            "specs": {k: (None if s is None else s.to_json()) for k, s in self._specs.items()},
        }

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Composite)
            and self.to_json() == other.to_json()
            and self.device == other.device
        )

    def __repr__(self) -> str:
        inner = ",\n    ".join(
            f"{k}: {s!r}".replace("\n", "\n    ") for k, s in self._specs.items()
        )
        return f"Composite(\n    {inner},\n    shape={tuple(self.shape)}, device={self.device})"


_LEAVES: dict[str, type[TensorSpec]] = {
    cls.__name__: cls
    for cls in (Unbounded, Bounded, Categorical, OneHot, Binary, MultiCategorical, MultiOneHot)
}


def spec_from_json(data: Mapping[str, Any], device: DeviceLike = None) -> TensorSpec | Composite:
    """Rebuild a spec written by ``to_json``; unknown types are a :class:`SpecError`.

    Spec JSON comes with data: a malformed field, a negative or non-integer dimension, or
    bounds that would need more than the memory budget (``rldata._untrusted.MEMORY_BUDGET``)
    are one-line :class:`SpecError` refusals, checked before anything is allocated.
    """
    try:
        return _spec_from_json(data, device)
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as exc:
        kind = data.get("type") if isinstance(data, Mapping) else type(data).__name__
        raise SpecError(
            f"malformed spec JSON (type {untrusted.escape(repr(kind))[:80]}): "
            f"{type(exc).__name__}: {untrusted.escape(exc)[:200]}"
        ) from None


def _json_shape(data: Mapping[str, Any]) -> torch.Size:
    raw = data.get("shape", [])
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**62 for d in raw
    ):
        raise SpecError(f"spec JSON shape must be a list of non-negative integers, got {raw!r:.80}")
    return torch.Size(raw)


def _check_bounds_budget(kind: str, shape: torch.Size, dtype: torch.dtype) -> None:
    """Bounded specs hold ``low`` and ``high`` tensors of their full shape (plus copies)."""
    nbytes = 4 * math.prod(shape) * dtype.itemsize
    untrusted.check_budget(
        nbytes, "spec JSON", f"a {kind} spec of shape {list(shape)}", error=SpecError
    )


def _spec_from_json(data: Mapping[str, Any], device: DeviceLike = None) -> TensorSpec | Composite:
    if not isinstance(data, Mapping):
        raise SpecError(f"spec JSON must be an object, got {type(data).__name__}")
    kind = data.get("type")
    shape = _json_shape(data)
    if kind == "Composite":
        out = Composite(shape=shape, device=device)
        for name, sub in data["specs"].items():
            out._specs[name] = None if sub is None else _spec_from_json(sub, device=device)
        return out
    if kind not in _LEAVES:
        raise SpecError(f"unknown spec type {kind!r}; known: {sorted(_LEAVES) + ['Composite']}")
    dtype = _dtype_from_name(data["dtype"])
    if kind == "Unbounded":
        return Unbounded(shape, device=device, dtype=dtype)
    if kind in ("Bounded", "OneHot", "MultiOneHot", "Binary"):
        _check_bounds_budget(kind, shape, dtype)
    if kind == "Bounded":
        low = _tensor_from_json(data["low"], shape, dtype)
        high = _tensor_from_json(data["high"], shape, dtype)
        return Bounded(low, high, shape, device=device, dtype=dtype)
    if kind == "Categorical":
        return Categorical(data["n"], shape, device=device, dtype=dtype)
    if kind == "OneHot":
        return OneHot(data["n"], shape, device=device, dtype=dtype)
    if kind == "Binary":
        return Binary(data["n"], shape, device=device, dtype=dtype)
    if kind == "MultiCategorical":
        return MultiCategorical(data["nvec"], shape, device=device, dtype=dtype)
    return MultiOneHot(data["nvec"], shape, device=device, dtype=dtype)


# --- gymnasium spaces -----------------------------------------------------------------


def _torch_dtype(np_dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros((), dtype=np_dtype)).dtype


def from_gym_space(
    space: Any,
    categorical_action_encoding: bool = False,
    device: DeviceLike = None,
    float64_to_float32: bool = False,
) -> TensorSpec | Composite:
    """Convert a gymnasium space to a spec.

    Args:
        space: a ``gymnasium.spaces`` instance (Box, Discrete, MultiDiscrete,
            MultiBinary, Dict, Tuple).
        categorical_action_encoding: Discrete/MultiDiscrete become ``Categorical`` /
            ``MultiCategorical`` indices instead of one-hot vectors.
        device: device of the spec.
        float64_to_float32: map float64 Box spaces to float32 specs.

    Raises:
        SpecError: the space type has no spec equivalent (the message names it).
    """
    from gymnasium import spaces

    kw: dict[str, Any] = {
        "categorical_action_encoding": categorical_action_encoding,
        "device": device,
        "float64_to_float32": float64_to_float32,
    }
    if isinstance(space, spaces.Box):
        dtype = _torch_dtype(space.dtype)
        if float64_to_float32 and dtype == torch.float64:
            dtype = torch.float32
        low, high = np.asarray(space.low), np.asarray(space.high)
        if np.isinf(low).all() and np.isinf(high).all():
            return Unbounded(space.shape, device=device, dtype=dtype)
        return Bounded(
            torch.as_tensor(low).to(dtype),
            torch.as_tensor(high).to(dtype),
            space.shape,
            device=device,
            dtype=dtype,
        )
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        if categorical_action_encoding:
            return Categorical(n, device=device)
        return OneHot(n, device=device)
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        if categorical_action_encoding:  # indices keep the space's shape ([2, 3] stays 2-D)
            return MultiCategorical(nvec.reshape(-1), space.shape, device=device)
        return MultiOneHot(nvec.reshape(-1), device=device)  # one-hot blocks: one flat dim
    if isinstance(space, spaces.MultiBinary):
        return Binary(
            shape=[int(v) for v in np.asarray(space.n).reshape(-1)],
            device=device,
            dtype=_torch_dtype(space.dtype),
        )
    if isinstance(space, (spaces.Dict, spaces.Tuple)) and not space.spaces:
        raise SpecError(
            f"gymnasium {type(space).__name__} space {space!r} is empty: it has no values to "
            "record (give it at least one sub-space)"
        )
    if isinstance(space, spaces.Dict):
        return Composite(
            {k: from_gym_space(v, **kw) for k, v in space.spaces.items()}, device=device
        )
    if isinstance(space, spaces.Tuple):
        return Composite(
            {str(i): from_gym_space(v, **kw) for i, v in enumerate(space.spaces)}, device=device
        )
    raise SpecError(
        f"gymnasium space {type(space).__name__} ({space!r}) has no rldata spec; supported: "
        "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )
