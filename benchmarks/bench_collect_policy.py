"""Recording with a trained policy: ``rldata collect --policy RUN`` against a Python loop.

The same work on every side: the same env, the same policy loaded from the same training
run directory (``rldata train --out RUN``, trained once at the start), the same frames, seed
0, a new memmap store with durable commits every 10,000 frames, kept rows of 1,000 frames.

- ``rldata collect ... --policy RUN`` (the CLI, in a subprocess, ``--quiet``); its process
  start-up (interpreter, imports, env, policy, store creation: the same command with
  ``--frames 1``) is its own row and is subtracted, round by round, for its rate.
- ``rldata.record(env_id, path, policy=RUN, frames=N)`` in this process.
- A Python loop a user would write: ``rldata.load_policy(RUN)``, ``gym.make``, the
  policy's network on each observation under ``torch.no_grad()``, rows kept in numpy and
  appended to the store as TED TensorDicts of 1,000 frames, committed every 10,000. It runs
  with torch's default threads (what a script gets) and with ``torch.set_num_threads(1)``.

Envs: ``Line1D-v0`` (benchmarks/_line_env.py: a 1-D point, so the time is per-step overhead)
and Pendulum-v1. Contenders run in interleaved rounds; each cell is the median of all rounds
with the min-max spread; ratios are taken round by round against the faster Python loop.
Target: the CLI (minus start-up) at >= 0.8x the Python-driven rate.

Run:  python benchmarks/bench_collect_policy.py [--frames 5000] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _line_env  # noqa: E402, F401  (registers Line1D-v0)
import _report as rep  # noqa: E402

import rldata  # noqa: E402
from rldata import stores  # noqa: E402
from rldata.envs import GymEnv  # noqa: E402
from rldata.recording import DEFAULT_COMMIT_EVERY, _env_specs  # noqa: E402

ENVS = {"Line1D-v0": "_line_env:Line1D-v0", "Pendulum-v1": "Pendulum-v1"}
KEEP = 1000  # rows per append, as the collector's batches
TRAIN_FRAMES = 1100
TARGET = 0.8
DEFAULT_THREADS = torch.get_num_threads()
RATE = re.compile(r"([\d,.]+) frames/s")


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(rep.ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "rldata_cli.main", *args]


def train_run(env_arg: str, out: Path) -> Path:
    """A real training run directory: SAC for a few frames (the policy's quality does not matter)."""
    subprocess.run(
        _cli("train", "--algo", "sac", "--env", env_arg, "--frames", str(TRAIN_FRAMES))
        + ["--seed", "0", "--out", str(out), "--quiet"],
        check=True,
        env=_cli_env(),
        cwd=rep.ROOT,
        stdout=subprocess.DEVNULL,
    )
    return out


def cli_collect(
    env_arg: str, run: Path, out: Path, frames: int
) -> Callable[[], tuple[float, float]]:
    """``(wall seconds, frames/s the CLI printed)``: its plain progress line on stderr times
    the recording loop alone, after start-up (imports, env, policy, store creation)."""
    argv = _cli("collect", env_arg, "--policy", str(run), "--frames", str(frames))
    argv += ["--out", str(out), "--seed", "0"]

    def go() -> tuple[float, float]:
        shutil.rmtree(out, ignore_errors=True)
        box: list[subprocess.CompletedProcess] = []
        wall = rep.timed(
            lambda: box.append(
                subprocess.run(
                    argv,
                    check=True,
                    env=_cli_env(),
                    cwd=rep.ROOT,
                    capture_output=True,
                    text=True,
                )
            )
        )
        rates = RATE.findall(box[0].stderr)
        return wall, float(rates[-1].replace(",", "")) if rates else float("nan")

    return go


def api_record(env_id: str, run: Path, out: Path, frames: int) -> Callable[[], tuple[float, float]]:
    """``(wall seconds, seconds of the recording loop)`` of ``rldata.record``."""

    def go() -> tuple[float, float]:
        shutil.rmtree(out, ignore_errors=True)
        box = []
        wall = rep.timed(
            lambda: box.append(rldata.record(env_id, out, policy=str(run), frames=frames, seed=0))
        )
        return wall, box[0].seconds

    return go


def python_loop(
    env_id: str, run: Path, out: Path, frames: int, threads: int
) -> tuple[float, float]:
    """``(wall seconds, seconds of the loop)`` of a hand-written loop: load the policy, make
    the env, create the store, step with the policy and write the same rows."""
    shutil.rmtree(out, ignore_errors=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        box: list[float] = []
        wall = rep.timed(lambda: box.append(_python_loop(env_id, run, out, frames)))
        return wall, box[0]
    finally:
        torch.set_num_threads(before)


def _python_loop(env_id: str, run: Path, out: Path, frames: int) -> float:
    policy = rldata.load_policy(run)
    net = policy.module  # observation tensor -> action tensor
    env = gym.make(env_id)
    specs = _env_specs(GymEnv(env_id))
    store = stores.create(out, backend="memmap", specs=specs, env_id=env_id)
    start = time.perf_counter()
    obs, _ = env.reset(seed=0)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    traj, done, since = 0, 0, 0
    with torch.no_grad():
        while done < frames:
            n = min(KEEP, frames - done)
            o = np.empty((n, *obs_shape), np.float32)
            no = np.empty_like(o)
            a = np.empty((n, *act_shape), np.float32)
            r = np.empty((n, 1), np.float32)
            term = np.zeros((n, 1), bool)
            trunc = np.zeros((n, 1), bool)
            ids = np.empty(n, np.int64)
            for t in range(n):
                act = net(torch.from_numpy(obs)).numpy()
                o[t], a[t], ids[t] = obs, act, traj
                obs, rew, te, tr, _ = env.step(act)
                no[t], r[t] = obs, rew
                if te or tr:
                    term[t], trunc[t] = te, tr
                    obs, _ = env.reset()
                    traj += 1
            zeros = torch.zeros(n, 1, dtype=torch.bool)
            td = TensorDict(
                {
                    "observation": torch.from_numpy(o),
                    "action": torch.from_numpy(a),
                    "done": zeros,
                    "terminated": zeros,
                    "truncated": zeros,
                    "collector": {"traj_ids": torch.from_numpy(ids)},
                    "next": {
                        "observation": torch.from_numpy(no),
                        "reward": torch.from_numpy(r),
                        "done": torch.from_numpy(term | trunc),
                        "terminated": torch.from_numpy(term),
                        "truncated": torch.from_numpy(trunc),
                    },
                },
                batch_size=[n],
            )
            store.append(td)
            done += n
            since += n
            if since >= DEFAULT_COMMIT_EVERY:
                store.commit()
                since = 0
    store.commit()
    seconds = time.perf_counter() - start
    store.close()
    env.close()
    return seconds


def bench_env(env_id: str, run: Path, tmp: Path, frames: int, n_rounds: int) -> list[list[str]]:
    env_arg = ENVS[env_id]
    out = {k: tmp / f"{k}-{env_id}" for k in ("startup", "cli", "record", "loop")}
    fns: dict[str, Callable[[], tuple[float, float]]] = {
        "startup": cli_collect(env_arg, run, out["startup"], 1),
        "cli": cli_collect(env_arg, run, out["cli"], frames),
        "record": api_record(env_id, run, out["record"], frames),
        "loop": lambda: python_loop(env_id, run, out["loop"], frames, DEFAULT_THREADS),
        "loop1": lambda: python_loop(env_id, run, out["loop"], frames, 1),
    }
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(n_rounds):  # interleaved: every contender once per round, in turn
        for key, fn in fns.items():
            got[key].append(fn())
    wall = {k: [w for w, _ in v] for k, v in got.items()}
    startup = wall["startup"]
    minus = [c - s for c, s in zip(wall["cli"], startup, strict=True)]
    rate = {  # frames/s of the recording itself, start-up left out
        "cli-minus": [frames / x for x in minus],
        "cli": [r for _, r in got["cli"]],
        "record": [frames / x for _, x in got["record"]],
        "loop": [frames / x for _, x in got["loop"]],
        "loop1": [frames / x for _, x in got["loop1"]],
    }
    best = [max(x, y) for x, y in zip(rate["loop"], rate["loop1"], strict=True)]
    rows = [
        [
            env_id,
            "`rldata collect` start-up: the same command with `--frames 1`",
            rep.spread(startup, "s"),
            "–",
            "–",
        ]
    ]
    sides = [
        ("cli-minus", "`rldata collect --policy RUN`: wall time minus start-up", minus),
        ("cli", "`rldata collect --policy RUN`: the rate it prints", wall["cli"]),
        ("record", "`rldata.record(env_id, path, policy=RUN)`", wall["record"]),
        ("loop", f"Python loop, torch's default threads ({DEFAULT_THREADS})", wall["loop"]),
        ("loop1", "Python loop, `torch.set_num_threads(1)`", wall["loop1"]),
    ]
    for key, label, seconds in sides:
        ratio = rep.per_round(rate[key], best)
        cell = rep.spread(ratio, "x", bold=key == "cli")
        if key == "cli":
            cell += f" (target ≥ {TARGET}x: {'met' if rep.med(ratio) >= TARGET else 'missed'})"
        rows.append(
            [
                env_id,
                label,
                rep.spread(seconds, "s"),
                rep.spread(rate[key], bold=key == "cli"),
                cell,
            ]
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    ap.add_argument(
        "--write", action="store_true", help="write benchmarks/RESULTS-collect-policy.md"
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_collect_policy_"))
    try:
        rows: list[list[str]] = []
        for env_id in args.envs:
            run = train_run(ENVS[env_id], tmp / f"run-{env_id}")
            rows += bench_env(env_id, run, tmp, args.frames, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    head = ["env", "side", "wall s (median, min-max)", "frames/s", "vs the faster Python loop"]
    body = rep.table(head, rows, "llrrr")
    print(body)
    if args.write:
        note = (
            f"{args.frames:,} frames per contender, {args.rounds} interleaved rounds. Policy: SAC's "
            f"deterministic actor (256x256 MLP) exported by `rldata train --frames {TRAIN_FRAMES}`. "
            "Store: memmap, durable commits every 10,000 frames. Rates leave start-up out: the "
            "CLI's is its frames over its wall time minus the start-up row's (round by round), and "
            "the rate its progress line prints (the recording loop alone); `record`'s and the "
            "loops' are their frames over their recording loop's seconds (the wall column adds "
            "loading the policy and creating the store). Every ratio is against the faster of the "
            "two Python loops in the same round."
        )
        cmd = f"python benchmarks/bench_collect_policy.py --frames {args.frames} --rounds {args.rounds} --write"
        rep.write_results(
            "collect-policy",
            "Recording with a trained policy: CLI against a Python loop",
            cmd,
            [note, rep.region("collect-policy", body)],
        )


if __name__ == "__main__":
    main()
