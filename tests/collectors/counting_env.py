"""A tiny EnvBase-contract environment for collector tests that must not depend on gymnasium.

Each env counts up from a random start; episode ``k`` of env ``i`` lasts ``lengths[(i + k) % len]``
steps, so episode boundaries are known in advance and differ between envs.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rldata.specs import Bounded, Composite, Unbounded


class CountingEnv:
    """Observation ``[2]``: (env index, step within episode + offset); action ``[1]`` in [-1, 1]."""

    def __init__(self, batch_size=(), lengths=(3, 5, 2)) -> None:
        self.batch_size = torch.Size(batch_size)
        self.lengths = list(lengths)
        n = max(1, self.batch_size.numel())
        self._t = torch.zeros(n, dtype=torch.int64)
        self._ep = torch.zeros(n, dtype=torch.int64)
        self._offset = torch.zeros(n)
        self.gen = torch.Generator().manual_seed(0)
        self.action_spec = Bounded(-1.0, 1.0, (*self.batch_size, 1))
        self.observation_spec = Composite(
            {"observation": Unbounded((*self.batch_size, 2))}, shape=self.batch_size
        )
        self.closed = False

    def set_seed(self, seed: int) -> int:
        self.gen.manual_seed(seed)
        return seed + 1

    def _obs(self) -> torch.Tensor:
        idx = torch.arange(len(self._t), dtype=torch.float32)
        obs = torch.stack([idx, self._t.float() + self._offset], -1)
        return obs.reshape(*self.batch_size, 2)

    def _flags(self, value: torch.Tensor) -> torch.Tensor:
        return value.reshape(*self.batch_size, 1)

    def reset(self, td=None):
        n = len(self._t)
        mask = torch.ones(n, dtype=torch.bool)
        if td is not None and td.get("_reset", None) is not None:
            mask = td.get("_reset").reshape(n)
        self._t[mask] = 0
        self._offset[mask] = (
            torch.rand(int(mask.sum()), generator=self.gen).floor_() + 100 * self._ep[mask].float()
        )
        false = self._flags(torch.zeros(n, dtype=torch.bool))
        return TensorDict(
            {
                "observation": self._obs(),
                "done": false,
                "terminated": false.clone(),
                "truncated": false.clone(),
            },
            batch_size=self.batch_size,
        )

    def step(self, td):
        n = len(self._t)
        self._t += 1
        ends = torch.tensor(
            [
                self._t[i] >= self.lengths[(i + int(self._ep[i])) % len(self.lengths)]
                for i in range(n)
            ]
        )
        self._ep += ends.long()
        reward = td.get("action").reshape(n, -1).sum(-1, keepdim=True).reshape(*self.batch_size, 1)
        nxt = TensorDict(
            {
                "observation": self._obs(),
                "reward": reward.float(),
                "done": self._flags(ends),
                "terminated": self._flags(ends),
                "truncated": self._flags(torch.zeros(n, dtype=torch.bool)),
            },
            batch_size=self.batch_size,
        )
        td.set("next", nxt)
        return td

    def close(self) -> None:
        self.closed = True
