"""Frames/s of ``GymEnv("Pendulum-v1").rollout(1000)`` next to a raw gymnasium loop.

Two pairings, each run side by side in this process, repeats interleaved, median kept:

- ``random``: each side draws its own uniform random actions the way its users do
  (``env.action_space.sample()`` in the raw loop; the rollout's default random policy).
- ``replay``: both sides step the very same pre-drawn action sequence (the rollout gets
  it from a policy that reads a tensor), so the ratio is the pure wrapper overhead;
  with the same seed both produce identical observations, which is checked.

The rollout keeps every transition as TED rows and stacks them into one TensorDict;
the raw loop keeps nothing. Both reset when the episode ends (200 steps).

Run: ``python benchmarks/bench_envs.py [--steps 1000] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

from rldata.envs import GymEnv

ENV_ID = "Pendulum-v1"


def raw_random(env: gym.Env, steps: int) -> None:
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()


def raw_replay(env: gym.Env, actions: np.ndarray) -> np.ndarray:
    obs, _ = env.reset(seed=0)
    last = obs
    for a in actions:
        last, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return last


def rldata_random(env: GymEnv, steps: int) -> None:
    env.set_seed(0)
    env.rollout(steps, break_when_any_done=False)


def rldata_replay(env: GymEnv, actions: torch.Tensor) -> torch.Tensor:
    i = iter(actions)

    def policy(td):
        td.set("action", next(i))
        return td

    env.set_seed(0)
    rows = env.rollout(len(actions), policy=policy, break_when_any_done=False)
    return rows["next", "observation"][-1]


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.steps

    raw = gym.make(ENV_ID)
    env = GymEnv(ENV_ID)
    rng = np.random.default_rng(0)
    actions_np = rng.uniform(-2.0, 2.0, size=(steps, 1)).astype(np.float32)
    actions_t = torch.from_numpy(actions_np.copy())

    # same actions, same seed -> same trajectory (the comparison is apples to apples)
    np.testing.assert_allclose(
        raw_replay(raw, actions_np), rldata_replay(env, actions_t).numpy(), rtol=1e-5, atol=1e-5
    )

    results: dict[str, dict[str, list[float]]] = {
        "random": {"raw": [], "rldata": []},
        "replay": {"raw": [], "rldata": []},
    }
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both sides
        results["random"]["raw"].append(timed(raw_random, raw, steps))
        results["random"]["rldata"].append(timed(rldata_random, env, steps))
        results["replay"]["raw"].append(timed(raw_replay, raw, actions_np))
        results["replay"]["rldata"].append(timed(rldata_replay, env, actions_t))

    print(
        f"{ENV_ID}, {steps} steps per run, median of {args.repeats} interleaved runs, "
        f"torch threads=1"
    )
    print(f"{'actions':<8} | {'raw gymnasium loop':>20} | {'rldata rollout':>16} | {'overhead':>9}")
    print(f"{'-' * 8} | {'-' * 20} | {'-' * 16} | {'-' * 9}")
    for name, res in results.items():
        raw_s = statistics.median(res["raw"])
        ours_s = statistics.median(res["rldata"])
        print(
            f"{name:<8} | {steps / raw_s:>14,.0f} fps | {steps / ours_s:>10,.0f} fps | "
            f"{ours_s / raw_s:>8.2f}x"
        )


if __name__ == "__main__":
    main()
