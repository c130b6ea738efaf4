"""Deciding whether an environment can take the numpy fast path, and with which layout.

The fast path (``_gym_loop.py``) steps gymnasium environments directly. It is only taken
when that produces exactly what the environment's own ``step`` would: a ``GymWrapper``
(``GymEnv``) that steps as GymWrapper does, on the CPU (a single env, a gymnasium
``SyncVectorEnv``, or a ``SerialEnv`` of such unbatched envs), without transforms, frame
skip or pixels, with a Box observation under ``"observation"``, a Box or Discrete
(``start=0``) action space and the standard reward and done entries. The choice uses
``isinstance`` and public attributes only. ``tests/collectors/test_gym_collect.py`` checks
both paths give equal batches for random and policy-driven runs, single and batched.
"""

from __future__ import annotations

import torch
from gymnasium.vector import SyncVectorEnv

from rldata.collectors._gym_loop import GymLayout
from rldata.envs.batched import SerialEnv
from rldata.envs.gym import GymWrapper
from rldata.specs import Bounded, Categorical, OneHot, Unbounded


def _plain_gym(env: object) -> bool:
    """A ``GymWrapper`` (or ``GymEnv``) whose stepping is GymWrapper's own, on the CPU.

    A subclass that overrides how it steps or resets keeps the generic loop, so the fast
    loop never skips code the env would run.
    """
    if not isinstance(env, GymWrapper):
        return False
    cls = type(env)
    own = all(
        getattr(cls, name) is getattr(GymWrapper, name)
        for name in ("step", "_step", "reset", "_reset")
    )
    return own and env.frame_skip == 1 and not env.from_pixels and env.device.type == "cpu"


def _gym_envs(env: object) -> tuple[list, bool, bool, bool] | None:
    """(gymnasium envs, batched, SerialEnv seed chain, validate_actions) behind ``env``, or None."""
    if isinstance(env, SerialEnv) and type(env)._step is SerialEnv._step:
        subs = [e for e in env.envs if isinstance(e, GymWrapper) and _plain_gym(e)]
        if not subs or len(subs) != len(env.envs) or env.device.type != "cpu":
            return None
        if any(e.batch_size for e in subs):
            return None
        return [e.gym_env for e in subs], True, True, subs[0].validate_actions
    if not isinstance(env, GymWrapper) or not _plain_gym(env):
        return None
    inner = env.gym_env
    if len(env.batch_size) == 0:
        return [inner], False, False, env.validate_actions
    if not isinstance(inner, SyncVectorEnv) or len(inner.envs) != env.batch_size[0]:
        return None
    return list(inner.envs), True, False, env.validate_actions


def fast_layout(env) -> tuple[GymLayout, list] | None:
    """The fast-path layout and gymnasium envs behind ``env``, or None to use the generic loop."""
    from gymnasium import spaces

    found = _gym_envs(env)
    if found is None:
        return None
    envs, batched, chain, validate = found
    obs_space, act_space = envs[0].observation_space, envs[0].action_space
    if not isinstance(obs_space, spaces.Box):
        return None
    obs_keys = [
        k if isinstance(k, str) else tuple(k) for k in env.observation_spec.keys(True, True)
    ]
    if obs_keys != ["observation"]:
        return None
    nb = len(env.batch_size)
    obs_spec = env.observation_spec["observation"]
    act_spec = env.action_spec
    if isinstance(act_space, spaces.Box) and isinstance(act_spec, (Bounded, Unbounded)):
        kind, n = "continuous", 0
    elif isinstance(act_space, spaces.Discrete) and int(act_space.start) == 0:
        if isinstance(act_spec, OneHot):
            kind = "onehot"
        elif isinstance(act_spec, Categorical):
            kind = "categorical"
        else:
            return None
        n = int(act_space.n)
    else:
        return None
    if env.reward_spec.dtype != torch.float32 or tuple(env.reward_spec.shape[nb:]) != (1,):
        return None
    layout = GymLayout(
        obs_key="observation",
        obs_dtype=obs_spec.dtype,
        obs_shape=tuple(obs_spec.shape[nb:]),
        action_kind=kind,
        action_dtype=act_spec.dtype,
        action_shape=tuple(act_spec.shape[nb:]),
        n_actions=n,
        reward_dtype=env.reward_spec.dtype,
        batched=batched,
        validate=validate,
    )
    return layout, envs
