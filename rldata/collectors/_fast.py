"""Deciding whether an environment can take the numpy fast path, and with which layout.

The fast path (``_gym_loop.py``) steps gymnasium environments directly. It is only taken
when that produces exactly what the environment's own ``step`` would: a plain ``GymEnv`` /
``GymWrapper`` on the CPU (a single env, a synchronous vector env whose sub-envs it can
reach, or a ``SerialEnv`` of plain unbatched ``GymEnv``), without transforms, frame skip or pixels, with a Box observation under
``"observation"``, a Box or Discrete (``start=0``) action space and the standard reward
and done entries. ``tests/collectors/test_fast_path.py`` checks both paths agree.
"""

from __future__ import annotations

import torch

from rldata.collectors._gym_loop import GymLayout
from rldata.specs import Bounded, Categorical, OneHot, Unbounded

_PLAIN = {"GymEnv", "GymWrapper"}


def _plain_gym(env) -> bool:
    return (
        type(env).__name__ in _PLAIN
        and hasattr(env, "gym_env")
        and getattr(env, "frame_skip", 1) == 1
        and not getattr(env, "from_pixels", False)
        and env.device.type == "cpu"
    )


def _validates(env) -> bool:
    """Whether ``env`` checks actions (``GymEnv(validate_actions=...)``; default True)."""
    flag = getattr(env, "validate_actions", None)
    if flag is None:
        flag = getattr(env, "_validate", True)  # GymWrapper keeps it private for now
    return bool(flag)


def _gym_envs(env) -> tuple[list, bool, bool] | None:
    """(gymnasium envs, batched, SerialEnv seed chain) behind ``env``, or None."""
    if type(env).__name__ == "SerialEnv":
        subs = getattr(env, "envs", None)
        if not subs or env.device.type != "cpu":
            return None
        if not all(_plain_gym(e) and not e.batch_size for e in subs):
            return None
        return [e.gym_env for e in subs], True, True
    if not _plain_gym(env):
        return None
    inner = env.gym_env
    if len(env.batch_size) == 0:
        return [inner], False, False
    subs = getattr(inner, "envs", None)  # gymnasium's SyncVectorEnv
    if type(inner).__name__ != "SyncVectorEnv" or subs is None or len(subs) != env.batch_size[0]:
        return None
    return list(subs), True, False


def fast_layout(env) -> tuple[GymLayout, list] | None:
    """The fast-path layout and gymnasium envs behind ``env``, or None to use the generic loop."""
    from gymnasium import spaces

    found = _gym_envs(env)
    if found is None:
        return None
    envs, batched, chain = found
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
        seed_chain=chain,
        validate=_validates(env.envs[0] if type(env).__name__ == "SerialEnv" else env),
    )
    return layout, envs
