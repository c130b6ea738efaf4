"""SAC offline: record a Pendulum dataset once, then train from the store alone.

``rldata.record`` runs a random policy in Pendulum and writes every transition to a store
on disk (committed as it goes). The ``Trainer`` then opens that store read-only and runs
the SAC update ``--steps`` times without touching the environment again, evaluating the
deterministic policy every ``--eval-every`` updates; the run directory keeps the metrics,
a checkpoint and the policy (``rldata eval RUN``, ``rldata collect --policy RUN``). A
second call with the same ``--path`` reuses the dataset.

The same, from the shell: ``rldata train --algo sac --dataset PATH --steps 5000 --out RUN``.

Run:
    python examples/sac_offline.py --path datasets/pendulum-random --frames 20000 --steps 5000
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile

import torch

import rldata
from rldata.envs import GymEnv
from rldata.trainers import TrainConfig, Trainer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # dataset
    p.add_argument("--path", default=None, help="store directory (default: a temporary one)")
    p.add_argument("--frames", type=int, default=20_000, help="transitions to record")
    # schedule
    p.add_argument("--steps", type=int, default=5_000, help="gradient updates")
    p.add_argument("--eval-every", type=int, default=500, help="updates between evaluations")
    p.add_argument("--eval-episodes", type=int, default=1, help="episodes per evaluation")
    # replay and loss (the rest: the registry's SAC defaults, see rldata.trainers.algorithms)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    path = args.path or os.path.join(tempfile.mkdtemp(prefix="rldata-sac-"), "pendulum")
    out = args.out or os.path.join(tempfile.mkdtemp(prefix="rldata-run-"), "sac")

    # 1. record (once): random actions, every transition committed to the store
    if not os.path.exists(os.path.join(path, "rldata.json")):
        env = GymEnv("Pendulum-v1")
        env.set_seed(args.seed)
        summary = rldata.record(env, path, frames=args.frames)
        print(
            f"recorded {summary.frames} frames, {summary.episodes} episodes, "
            f"mean return {summary.mean_return:.1f} -> {summary.path}"
        )

    # 2. train from the store: sample -> SAC loss -> Adam -> soft target update, evaluate
    config = TrainConfig(
        algo="sac",
        dataset=path,
        steps=args.steps,
        batch_size=args.batch_size,
        actor_lr=args.lr,
        critic_lr=args.lr,
        alpha_lr=args.lr,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        log_every=args.eval_every,
        seed=args.seed,
    )
    run = Trainer(config, out).fit()

    # 3. what the run wrote: one metrics row per eval_every updates
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    history = [
        {k: float(r[k]) for k in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha")}
        for r in rows
        if r["kind"] == "train"
    ]
    for e in run.evaluations:
        print(f"step {e['updates']:6d}  eval return {e['mean']:9.1f}")
    print(f"{run.updates} updates from {path}; eval return {run.eval_return_mean:.1f} -> {out}")
    return {
        "path": path,
        "rows": len(rldata.load(path)),
        "history": history,
        "eval_returns": [e["mean"] for e in run.evaluations],
        "run": out,
    }


if __name__ == "__main__":
    main()
