"""A small gymnasium env with a nested Dict observation, registered on import.

``{"goal": (2,), "observation": {"pos": (2,), "vel": (1,)}}``: a point on a plane pushed
toward a goal, with a Box or a Discrete action, or with an image leaf besides (refused by
the trainers). A CLI run names it ``tests.trainers.dict_env:RldataDictLine-v0``, which
gymnasium imports before it looks the id up.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

BOX_ENV = "RldataDictLine-v0"
DISCRETE_ENV = "RldataDictLineDiscrete-v0"
IMAGE_ENV = "RldataDictImage-v0"  # an (8, 8, 3) uint8 leaf besides
MODE_ENV = "RldataDictLineMode-v0"  # a Discrete(3) leaf "mode" besides: the push's gain


class DictLine(gym.Env):
    """A point on a plane pushed toward a goal; observes a nested Dict."""

    def __init__(self, discrete: bool = False, image: bool = False, mode: bool = False) -> None:
        state = spaces.Dict(
            {
                "vel": spaces.Box(-5, 5, (1,), np.float32),
                "pos": spaces.Box(-5, 5, (2,), np.float32),
            }
        )
        obs = {"observation": state, "goal": spaces.Box(-1, 1, (2,), np.float32)}
        if image:
            obs["pixels"] = spaces.Box(0, 255, (8, 8, 3), np.uint8)
        if mode:
            obs["mode"] = spaces.Discrete(3)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Discrete(3) if discrete else spaces.Box(-1, 1, (1,), np.float32)
        self.discrete, self.image, self.mode = discrete, image, mode

    def _obs(self) -> dict:
        obs = {
            "observation": {"pos": self.x.copy(), "vel": self.v.copy()},
            "goal": self.goal.copy(),
        }
        if self.image:
            obs["pixels"] = np.zeros((8, 8, 3), np.uint8)
        if self.mode:
            obs["mode"] = self.gain
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.v = np.zeros(1, np.float32)
        self.gain = int(self.np_random.integers(3))
        return self._obs(), {}

    def step(self, action):
        push = float(action) - 1.0 if self.discrete else float(np.asarray(action).reshape(-1)[0])
        gain = 1 + self.gain if self.mode else 1
        self.x = np.clip(self.x + 0.1 * gain * push, -5, 5).astype(np.float32)
        self.v[:] = push
        return self._obs(), -float(np.abs(self.x - self.goal).sum()), False, False, {}


for _id, _kwargs in (
    (BOX_ENV, {}),
    (DISCRETE_ENV, {"discrete": True}),
    (IMAGE_ENV, {"image": True}),
    (MODE_ENV, {"mode": True}),
):
    if _id not in gym.registry:
        gym.register(_id, entry_point=f"{__name__}:DictLine", kwargs=_kwargs, max_episode_steps=20)
