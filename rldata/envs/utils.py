"""Helpers under the walkthrough's import path ``rldata.envs.utils``.

``ExplorationType`` and ``set_exploration_type`` live in :mod:`rldata.exploration`
(so that ``rldata.modules`` can use them without importing ``envs``); ``step_mdp``
lives in :mod:`rldata.ted`. They are re-exported here unchanged.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.exploration import ExplorationType, exploration_type, set_exploration_type
from rldata.specs import TensorSpec
from rldata.ted import step_mdp

__all__ = [
    "RandomPolicy",
    "ExplorationType",
    "set_exploration_type",
    "exploration_type",
    "step_mdp",
]


class RandomPolicy:
    """A policy that writes a random value of ``action_spec`` under ``"action"``.

    Args:
        action_spec: the env's ``action_spec`` (batched specs give batched actions).
        action_key: where to write the action.

    Examples:
        >>> from rldata.specs import Bounded
        >>> policy = RandomPolicy(Bounded(-1.0, 1.0, (2,)))
        >>> policy(TensorDict({}, batch_size=[]))["action"].shape
        torch.Size([2])
    """

    def __init__(self, action_spec: TensorSpec, action_key: str = "action") -> None:
        self.action_spec = action_spec
        self.action_key = action_key

    def __call__(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        action: torch.Tensor = self.action_spec.rand()
        if tensordict is None:
            tensordict = TensorDict({}, batch_size=[])
        tensordict.set(self.action_key, action)
        return tensordict
