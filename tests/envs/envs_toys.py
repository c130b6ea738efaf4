"""Small environments for the env tests: a configurable gymnasium env and a float64 EnvBase."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rldata.envs import EnvBase
from rldata.envs._td import make_td
from rldata.envs.common import done_spec_for
from rldata.specs import Bounded, Composite, Unbounded


class ToyGym(gym.Env):
    """Counts steps; terminates after ``length`` steps; remembers the last action it got.

    The observation is ``[t, t, t]`` (float64 by default) so tests can read the step
    index back from it; ``render()`` returns a small uint8 frame filled with ``t``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        action_space: spaces.Space | None = None,
        observation_space: spaces.Space | None = None,
        length: int = 4,
        render_mode: str | None = "rgb_array",
    ) -> None:
        self.action_space = action_space or spaces.Discrete(3)
        self.observation_space = observation_space or spaces.Box(
            -np.inf, np.inf, (3,), dtype=np.float64
        )
        self.length = length
        self.render_mode = render_mode
        self.t = 0
        self.last_action: Any = None

    def _obs(self) -> Any:
        if isinstance(self.observation_space, spaces.Dict):
            return {
                "position": np.full((2,), self.t, dtype=np.float64),
                "mode": self.t % 2,
            }
        return np.full(self.observation_space.shape, self.t, dtype=self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.last_action = action
        self.t += 1
        return self._obs(), float(self.t), self.t >= self.length, False, {}

    def render(self) -> np.ndarray:
        return np.full((8, 6, 3), self.t, dtype=np.uint8)


class Float64Env(EnvBase):
    """An EnvBase whose observation, reward and action are all float64 (for DoubleToFloat)."""

    def __init__(self) -> None:
        super().__init__((), None)
        self.observation_spec = Composite(
            {"observation": Unbounded((2,), dtype=torch.float64)}, device=self.device
        )
        self.action_spec = Bounded(-1.0, 1.0, (1,), dtype=torch.float64)
        self.reward_spec = Unbounded((1,), dtype=torch.float64)
        self.done_spec = done_spec_for(self.batch_size, self.device)
        self.seen_action_dtypes: list[torch.dtype] = []
        self.t = 0

    def _flags(self) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(1, dtype=torch.bool) for k in ("done", "terminated", "truncated")}

    def _reset(self, tensordict: Any) -> Any:
        self.t = 0
        obs = torch.zeros(2, dtype=torch.float64)
        return make_td({"observation": obs, **self._flags()}, self.batch_size, self.device)

    def _step(self, tensordict: Any) -> Any:
        action = self._get_action(tensordict)
        self.seen_action_dtypes.append(action.dtype)
        self.t += 1
        obs = torch.full((2,), float(self.t), dtype=torch.float64)
        reward = action.reshape(1).to(torch.float64)
        return make_td(
            {"observation": obs, "reward": reward, **self._flags()}, self.batch_size, self.device
        )

    def _set_seed(self, seed: int) -> None:
        return None
