"""Environments that speak TED: gymnasium wrappers, batched envs and transforms.

``reset()`` and ``step(td)`` return TensorDicts in the TED layout; ``rollout`` stacks
rows to ``[T]`` (or ``[n, T]`` for batched envs). See :class:`EnvBase` for the
methods a training or collection loop may rely on.
"""

from __future__ import annotations

from rldata.envs.batched import ParallelEnv, SerialEnv
from rldata.envs.common import EnvBase
from rldata.envs.gym import GymEnv, GymWrapper
from rldata.envs.transforms import (
    Compose,
    DoubleToFloat,
    InitTracker,
    ObservationNorm,
    RewardSum,
    StepCounter,
    TransformedEnv,
)
from rldata.ted import step_mdp

__all__ = [
    "GymEnv",
    "GymWrapper",
    "SerialEnv",
    "ParallelEnv",
    "TransformedEnv",
    "Compose",
    "StepCounter",
    "RewardSum",
    "DoubleToFloat",
    "ObservationNorm",
    "InitTracker",
    "EnvBase",
    "step_mdp",
]
