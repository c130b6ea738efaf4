"""Gymnasium spaces of Minari datasets and rldata keys: one mapping, both directions.

A gymnasium space is a tree whose leaves are TED keys. A Dict's entries are named by
their keys, a Tuple's by their positions (``"0"``, ``"1"``, ...; Minari's HDF5 groups call
them ``_index_<i>``). The observation's leaves sit at the root of a row (a single leaf is
``"observation"``), the action's under ``"action"`` (a single leaf is ``"action"``).

- Import: :func:`data_spec` is the spec of a leaf's values as gymnasium (and so Minari)
  holds them, bit for bit: a Discrete is an int64 index (``Categorical``), a MultiDiscrete
  its indices in its dtype, a MultiBinary int8 0/1 entries, a Box keeps its dtype.
- Export: :func:`native_spaces` gives a store's observation and action as native
  gymnasium spaces (``Discrete(n)`` with integers, also from one-hot rows; MultiDiscrete,
  MultiBinary, Box of any dtype, Dict and Tuple), with each key's HDF5 path and the
  encoder that turns its rows into the space's values.

Spaces are read from their JSON (as Minari serializes them); no environment is built.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError, CorruptStoreError
from rldata.specs import (
    Binary,
    Bounded,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    TensorSpec,
    from_gym_space,
)
from rldata.stores.backend import _columns as col
from rldata.stores.format import schema as sch
from rldata.stores.interop import described

Leaf = tuple[tuple[str, ...], tuple[str, ...], Any]
"""A space's leaf: its TED key parts, its HDF5 path inside the group, its space."""
Encoder = Callable[[np.ndarray], np.ndarray]
SPACES = ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple")
ROLES = ("observation", "action")


# --- the leaves of a space ------------------------------------------------------------------
def space_leaves(space: Any, key: tuple[str, ...], path: tuple[str, ...] = ()) -> list[Leaf]:
    """The leaves of ``space`` under TED key ``key`` (Dict and Tuple nest, others are leaves)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return [
            leaf
            for k, sub in space.spaces.items()
            for leaf in space_leaves(sub, (*key, str(k)), (*path, str(k)))
        ]
    if isinstance(space, spaces.Tuple):
        return [
            leaf
            for i, sub in enumerate(space.spaces)
            for leaf in space_leaves(sub, (*key, str(i)), (*path, f"_index_{i}"))
        ]
    return [(key, path, space)]


def role_leaves(space: Any, role: str) -> list[Leaf]:
    """The leaves of the observation space (at the root of a row; one leaf is
    ``"observation"``) or of the action space (under ``"action"``)."""
    from gymnasium import spaces

    if role == "action":
        return space_leaves(space, ("action",))
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return space_leaves(space, ())
    return [(("observation",), (), space)]


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


def data_spec(space: Any) -> TensorSpec:
    """The spec of a leaf space's values as gymnasium holds them, bit for bit: a Discrete is
    an int64 index (``Categorical``; a ``Bounded`` range when ``start`` is not 0), a
    MultiDiscrete its indices in its dtype, a MultiBinary its 0/1 entries (int8), a Box
    keeps its dtype (float64 stays float64).

    Raises:
        CorruptStoreError: a space with no rldata spec (Text, Graph, ...).
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        n, start = int(space.n), int(space.start)
        if start == 0:
            return Categorical(n)
        return Bounded(start, start + n - 1, (), dtype=torch.int64)
    if isinstance(space, spaces.MultiDiscrete):
        nvec, first = np.asarray(space.nvec), np.asarray(space.start)
        dtype = _torch_dtype(space.dtype)
        if nvec.ndim == 1 and not first.any():
            return MultiCategorical(nvec, shape=nvec.shape, dtype=dtype)
        low, high = torch.as_tensor(first), torch.as_tensor(first + nvec - 1)
        return Bounded(low, high, nvec.shape, dtype=dtype)
    if isinstance(space, spaces.MultiBinary):
        return Binary(shape=list(space.shape), dtype=_torch_dtype(space.dtype))
    if isinstance(space, spaces.Box):
        spec = from_gym_space(space)
        assert isinstance(spec, TensorSpec)  # a Box is a leaf
        return spec
    raise CorruptStoreError(
        f"Minari space {type(space).__name__} has no rldata spec (supported: {list(SPACES)})"
    )


# --- a stored key's native space --------------------------------------------------------------
def _same(a: np.ndarray) -> np.ndarray:
    return a


