"""What ``rldata.record`` accepts, turned into what a collector runs: one place for every form.

An env is a gymnasium ``Env`` (any wrapper of one), a registered env id, or an rldata env
(:class:`~rldata.envs.GymEnv`, a batched env, ...). A policy is ``None`` / ``"random"``, a
TensorDict policy (``td -> td`` writing ``"action"``, e.g. a ``TensorDictModule``), a plain
callable ``observation -> action``, or the path of a policy checkpoint / a training run
directory holding ``policy.pt`` (what ``rldata collect --policy RUN`` reads). Anything else
is refused with one line naming the type given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.collectors.policy_checkpoint import load_policy
from rldata.errors import InputTypeError

ENV_FORMS = "a gymnasium env, an env id string, an rldata env (GymEnv, ...) or a collector"
POLICY_FORMS = (
    "None / 'random', a callable observation -> action, a TensorDict policy "
    "(TensorDictModule), or a policy checkpoint / training run directory path"
)


def _type_name(obj: Any) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _json_kwargs(kwargs: dict | None) -> dict[str, Any]:
    """The JSON-writable part of ``kwargs`` (a manifest holds JSON only)."""
    out = {}
    for key, value in (kwargs or {}).items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[str(key)] = value
    return out


def as_env(env: Any) -> tuple[Any, str | None, dict[str, Any]]:
    """``(rldata env, env id or None, env kwargs)`` for any accepted env form.

    Raises:
        InputTypeError: ``env`` is none of the accepted forms (the message names its type).
        EnvNotFoundError: an env id gymnasium does not know.
    """
    from rldata.envs import GymEnv, GymWrapper
    from rldata.envs.common import EnvBase

    if isinstance(env, EnvBase):
        kwargs = getattr(env, "gym_kwargs", None)
        if kwargs is None:
            kwargs = _gym_spec_kwargs(getattr(env, "_env", None))
        return env, getattr(env, "env_id", None) or _gym_id(getattr(env, "_env", None)), kwargs
    if isinstance(env, str):
        # an id gives integer actions for Discrete spaces, as ``rldata collect`` records them
        return GymEnv(env, categorical_action_encoding=True), env, {}
    import gymnasium

    if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
        wrapped = GymWrapper(env, categorical_action_encoding=True)
        return wrapped, _gym_id(env), _gym_spec_kwargs(env)
    raise InputTypeError(f"record: expected {ENV_FORMS}; got {_type_name(env)}")


def _gym_id(env: Any) -> str | None:
    spec = getattr(env, "spec", None)
    return getattr(spec, "id", None)


def _gym_spec_kwargs(env: Any) -> dict[str, Any]:
    return _json_kwargs(getattr(getattr(env, "spec", None), "kwargs", None))


class ObservationPolicy:
    """A TensorDict policy over a plain ``observation -> action`` callable.

    The callable receives the observation as a tensor (a dict of tensors when the env
    observes several keys) with the env's batch dims, and returns an action (tensor, numpy
    array or number) that is cast to the action spec's dtype and shape.
    """

    def __init__(self, fn: Callable[[Any], Any], env: Any) -> None:
        self.fn = fn
        self.obs_keys = [k for k in env.observation_spec.keys(True, True)]
        self.action_spec = env.action_spec

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        if self.obs_keys == ["observation"]:
            obs: Any = td.get("observation")
        else:
            obs = {k if isinstance(k, str) else ".".join(k): td.get(k) for k in self.obs_keys}
        spec = self.action_spec
        action = torch.as_tensor(self.fn(obs)).to(spec.dtype)
        td.set("action", action.reshape(td.batch_size + spec.shape[len(td.batch_size) :]))
        return td

    def __repr__(self) -> str:
        return f"ObservationPolicy({describe_policy(self.fn)})"


def as_policy(policy: Any, env: Any) -> Any:
    """A TensorDict policy (or ``None``: random actions) for any accepted policy form.

    Raises:
        InputTypeError: ``policy`` is none of the accepted forms (names its type).
        ConfigError / SpecError: a checkpoint that is missing, unreadable, or made for
            another env (see :func:`rldata.collectors.policy_checkpoint.load_policy`).
    """
    from rldata.envs.utils import RandomPolicy

    if policy is None or (isinstance(policy, str) and policy == "random"):
        return None
    if isinstance(policy, (str, os.PathLike)):
        return load_policy(policy, env=env)
    if isinstance(policy, RandomPolicy) or (
        hasattr(policy, "in_keys") and hasattr(policy, "out_keys") and callable(policy)
    ):
        return policy  # a TensorDict policy already
    if callable(policy):
        return ObservationPolicy(policy, env)
    raise InputTypeError(f"record: policy= expects {POLICY_FORMS}; got {_type_name(policy)}")


def describe_policy(policy: Any) -> str:
    """How a policy is named in a dataset's provenance: ``"random"``, a path, or a type."""
    from rldata.envs.utils import RandomPolicy

    if policy is None or isinstance(policy, RandomPolicy) or policy == "random":
        return "random"
    if isinstance(policy, (str, os.PathLike)):
        return os.fspath(policy)
    if isinstance(policy, ObservationPolicy):
        return describe_policy(policy.fn)
    name = getattr(policy, "__qualname__", None)
    if name is not None and not isinstance(policy, torch.nn.Module):
        return f"{getattr(policy, '__module__', '')}.{name}".lstrip(".")
    return _type_name(policy)
