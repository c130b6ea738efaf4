"""Evaluation: the deterministic policy for N episodes on fixed seeds.

Every evaluation of a run uses the same seeds (``seed + 10_000 + i`` for episode ``i``),
so two evaluations differ only by the policy, and two runs with one seed see the same
starting states. The exploration type is DETERMINISTIC: a Gaussian policy acts with
its (squashed) mean, exploration noise is off.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata.envs.utils import ExplorationType, set_exploration_type
from rldata.ted import TED_KEYS

EVAL_SEED_OFFSET = 10_000
MAX_EPISODE_STEPS = 100_000


@dataclass(frozen=True)
class EvalResult:
    """Returns of the evaluation episodes and their mean, std (population) and lengths."""

    returns: tuple[float, ...]
    lengths: tuple[int, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.returns) if self.returns else math.nan

    @property
    def std(self) -> float:
        return statistics.pstdev(self.returns) if self.returns else math.nan


class _OnDevice:
    """Run a policy that lives on ``device`` from an env on the CPU."""

    def __init__(self, policy: Any, device: torch.device) -> None:
        self.policy, self.device = policy, device

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        if self.device.type == "cpu":
            return self.policy(td)
        out = self.policy(td.to(self.device))
        td.set(TED_KEYS.action, out.get(TED_KEYS.action).to(td.device or "cpu"))
        return td


def evaluate_policy(
    policy: Any,
    env: Any,
    episodes: int,
    seed: int,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Run ``episodes`` deterministic episodes of ``policy`` in ``env`` (one env, unbatched).

    Args:
        policy: a TensorDict policy writing ``"action"``.
        env: an rldata env (e.g. ``GymEnv("Pendulum-v1")``); it is reseeded per episode.
        episodes: how many episodes.
        seed: the run's seed; episode ``i`` uses ``seed + 10_000 + i``.
        device: where ``policy`` lives.
    """
    act = _OnDevice(policy, torch.device(device))
    returns, lengths = [], []
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        for i in range(episodes):
            env.set_seed(seed + EVAL_SEED_OFFSET + i)
            rollout = env.rollout(MAX_EPISODE_STEPS, act)
            returns.append(float(rollout.get(TED_KEYS.nxt(TED_KEYS.reward)).sum()))
            lengths.append(int(rollout.batch_size[-1]))
    return EvalResult(tuple(returns), tuple(lengths))