def leaf_space(spec: Any, entry: dict) -> tuple[Any, Encoder]:
    """The native gymnasium space of a stored key and the encoder of its rows into it.

    ``spec`` is the key's spec (None when the store has none: the schema decides).
    """
    from gymnasium import spaces

    shape, dtype = tuple(entry["shape"]), entry["dtype"]
    npd = col.np_dtype(dtype)
    if isinstance(spec, Categorical) and math.prod(shape) == 1:
        return spaces.Discrete(spec.n), lambda a: a.reshape(len(a)).astype(np.int64, copy=False)
    if isinstance(spec, OneHot) and len(shape) == 1:
        return spaces.Discrete(spec.n), lambda a: a.argmax(-1).astype(np.int64)
    if isinstance(spec, MultiCategorical) and len(shape) == 1 and npd.kind in "iu":
        return spaces.MultiDiscrete(spec.nvec, dtype=npd), _same
    if isinstance(spec, MultiOneHot) and len(shape) == 1:
        cuts = np.cumsum(spec.nvec)[:-1]

        def indices(a: np.ndarray) -> np.ndarray:
            parts = np.split(a, cuts, axis=-1)
            return np.stack([p.argmax(-1) for p in parts], -1).astype(np.int64)

        return spaces.MultiDiscrete(spec.nvec, dtype=np.int64), indices
    if isinstance(spec, Binary) or dtype == "bool":
        int8 = np.dtype(np.int8)
        full = shape or (1,)
        binary = spaces.MultiBinary(full[0] if len(full) == 1 else list(full))
        if npd == int8 and shape:
            return binary, _same
        return binary, lambda a: a.reshape(len(a), *full).astype(int8)
    low = getattr(spec, "low", None)
    high = getattr(spec, "high", None)
    if low is None or high is None or npd.kind not in "iuf":
        if npd.kind == "f":
            lo, hi = float("-inf"), float("inf")
        else:
            info = np.iinfo(npd)
            lo, hi = int(info.min), int(info.max)
        low_a, high_a = np.full(shape, lo, dtype=npd), np.full(shape, hi, dtype=npd)
    else:
        low_a, high_a = low.cpu().numpy().astype(npd), high.cpu().numpy().astype(npd)
    return spaces.Box(low_a, high_a, shape, dtype=npd), _same


def _nest(leaves: dict[tuple[str, ...], Any]) -> Any:
    """A Dict space nesting ``{key parts: leaf space}`` by their parts."""
    from gymnasium import spaces

    tree: dict = {}
    for parts, sp in leaves.items():
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = sp

    def build(node: Any) -> Any:
        if isinstance(node, dict):
            return spaces.Dict({k: build(v) for k, v in node.items()})
        return node

    return build(tree)


def _fits(space: Any, entry: dict, stored: Any) -> bool:
    """Whether a recorded leaf space describes a stored key: gymnasium's values of the space
    have the key's shape and dtype, and the kind of the key's spec (where it has one: a
    GymEnv stores a Discrete action with a start as its index, a ``Categorical``)."""
    try:
        spec = data_spec(space)
    except CorruptStoreError:
        return False
    if stored is not None and type(stored) is not type(spec):
        return False
    got = (list(entry["shape"]), entry["dtype"])
    return (list(spec.shape), sch.dtype_name(spec.dtype)) == got


def started_index(space: Any, stored: Any) -> np.ndarray | None:
    """The ``start`` of a Discrete / MultiDiscrete space whose key a store holds as indices
    from 0 (a ``Categorical`` / ``OneHot`` or multi spec of the same counts: GymEnv's
    actions), when it is not 0; else None. Native values are ``index + start``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete) and isinstance(stored, (Categorical, OneHot)):
        same = stored.n == int(space.n)
    elif isinstance(space, spaces.MultiDiscrete) and isinstance(
        stored, (MultiCategorical, MultiOneHot)
    ):
        same = list(stored.nvec) == np.asarray(space.nvec).reshape(-1).tolist()
    else:
        return None
    start = np.asarray(space.start, dtype=np.int64)
    return start if same and start.any() else None


def _counted_from(index: Encoder, start: np.ndarray) -> Encoder:
    return lambda a: index(a) + start


def _rebuild(space: Any, leaves: dict[tuple[str, ...], Any], at: tuple[str, ...] = ()) -> Any:
    """``space`` with each leaf (by HDF5 path) replaced by ``leaves[path]``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: _rebuild(v, leaves, (*at, k)) for k, v in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        return spaces.Tuple(
            [_rebuild(v, leaves, (*at, f"_index_{i}")) for i, v in enumerate(space.spaces)]
        )
    return leaves[at]


