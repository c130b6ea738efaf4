"""Turning a user's policy into what a collection loop calls.

The generic loop calls a TensorDict policy ``td -> td``. The fast gymnasium loop wants a
numpy function ``obs -> action``: a random policy samples with numpy; a
``TensorDictModule`` that only reads the observation and only writes the action runs its
inner ``nn.Module`` on a tensor (no TensorDict per step); any other policy that reads only
the observation gets a one-key TensorDict per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule

from rldata.envs.utils import RandomPolicy
from rldata.ted import TED_KEYS

TdPolicy = Callable[[TensorDictBase], TensorDictBase]


def is_random_policy(policy: object) -> bool:
    """``None`` or rldata's ``RandomPolicy``: actions uniform in the action spec."""
    return policy is None or type(policy) is RandomPolicy


def random_td_policy(action_spec, env: Any = None) -> TdPolicy:
    """A TensorDict policy drawing from ``action_spec`` (batch dims included in the spec).

    Uses ``env.rand_action`` when the env has one, so ``env.set_seed`` makes it reproducible.
    """
    rand_action = getattr(env, "rand_action", None)
    if rand_action is not None:
        return rand_action

    def policy(td: TensorDictBase) -> TensorDictBase:
        td.set(
            TED_KEYS.action, action_spec.rand().to(td.device) if td.device else action_spec.rand()
        )
        return td

    return policy


def _keys(module: object, name: str) -> list | None:
    keys = getattr(module, name, None)
    return list(keys) if keys is not None else None


def tensor_act_fn(
    policy: object, obs_key: str, to_gym: Callable[[torch.Tensor], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy ``obs -> gym action`` function for ``policy``, or None if it needs more than obs.

    Args:
        policy: a TensorDict module/callable.
        obs_key: the env's observation key.
        to_gym: converts the policy's action tensor to gymnasium actions.
    """
    in_keys = _keys(policy, "in_keys")
    out_keys = _keys(policy, "out_keys")
    if in_keys is None or [_flat(k) for k in in_keys] != [obs_key]:
        return None
    inner: Any = getattr(policy, "module", None)
    td_policy: Any = policy
    plain = (
        out_keys is not None
        and [_flat(k) for k in out_keys] == [_flat(TED_KEYS.action)]
        and isinstance(inner, torch.nn.Module)
        and isinstance(policy, TensorDictModule)
        and type(policy).forward is TensorDictModule.forward  # no overridden forward to skip
    )
    if plain:
        try:
            device = next(inner.parameters()).device
        except StopIteration:
            device = torch.device("cpu")

        def act(obs: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(obs)
            if device.type != "cpu":
                x = x.to(device)
            return to_gym(inner(x))

        return act

    def act_td(obs: np.ndarray) -> np.ndarray:
        td = TensorDict({obs_key: torch.from_numpy(obs)}, batch_size=obs.shape[:1])
        return to_gym(td_policy(td).get(TED_KEYS.action))

    return act_td


def _flat(key) -> str | tuple:
    if isinstance(key, tuple) and len(key) == 1:
        return key[0]
    return key


def writes_only_action(policy: object) -> bool:
    """Whether ``policy`` adds nothing but the action to a step (random, or ``out_keys``
    of just the action); a rollout keeps every other output (``loc``, log-probs), which
    the numpy path would drop."""
    if is_random_policy(policy):
        return True
    out_keys = _keys(policy, "out_keys")
    return out_keys is not None and [_flat(k) for k in out_keys] == [_flat(TED_KEYS.action)]
