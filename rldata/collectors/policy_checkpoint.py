"""Policy checkpoints a collector can run: a small, safe format (no pickle).

A checkpoint is one ``torch.save`` file holding plain data only, so it loads with
``torch.load(..., weights_only=True)``:

``{"format": "rldata.policy", "version": 1, "arch": "<JSON>", "state_dict": {...}}``

The JSON names the architecture (an MLP from :mod:`rldata.modules` with its sizes and
activation) and the observation/action specs it was built for; loading rebuilds the
network from that description, loads the weights, and checks the specs against the
environment it is meant to act in.

Examples:
    >>> policy = mlp_policy(env.observation_spec, env.action_spec, num_cells=[64, 64])  # doctest: +SKIP
    >>> save_policy(policy, "runs/pendulum/policy.pt")                                # doctest: +SKIP
    >>> policy = load_policy("runs/pendulum/policy.pt", env=env)                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import IO, Any

import torch
from torch import nn

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError, SpecError
from rldata.modules import MLP, Actor, FlatConcat
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
    spec_from_json,
)

FORMAT = "rldata.policy"
VERSION = 1
RUN_POLICY = "policy.pt"  # the policy a training run exports into its directory
_ACTIVATIONS = {"Tanh": nn.Tanh, "ReLU": nn.ReLU, "ELU": nn.ELU}


def _unbatched(spec: TensorSpec, batch_dims: int) -> TensorSpec:
    """The per-env spec of a spec with ``batch_dims`` leading batch dims."""
    if isinstance(spec, Composite):  # a Dict / Tuple action: each entry
        return Composite({k: _unbatched(v, batch_dims) for k, v in spec.items()})  # type: ignore[return-value]
    if batch_dims == 0:
        return spec
    shape = tuple(spec.shape[batch_dims:])
    if isinstance(spec, Bounded):
        low = spec.low.reshape(-1, *shape)[0]
        high = spec.high.reshape(-1, *shape)[0]
        return Bounded(low, high, shape, dtype=spec.dtype)
    if isinstance(spec, OneHot):
        return OneHot(spec.n, shape, dtype=spec.dtype)
    if isinstance(spec, Categorical):
        return Categorical(spec.n, shape, dtype=spec.dtype)
    if isinstance(spec, Unbounded):
        return Unbounded(shape, dtype=spec.dtype)
    if isinstance(spec, Binary):
        return Binary(shape=shape, dtype=spec.dtype)
    if isinstance(spec, (MultiCategorical, MultiOneHot)):
        return type(spec)(spec.nvec, shape, dtype=spec.dtype)
    raise SpecError(
        f"policy checkpoints support Bounded, Unbounded, OneHot and Categorical actions, got {type(spec).__name__}"
    )


class _ActionHead(nn.Module):
    """Maps the MLP's output into the action spec: tanh-scaled bounds, or a one-hot/index argmax."""

    def __init__(
        self,
        net: nn.Module,
        action: TensorSpec,
        obs_norm: dict[str, list] | None = None,
        concat: FlatConcat | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.concat = concat  # a Dict observation: its leaves flattened and concatenated
        self.normalize = obs_norm is not None
        if obs_norm is not None:  # (obs - mean) / std first: policies trained on normalized states
            self.register_buffer("obs_mean", torch.tensor(obs_norm["mean"], dtype=torch.float32))
            self.register_buffer("obs_std", torch.tensor(obs_norm["std"], dtype=torch.float32))
        self.kind = type(action).__name__
        self.n = int(getattr(action, "n", 0) or 0)
        self.dtype = action.dtype
        if isinstance(action, Bounded):
            self.register_buffer("low", action.low.clone().to(torch.float32))
            self.register_buffer("high", action.high.clone().to(torch.float32))

    def forward(self, *leaves: torch.Tensor) -> torch.Tensor:
        obs = self.concat(*leaves) if self.concat is not None else leaves[0].to(torch.float32)
        if self.normalize:
            obs = (obs - self.get_buffer("obs_mean")) / self.get_buffer("obs_std")
        out = self.net(obs)
        if self.kind == "Bounded":
            low, high = self.get_buffer("low"), self.get_buffer("high")
            return (low + (torch.tanh(out) + 1) * 0.5 * (high - low)).to(self.dtype)
        if self.kind == "OneHot":
            return nn.functional.one_hot(out.argmax(-1), self.n).to(self.dtype)
        if self.kind == "Categorical":
            return out.argmax(-1).to(self.dtype)
        return out.to(self.dtype)


def mlp_policy(
    observation_spec: Any,
    action_spec: TensorSpec,
    num_cells: Sequence[int] = (64, 64),
    activation: str = "Tanh",
    batch_dims: int = 0,
    obs_norm: dict[str, list] | None = None,
    obs_keys: Sequence[Any] | None = None,
) -> Actor:
    """A deterministic MLP actor ``observation -> action`` that can be saved as a checkpoint.

    Args:
        observation_spec: the env's observation Composite (or the ``"observation"`` leaf).
        action_spec: the env's action spec.
        num_cells: hidden layer sizes.
        activation: ``"Tanh"``, ``"ReLU"`` or ``"ELU"``.
        batch_dims: leading batch dims of the specs (``len(env.batch_size)``).
        obs_norm: ``{"mean": [...], "std": [...]}``: normalize observations first (for
            policies trained on normalized states, e.g. TD3+BC and IQL).
        obs_keys: a Dict observation's keys in ``observation_spec``: the policy reads each,
            flattens it (one-hot for a ``Categorical`` leaf) and concatenates them in this
            order (``obs_norm`` then applies to the concatenation).
    """
    leaves = []
    for key in obs_keys or ():
        leaf = observation_spec[key]
        entry: dict[str, Any] = {
            "key": [key] if isinstance(key, str) else list(key),
            "shape": list(leaf.shape[batch_dims:]),
            "dtype": str(leaf.dtype).replace("torch.", ""),
        }
        if isinstance(leaf, Categorical):  # a Discrete leaf: one-hot encoded
            entry["categories"] = int(leaf.n)
        leaves.append(entry)
    if leaves:
        size = sum(_leaf_size(leaf) for leaf in leaves)
        obs = Unbounded((size,), dtype=torch.float32)
    else:
        obs = observation_spec
        if hasattr(observation_spec, "keys"):
            obs = observation_spec["observation"]
    arch: dict[str, Any] = {
        "kind": "mlp",
        "obs_key": "observation",
        "obs_shape": list(obs.shape[batch_dims:] if not leaves else obs.shape),
        "obs_dtype": str(obs.dtype).replace("torch.", ""),
        "action_spec": _unbatched(action_spec, batch_dims).to_json(),
        "num_cells": [int(c) for c in num_cells],
        "activation": activation,
    }
    if obs_norm is not None:
        arch["obs_norm"] = {"mean": list(obs_norm["mean"]), "std": list(obs_norm["std"])}
    if leaves:
        arch["obs_keys"] = leaves
    return _build(arch)


def _build(arch: dict[str, Any]) -> Actor:
    if arch.get("kind") != "mlp":
        raise ConfigError(
            f"policy checkpoint: unknown architecture kind {arch.get('kind')!r}; expected 'mlp'"
        )
    if arch["activation"] not in _ACTIVATIONS:
        raise ConfigError(
            f"policy checkpoint: activation {arch['activation']!r} not in {sorted(_ACTIVATIONS)}"
        )
    action = spec_from_json(arch["action_spec"])
    if not isinstance(action, TensorSpec):
        raise ConfigError("policy checkpoint: the action spec must be a single tensor spec")
    in_features = 1
    for d in arch["obs_shape"]:
        in_features *= int(d)
    n = int(getattr(action, "n", 0) or 0)
    out_features = (
        n if isinstance(action, (OneHot, Categorical)) else int(torch.Size(action.shape).numel())
    )
    net = MLP(
        in_features,
        out_features,
        num_cells=list(arch["num_cells"]),
        activation_class=_ACTIVATIONS[arch["activation"]],
    )
    leaves = arch.get("obs_keys")
    concat = None
    if leaves:
        concat = FlatConcat([s["shape"] for s in leaves], [s.get("categories", 0) for s in leaves])
    actor = Actor(
        _ActionHead(net, action, arch.get("obs_norm"), concat),
        in_keys=[tuple(leaf["key"]) for leaf in leaves] if leaves else [arch["obs_key"]],
        out_keys=["action"],
        spec=action,
    )
    actor.rldata_arch = arch  # type: ignore[assignment]  # nn.Module.__setattr__ takes any value
    return actor


def save_policy(policy: Actor, path: str | os.PathLike | IO[bytes]) -> None:
    """Write ``policy`` (built by :func:`mlp_policy`) as a weights-only checkpoint (to a path
    or a binary file object)."""
    arch = getattr(policy, "rldata_arch", None)
    if arch is None:
        raise ConfigError(
            "save_policy needs a policy built by rldata.collectors.policy_checkpoint.mlp_policy"
        )
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": json.dumps(arch),
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    torch.save(payload, path if hasattr(path, "write") else os.fspath(path))  # type: ignore[arg-type]


def load_policy(path: str | os.PathLike, env: Any = None) -> Actor:
    """Rebuild a policy from a checkpoint written by :func:`save_policy`.

    Args:
        path: the checkpoint file, or a training run directory holding ``policy.pt``.
        env: if given, the observation and action specs must match this env's.

    Raises:
        ConfigError: the file is missing, not an rldata policy checkpoint, or malformed.
        SpecError: the policy's specs do not match ``env``'s (the message names both).
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, RUN_POLICY)):
        path = os.path.join(path, RUN_POLICY)  # a training run directory (rldata train --out)
    if not os.path.isfile(path):
        raise ConfigError(
            f"policy checkpoint not found: {path!r} (give 'random' or a file saved by rldata)"
        )
    try:
        with untrusted.open_regular(
            path, "policy checkpoint", limit=MAX_FILE, error=ConfigError
        ) as f:
            payload = torch.load(f, map_location="cpu", weights_only=True)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user mistake
        raise ConfigError(
            f"{path!r} is not a policy checkpoint readable with weights_only=True "
            f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(
            f"{path!r} is not an rldata policy checkpoint (format {FORMAT!r} expected)"
        )
    version = payload.get("version", -1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{path!r}: policy checkpoint field 'version' must be an integer")
    if version > VERSION:
        raise ConfigError(
            f"{path!r}: policy checkpoint version {payload['version']} is newer than {VERSION}"
        )
    arch = _arch_of(payload, path)
    if env is not None:
        arch = _discrete_encoding_of(arch, env)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ConfigError(f"{path!r}: policy checkpoint has no 'state_dict' of weights")
    policy = _build(arch)
    try:
        policy.load_state_dict(state)
    except (RuntimeError, TypeError, KeyError) as err:
        raise ConfigError(
            f"{path!r}: weights do not fit the described architecture: {err}"
        ) from None
    if env is not None:
        check_policy_matches(arch, env, path)
    return policy


MAX_LAYER = 16384
MAX_LAYERS = 64
#: Largest policy checkpoint file read (bytes); its weights stay within the memory budget.
MAX_FILE = 4 * 2**30
_ARCH_KEYS = {
    "kind": str,
    "obs_key": str,
    "obs_shape": list,
    "obs_dtype": str,
    "action_spec": dict,
    "num_cells": list,
    "activation": str,
}


def _arch_of(payload: dict, path: str) -> dict[str, Any]:
    """The checkpoint's architecture, checked before anything is allocated: a shared
    checkpoint is untrusted, and absurd layer sizes would try to allocate terabytes."""
    try:
        arch = untrusted.loads_json(payload["arch"], path, "field 'arch'", error=ConfigError)
    except ConfigError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"{path!r}: policy checkpoint field 'arch' is not JSON ({err})") from None
    if not isinstance(arch, dict):
        raise ConfigError(f"{path!r}: policy checkpoint field 'arch' must be an object")
    for key, kind in _ARCH_KEYS.items():
        if not isinstance(arch.get(key), kind):
            raise ConfigError(
                f"{path!r}: policy checkpoint field 'arch.{key}': expected a {kind.__name__}, "
                f"got {arch.get(key)!r}"
            )
    sizes = [*arch["num_cells"], *arch["obs_shape"]]
    if (
        len(arch["num_cells"]) > MAX_LAYERS
        or len(arch["obs_shape"]) > 8
        or not all(
            isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_LAYER for c in sizes
        )
    ):
        raise ConfigError(
            f"{path!r}: policy checkpoint field 'arch.num_cells' / 'arch.obs_shape': expected at "
            f"most {MAX_LAYERS} sizes in [1, {MAX_LAYER}], got {arch['num_cells']} / {arch['obs_shape']}"
        )
    if "obs_keys" in arch:
        _check_obs_keys(arch, path)
    widths = [math.prod(arch["obs_shape"]), *arch["num_cells"]]
    params = sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    untrusted.check_budget(
        4 * params, repr(path), f"the policy's {len(arch['num_cells'])} layers", error=ConfigError
    )
    return arch


def _leaf_size(leaf: dict[str, Any]) -> int:
    """A Dict observation leaf's features: its values, or ``categories`` per one-hot value."""
    return math.prod(leaf["shape"]) * max(int(leaf.get("categories", 0)), 1)


def _check_obs_keys(arch: dict[str, Any], path: str) -> None:
    """A Dict observation's leaves: names, small shapes, and sizes adding up to ``obs_shape``."""
    leaves = arch["obs_keys"]
    ok = isinstance(leaves, list) and 0 < len(leaves) <= MAX_LAYER
    for leaf in leaves if ok else ():
        ok = ok and (
            isinstance(leaf, dict)
            and isinstance(leaf.get("key"), list)
            and 0 < len(leaf["key"]) <= 8
            and all(isinstance(k, str) and k for k in leaf["key"])
            and isinstance(leaf.get("shape"), list)
            and len(leaf["shape"]) <= 8
            and all(
                isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_LAYER
                for d in leaf["shape"]
            )
            and isinstance(leaf.get("dtype"), str)
            and isinstance(leaf.get("categories", 0), int)
            and not isinstance(leaf.get("categories", 0), bool)
            and 0 <= leaf.get("categories", 0) <= MAX_LAYER
        )
    if not ok or sum(_leaf_size(leaf) for leaf in leaves) != math.prod(arch["obs_shape"]):
        raise ConfigError(
            f"{path!r}: policy checkpoint field 'arch.obs_keys': expected up to {MAX_LAYER} "
            f"entries {{'key': [names], 'shape': [sizes], 'dtype': name, 'categories': n}} whose "
            f"sizes add up to obs_shape {arch['obs_shape']}"
        )


def _discrete_encoding_of(arch: dict[str, Any], env: Any) -> dict[str, Any]:
    """``arch`` acting in ``env``'s encoding of a Discrete action: a policy trained on one-hot
    actions drives an env that takes indices (and back) with the same weights, since both
    heads score the same ``n`` actions."""
    mine = arch["action_spec"]
    theirs = _unbatched(env.action_spec, len(env.batch_size))
    kinds = {mine.get("type"), type(theirs).__name__}
    if kinds == {"OneHot", "Categorical"} and mine.get("n") == getattr(theirs, "n", None):
        return {**arch, "action_spec": theirs.to_json()}
    return arch


def check_policy_matches(arch: dict[str, Any], env: Any, where: str = "policy") -> None:
    """Raise :class:`SpecError` unless the checkpoint's specs are the env's (per env, unbatched)."""
    nb = len(env.batch_size)
    for leaf in arch.get("obs_keys") or ():  # a Dict observation: each leaf as trained on
        key = tuple(leaf["key"])
        spec = env.observation_spec.get(key, None)
        got = None if spec is None else list(spec.shape[nb:])
        dtype = None if spec is None else str(spec.dtype).replace("torch.", "")
        if (got, dtype) != (leaf["shape"], leaf["dtype"]):
            raise SpecError(
                f"{where}: policy expects observation key {'.'.join(key)!r} of shape "
                f"{leaf['shape']} {leaf['dtype']}, env gives {got} {dtype}"
            )
    obs = None if arch.get("obs_keys") else env.observation_spec.get(arch["obs_key"], None)
    if obs is None and not arch.get("obs_keys"):
        raise SpecError(
            f"{where}: policy reads {arch['obs_key']!r} but the env observes {env.observation_spec.keys(True, True)}"
        )
    env_obs = None if obs is None else (list(obs.shape[nb:]), str(obs.dtype).replace("torch.", ""))
    if env_obs is not None and env_obs != (arch["obs_shape"], arch["obs_dtype"]):
        raise SpecError(
            f"{where}: policy expects observation shape {arch['obs_shape']} {arch['obs_dtype']}, "
            f"env gives {env_obs[0]} {env_obs[1]}"
        )
    env_act = _unbatched(env.action_spec, nb).to_json()
    if env_act != arch["action_spec"]:
        raise SpecError(
            f"{where}: policy action spec {arch['action_spec']} does not match the env's {env_act}"
        )