def _spec_of(specs: Any, key: str) -> Any:
    if specs is None:
        return None
    try:
        spec = specs[tuple(key.split("."))]
    except KeyError:
        return None
    return spec if isinstance(spec, TensorSpec) else None


def native_spaces(
    schema: dict[str, dict],
    specs: Any,
    keys: dict[str, list[str]],
    recorded: Any = None,
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]], dict[str, Encoder]]:
    """A store's observation and action spaces as gymnasium spaces, each key's HDF5 path and
    each key's encoder.

    Args:
        schema / specs: the store's.
        keys: ``{"observation": [...], "action": [...]}``: the stored keys of each role.
        recorded: ``{"observation": json, "action": json}``: the spaces the data came from
            (``provenance.gym_spaces``, set by a Minari import); used where they still
            describe the keys exactly (a Tuple stays a Tuple, a Discrete keeps its start).
            Otherwise each key's space comes from its spec (:func:`leaf_space`), nested
            into Dicts by its key parts.
    """
    spaces_out: dict[str, Any] = {}
    paths: dict[str, tuple[str, ...]] = {}
    encoders: dict[str, Encoder] = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    for role in ROLES:
        names = keys[role]
        derived: dict[str, Any] = {}
        for k in names:
            derived[k], encoders[k] = leaf_space(_spec_of(specs, k), schema[k])
        space = None
        if isinstance(recorded.get(role), (dict, str)):
            try:
                space = space_from_json(recorded[role])
            except (CorruptStoreError, ValueError):
                space = None
        leaves = [] if space is None else role_leaves(space, role)
        if space is not None and sorted(".".join(k) for k, _, _ in leaves) == sorted(names):
            # the recorded structure (a Tuple stays a Tuple); each leaf as recorded where its
            # values are the stored ones (a Discrete keeps its start), else from its spec
            chosen = {}
            for parts, path, sp in leaves:
                k = ".".join(parts)
                paths[k] = path
                start = started_index(sp, _spec_of(specs, k))
                if _fits(sp, schema[k], _spec_of(specs, k)):
                    chosen[path], encoders[k] = sp, _same
                elif start is not None:  # indices from 0, written as the space counts them
                    chosen[path], encoders[k] = sp, _counted_from(encoders[k], start)
                else:
                    chosen[path] = derived[k]
            spaces_out[role] = _rebuild(space, chosen)
            continue
        made: dict[tuple[str, ...], Any] = {}
        for k in names:
            parts = tuple(k.split("."))
            rel = () if names == [role] else (parts[1:] if role == "action" else parts)
            made[rel], paths[k] = derived[k], rel
        spaces_out[role] = made[()] if () in made else _nest(made)
    return spaces_out, paths, encoders


def gym_spaces(env: Any) -> dict[str, str] | None:
    """``provenance.gym_spaces`` of an rldata gymnasium env (one env's spaces, as Minari's
    JSON strings), so an export writes the env's structure back; None for other envs."""
    inner = getattr(env, "gym_env", None)
    if inner is None:
        return None
    obs = getattr(inner, "single_observation_space", None) or inner.observation_space
    act = getattr(inner, "single_action_space", None) or inner.action_space
    try:
        return {
            "observation": json.dumps(space_to_json(obs)),
            "action": json.dumps(space_to_json(act)),
        }
    except ConfigError:  # a space Minari's JSON has no form for here
        return None


# --- arrays of a space's leaves, nested as Minari's HDF5 groups ----------------------------------
def tree_of(columns: dict[str, np.ndarray], paths: dict[str, tuple[str, ...]]) -> Any:
    """Arrays by key -> an array (one key at the root path) or nested dicts by HDF5 path."""
    if len(columns) == 1:
        ((k, a),) = columns.items()
        if paths[k] == ():
            return a
    tree: dict = {}
    for k, a in columns.items():
        node = tree
        for part in paths[k][:-1]:
            node = node.setdefault(part, {})
        node[paths[k][-1]] = a
    return tree


