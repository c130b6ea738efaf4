"""Converting between gymnasium's numpy values and rldata's tensors, one space at a time.

Each converter is built once per environment from its spaces, so the per-step work
is a numpy cast and ``torch.from_numpy``. Observations: float64 Box values become
float32, Discrete values become int64 (indices; a Discrete counting from a ``start``
other than 0 keeps its values under a ``Bounded`` spec). Actions: one-hot (or
categorical) tensors become the integers gymnasium expects; a Dict or Tuple action is a
TensorDict with one entry per sub-space (a Tuple's by position, ``"0"``, ``"1"``, ...);
values outside the action spec are a :class:`SpecError` naming the action, the given
value and the allowed range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rldata.errors import SpecError
from rldata.specs import Bounded, Composite, MultiOneHot, OneHot, TensorSpec, from_gym_space

ObsDecoder = Callable[[Any], dict[str, Any]]
ActionEncoder = Callable[[torch.Tensor], Any]


def np_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty((), dtype=dtype).numpy().dtype


def observation_spec(space: Any, device: torch.device | None) -> Composite:
    """The observation Composite for a gymnasium observation space (unbatched).

    A Dict or Tuple space gives one entry per sub-space; any other space gives one
    ``"observation"`` entry. Discrete observations are categorical indices.
    """
    spec = _observed_values(
        space,
        from_gym_space(
            space, categorical_action_encoding=True, device=device, float64_to_float32=True
        ),
        device,
    )
    if not isinstance(spec, Composite):
        spec = Composite({"observation": spec}, device=device)
    _refuse_empty_leaves(spec, "observation", space)
    _refuse_ted_names(spec, space)
    return spec


TED_NAMES = ("next", "action", "done", "terminated", "truncated", "reward", "collector")
"""Names a TED row keeps at its root or under ``next``: an observation entry ``k`` is stored
at the root and, for the next step, at ``next.k``, so none of them may name an entry."""


def _refuse_ted_names(spec: Composite, space: Any) -> None:
    """An observation Dict entry named like a TED key (``"next"``, ``"reward"``, ...) would
    overwrite or mix with that key: one line naming it, before anything is recorded."""
    taken = sorted(set(map(str, spec.keys(include_nested=False))) & set(TED_NAMES))
    if taken:
        raise SpecError(
            f"observation space {space!r}: entry {taken[0]!r} is a name TED rows keep for "
            f"themselves ({', '.join(TED_NAMES)}); rename it (a gymnasium wrapper can)"
        )


def _refuse_empty_leaves(spec: Any, what: str, space: Any, key: str = "") -> None:
    """A leaf of no elements (a Box of shape ``(0,)``) holds no value to record or act on:
    one line naming it, before anything is made from the spec."""
    if isinstance(spec, Composite):
        for k in spec.keys(include_nested=False):
            _refuse_empty_leaves(spec[k], what, space, f"{key}.{k}" if key else str(k))
        return
    if spec.shape.numel() == 0:
        raise SpecError(
            f"{what} space {space!r}: {key or what!r} has shape {tuple(spec.shape)}, no "
            "values to record (give every sub-space at least one element)"
        )


def _observed_values(space: Any, spec: Any, device: torch.device | None) -> Any:
    """``spec`` with each Discrete / MultiDiscrete leaf whose ``start`` is not 0 made the
    range of the values gymnasium observes (``start`` .. ``start + n - 1``, int64, as they
    are stored), where an index spec would count from 0."""
    from gymnasium import spaces

    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        for k, sub in items:
            spec[str(k)] = _observed_values(sub, spec[str(k)], device)
        return spec
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        start = np.asarray(space.start, dtype=np.int64)
        if start.any():
            n = np.asarray(space.n if isinstance(space, spaces.Discrete) else space.nvec)
            return Bounded(
                torch.as_tensor(start),
                torch.as_tensor(start + n - 1),
                spec.shape,
                device=device,
                dtype=torch.int64,
            )
    return spec


def observation_decoder(space: Any, spec: Composite) -> ObsDecoder:
    """A function turning a gymnasium observation (batched or not) into ``{key: tensor}``."""
    from gymnasium import spaces

    def leaf(sub_spec: TensorSpec) -> Callable[[Any], torch.Tensor]:
        dtype = np_dtype(sub_spec.dtype)
        return lambda x: torch.from_numpy(np.array(x, dtype=dtype))

    def build(sp: Any, sp_spec: Composite) -> ObsDecoder:
        if isinstance(sp, spaces.Dict):
            parts = {k: _node(sub, sp_spec[k]) for k, sub in sp.spaces.items()}
            return lambda obs: {k: f(obs[k]) for k, f in parts.items()}
        if isinstance(sp, spaces.Tuple):
            parts_t = [(str(i), _node(sub, sp_spec[str(i)])) for i, sub in enumerate(sp.spaces)]
            return lambda obs: {k: f(obs[int(k)]) for k, f in parts_t}
        conv = leaf(sp_spec["observation"])
        return lambda obs: {"observation": conv(obs)}

    def _node(sp: Any, sp_spec: Any) -> Callable[[Any], Any]:
        if isinstance(sp_spec, Composite):
            return build(sp, sp_spec)
        return leaf(sp_spec)

    return build(space, spec)


def action_spec(space: Any, categorical: bool, device: torch.device | None) -> Any:
    """The action spec of a gymnasium action space (unbatched): a leaf spec, or a Composite
    for a Dict / Tuple space (one entry per sub-space, a Tuple's by position)."""
    spec = from_gym_space(
        space, categorical_action_encoding=categorical, device=device, float64_to_float32=True
    )
    _refuse_empty_leaves(spec, "action", space)
    return spec


def _fail(value: np.ndarray, expected: str) -> SpecError:
    return SpecError(
        f"action {np.asarray(value).tolist()} is outside the action spec: expected {expected}"
    )


def action_encoder(
    space: Any, spec: Any, batch: tuple[int, ...], validate: bool = True
) -> ActionEncoder:
    """A function turning an action tensor ``[*batch, *spec.shape]`` into gymnasium's value.

    Shapes and discrete encodings (indices, one-hot vectors) are always checked: a wrong
    one cannot be turned into a gymnasium action. Continuous values outside a Box's bounds
    pass to gymnasium, which clips or refuses them as the env defines (TorchRL's
    behaviour), unless ``validate`` asks for the check (a handful of comparisons).
    """
    from gymnasium import spaces

    if isinstance(space, (spaces.Dict, spaces.Tuple)):  # an action TensorDict, per entry
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        parts = [
            (k, str(k), action_encoder(sub, spec[str(k)], batch, validate)) for k, sub in items
        ]

        def entry(action: Any, name: str) -> Any:
            value = action.get(name, None) if hasattr(action, "get") else None
            if value is None:
                raise SpecError(f"action: expected an entry {name!r} (the action space's)")
            return value

        if isinstance(space, spaces.Dict):
            return lambda action: {k: enc(entry(action, name)) for k, name, enc in parts}
        return lambda action: tuple(enc(entry(action, name)) for _, name, enc in parts)

    shape = (*batch, *spec.shape)
    single = not batch

    def to_numpy(action: torch.Tensor) -> np.ndarray:
        if action.requires_grad:
            action = action.detach()
        if not action.is_cpu:
            action = action.cpu()
        x = action.numpy()
        if x.shape != shape:
            raise SpecError(f"action: expected shape {shape}, got {tuple(x.shape)}")
        return x

    if isinstance(space, spaces.Box):
        low = np.asarray(space.low, dtype=np.float64)
        high = np.asarray(space.high, dtype=np.float64)
        bounded = bool(np.isfinite(low).any() or np.isfinite(high).any())
        out_dtype = space.dtype
        # small actions: compare python floats (a tenth of the cost of numpy reductions)
        pairs = list(
            zip(
                np.tile(low.ravel(), max(1, int(np.prod(batch)))).tolist(),
                np.tile(high.ravel(), max(1, int(np.prod(batch)))).tolist(),
            )
        )
        small = len(pairs) <= 16

        def inside(x: np.ndarray) -> bool:
            if small:
                return all(lo <= v <= hi for v, (lo, hi) in zip(x.ravel().tolist(), pairs))
            return bool((x >= low).all() and (x <= high).all())

        def box(action: torch.Tensor) -> np.ndarray:
            x = to_numpy(action)
            if validate and bounded and not inside(x):
                raise _fail(x, f"values in [{low.tolist()}, {high.tolist()}]")
            return x.astype(out_dtype, copy=False)

        return box

    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        if isinstance(spec, OneHot):

            def one_hot(action: torch.Tensor) -> Any:
                x = to_numpy(action)
                if not (((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all()):
                    raise _fail(x, f"a one-hot vector of length {n}")
                idx = x.argmax(-1)
                return int(idx) + start if single else idx.astype(np.int64) + start

            return one_hot

        def categorical(action: torch.Tensor) -> Any:
            x = to_numpy(action)
            if not ((x >= 0).all() and (x < n).all()):
                raise _fail(x, f"an index in [0, {n})")
            return int(x) + start if single else x.astype(np.int64) + start

        return categorical

    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec).reshape(-1)
        mstart = np.asarray(space.start).reshape(-1)
        out_shape = (*batch, *space.shape)
        if isinstance(spec, MultiOneHot):
            bounds = np.cumsum(nvec)[:-1]

            def multi_one_hot(action: torch.Tensor) -> np.ndarray:
                x = to_numpy(action)
                parts = np.split(x, bounds, axis=-1)
                if not all(((p == 0) | (p == 1)).all() and (p.sum(-1) == 1).all() for p in parts):
                    raise _fail(x, f"one-hot blocks of lengths {nvec.tolist()}")
                idx = np.stack([p.argmax(-1) for p in parts], -1)
                return (idx + mstart).reshape(out_shape).astype(space.dtype)

            return multi_one_hot

        grid = np.asarray(space.nvec)  # indices keep the space's shape (a 2-D nvec stays 2-D)
        grid_start = np.asarray(space.start)

        def multi_categorical(action: torch.Tensor) -> np.ndarray:
            x = to_numpy(action)
            if not ((x >= 0).all() and (x < grid).all()):
                raise _fail(x, f"indices below nvec={grid.tolist()}")
            return (x + grid_start).reshape(out_shape).astype(space.dtype)

        return multi_categorical

    if isinstance(space, spaces.MultiBinary):
        out_shape_b = (*batch, *space.shape)

        def binary(action: torch.Tensor) -> np.ndarray:
            x = to_numpy(action)
            if not ((x == 0) | (x == 1)).all():
                raise _fail(x, "0/1 values")
            return x.reshape(out_shape_b).astype(space.dtype)

        return binary

    raise SpecError(f"action space {type(space).__name__} is not supported by GymEnv")
