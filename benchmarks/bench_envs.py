"""Frames/s of ``GymEnv("Pendulum-v1").rollout(1000)`` next to a raw gymnasium loop.

All rows run in this process, side by side, repeats interleaved (so machine load hits
both sides alike), median kept. Both sides reset when an episode ends (every 200 steps);
the rollout keeps every transition as TED rows stacked into one TensorDict, the raw loop
keeps nothing.

Rows:

1. ``rollout(1000)``: rldata's default random policy vs a raw loop stepping the very same
   actions (drawn from the env's seeded action stream beforehand). Both produce the same
   trajectory, which is checked.
2. ``rollout(1000, policy=...)``: a TensorDict policy that writes those same actions, so
   every step builds TensorDicts (what policy-driven rollouts pay) vs the same raw loop.
3. ``rollout(1000)`` vs a raw loop drawing ``env.action_space.sample()`` each step, the
   way a hand-written gymnasium random loop usually looks.

Run: ``python benchmarks/bench_envs.py [--steps 1000] [--repeats 9] [--write]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import per_round, region, spread, table, write_results  # noqa: E402

from rldata.envs import GymEnv  # noqa: E402

ENV_ID = "Pendulum-v1"
SEED = 0


def raw_replay(env: gym.Env, actions: np.ndarray) -> np.ndarray:
    obs, _ = env.reset(seed=SEED)
    for a in actions:
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return obs


def raw_sample(env: gym.Env, steps: int) -> None:
    env.reset(seed=SEED)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()


def rldata_random(env: GymEnv, steps: int) -> torch.Tensor:
    env.set_seed(SEED)
    rows = env.rollout(steps, break_when_any_done=False)
    return rows["next", "observation"][-1]


def rldata_policy(env: GymEnv, actions: torch.Tensor) -> torch.Tensor:
    stream = iter(actions)

    def policy(td):
        td.set("action", next(stream))
        return td

    env.set_seed(SEED)
    rows = env.rollout(len(actions), policy=policy, break_when_any_done=False)
    return rows["next", "observation"][-1]


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-envs.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = args.steps

    raw = gym.make(ENV_ID)
    env = GymEnv(ENV_ID)
    # the actions rollout() will draw after set_seed(SEED)
    env.set_seed(SEED)
    draw = env.action_stream()
    actions_t = torch.stack([draw() for _ in range(steps)])
    actions_np = actions_t.numpy().copy()

    # same actions, same seed -> same trajectory on every side
    last_raw = raw_replay(raw, actions_np)
    np.testing.assert_array_equal(last_raw, rldata_random(env, steps).numpy())
    np.testing.assert_array_equal(last_raw, rldata_policy(env, actions_t).numpy())

    names = ["raw_replay", "raw_sample", "rldata_random", "rldata_policy"]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        times["raw_replay"].append(timed(raw_replay, raw, actions_np))
        times["rldata_random"].append(timed(rldata_random, env, steps))
        times["rldata_policy"].append(timed(rldata_policy, env, actions_t))
        times["raw_sample"].append(timed(raw_sample, raw, steps))
    rows = [
        ("rollout(1000), random policy", "rldata_random", "same actions", "raw_replay"),
        ("rollout(1000, policy=td_policy)", "rldata_policy", "same actions", "raw_replay"),
        ("rollout(1000), random policy", "rldata_random", "action_space.sample()", "raw_sample"),
    ]
    cells = []
    for label, ours, raw_label, base in rows:
        cells.append(
            [
                f'`GymEnv("{ENV_ID}").{label}`',
                spread([steps / t for t in times[ours]]),
                raw_label,
                spread([steps / t for t in times[base]]),
                spread(per_round(times[ours], times[base]), "x", bold=True),
            ]
        )
    line = (
        f"{ENV_ID}, {steps} steps per run, median of {args.repeats} interleaved runs "
        "(min–max), 1 torch thread. The rollout keeps every transition as TED rows; the raw "
        "loop keeps nothing."
    )
    out = table(
        ["rldata", "fps", "raw gymnasium loop", "fps", "rldata / raw time"],
        rows=cells,
        align="lrlrr",
    )
    print(line, out, sep="\n\n")
    if args.write:
        write_results(
            "envs",
            "Environment rollouts",
            f"python benchmarks/bench_envs.py --write --repeats {args.repeats}",
            [region("envs", line + "\n\n" + out)],
        )


if __name__ == "__main__":
    main()