def at(tree: Any, path: tuple[str, ...], where: str) -> np.ndarray:
    """The array at ``path`` of an episode's (nested) observations or actions."""
    node = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise CorruptStoreError(f"{where}: missing {'/'.join(path)}, named by the space")
        node = node[part]
    if isinstance(node, dict):
        name = "/".join(path) or "the root"
        raise CorruptStoreError(f"{where}: {name} is a group, the space says one array")
    return node


# --- Minari's JSON ------------------------------------------------------------------------------
def space_to_json(space: Any) -> dict:
    """Minari's JSON of a gymnasium space (the fields ``minari.serialization`` writes)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "dtype": str(space.dtype),
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": n.tolist() if isinstance(n, np.ndarray) else n}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "subspaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "subspaces": [space_to_json(v) for v in space.spaces]}
    raise ConfigError(f"gymnasium space {type(space).__name__} has no Minari JSON here")


def space_from_json(data: Any) -> Any:
    """A gymnasium space from Minari's JSON (Box, Discrete, MultiDiscrete, MultiBinary, Dict,
    Tuple).

    Raises:
        CorruptStoreError: another type, or a malformed entry (one line naming it).
    """
    from gymnasium import spaces

    d = untrusted.loads_json(data, "Minari metadata", "a space") if isinstance(data, str) else data
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "Box":
            low = np.asarray(d["low"], dtype=d["dtype"])
            high = np.asarray(d["high"], dtype=d["dtype"])
            return spaces.Box(low, high, tuple(d["shape"]), dtype=d["dtype"])
        if kind == "Discrete":
            return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
        if kind == "MultiDiscrete":
            return spaces.MultiDiscrete(
                np.asarray(d["nvec"]), dtype=d.get("dtype", "int64"), start=d.get("start")
            )
        if kind == "MultiBinary":
            return spaces.MultiBinary(d["n"])
        if kind == "Dict":
            return spaces.Dict({str(k): space_from_json(v) for k, v in d["subspaces"].items()})
        if kind == "Tuple":
            return spaces.Tuple([space_from_json(v) for v in d["subspaces"]])
    except CorruptStoreError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, AssertionError) as exc:
        raise CorruptStoreError(
            f"Minari space {kind!r} is malformed ({type(exc).__name__}: "
            f"{untrusted.escape(exc)[:120]})"
        ) from None
    raise CorruptStoreError(
        f"Minari space {untrusted.escape(repr(kind))[:60]} is not supported (expected one of "
        f"{list(SPACES)})"
    )


# --- descriptive metadata -------------------------------------------------------------------
CARD_FIELDS = described.FIELDS
"""Minari's descriptive metadata fields, kept in rldata's provenance under the same names."""


def card_from_minari(meta: dict) -> dict[str, Any]:
    """Minari's descriptive fields present in ``meta``, as provenance entries (``author``
    and ``author_email`` sorted lists of strings, the others strings), each cut to its
    bound (:mod:`rldata.stores.interop.described`)."""
    return described.bounded(meta)


def card_to_minari(prov: dict) -> dict[str, Any]:
    """The provenance's descriptive fields as Minari's metadata holds them."""
    return described.bounded(prov)


def to_stored(a: np.ndarray, entry: dict | None, spec: Any, space: Any = None) -> np.ndarray:
    """A leaf's values as a store holds them: the inverse of the export's encoder when the
    rows came from rldata (``entry``: the key's schema entry, ``spec`` its spec, ``space``
    the leaf's space; values counted from a start back to indices, indices back to one-hot
    rows, 0/1 back to bool, ``[N]`` back to ``[N, 1]``); Minari's own values unchanged when
    ``entry`` is None."""
    if entry is None:
        return a
    n = len(a)
    start = started_index(space, spec)
    if start is not None:
        a = a - start
    shape, npd = tuple(entry["shape"]), col.np_dtype(entry["dtype"])
    if isinstance(spec, OneHot) and a.shape == (n,):
        a = np.eye(spec.n, dtype=npd)[a]
    elif isinstance(spec, MultiOneHot) and a.ndim == 2 and a.shape[1] == len(spec.nvec):
        a = np.concatenate(
            [np.eye(k, dtype=npd)[a[:, j]] for j, k in enumerate(spec.nvec)], axis=-1
        )
    if a.shape[1:] != shape and math.prod(a.shape[1:]) == math.prod(shape):
        a = a.reshape(n, *shape)
    if a.dtype != npd and entry["dtype"] not in col._BITS:
        a = a.astype(npd)
    return a
