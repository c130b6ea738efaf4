"""A 1-D gymnasium env for benchmarks: a point on a line, steered back towards 0.

Its step is a few numpy operations, so a recording's time is almost all per-step
overhead (policy call, tensor conversion, bookkeeping) rather than physics. Importing
this module registers ``Line1D-v0``; a subprocess names it ``_line_env:Line1D-v0`` with
``benchmarks/`` on ``PYTHONPATH`` (gymnasium imports the module part of the id).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "Line1D-v0"
LENGTH = 200


class Line1D(gym.Env):
    """Observation ``[x]`` in [-2, 2], action ``[a]`` in [-1, 1], ``x += 0.1 a``, reward ``-|x|``;
    an episode is truncated after ``length`` steps."""

    def __init__(self, length: int = LENGTH) -> None:
        self.observation_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.length = length
        self.t = 0
        self.x = np.zeros(1, np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.x = self.np_random.uniform(-1.0, 1.0, (1,)).astype(np.float32)
        return self.x.copy(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        self.x = np.clip(self.x + 0.1 * np.asarray(action, np.float32), -2.0, 2.0)
        return self.x.copy(), float(-abs(self.x[0])), False, self.t >= self.length, {}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=Line1D)
