"""Offline to online: start from a recorded dataset, keep learning in the environment.

A dataset (here: random Pendulum play, recorded once) and a live environment feed one
learner. Every batch mixes dataset rows and fresh rows at ``--offline-ratio`` (symmetric
sampling as in RLPD, Ball et al. 2023: half and half by default), so the new experience
is not drowned by a large dataset. Fresh rows go to their own replay (``--store`` keeps
it as a dataset); the dataset itself is never written to.

The same, from the shell:
    rldata train --algo sac --dataset PATH --env Pendulum-v1 --frames 5000 --out RUN

Run:
    python examples/offline_to_online.py --frames 5000
"""

from __future__ import annotations

import argparse
import os
import tempfile

import rldata
from rldata.envs import GymEnv
from rldata.trainers import TrainConfig, Trainer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # dataset
    p.add_argument("--path", default=None, help="dataset directory (default: a temporary one)")
    p.add_argument("--dataset-frames", type=int, default=10_000, help="transitions to record")
    # schedule
    p.add_argument("--algo", default="sac", help="any of rldata.trainers.ALGORITHMS")
    p.add_argument("--frames", type=int, default=5_000, help="environment steps online")
    p.add_argument("--utd", type=float, default=1.0, help="updates per environment step")
    p.add_argument("--eval-every", type=int, default=1_000, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=2)
    # replay
    p.add_argument("--offline-ratio", type=float, default=0.5, help="dataset share per batch")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--store", default=None, help="record the online rows into a store here")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    path = args.path or os.path.join(tempfile.mkdtemp(prefix="rldata-o2o-"), "pendulum")
    if not os.path.exists(os.path.join(path, "rldata.json")):
        env = GymEnv("Pendulum-v1")
        env.set_seed(args.seed)
        rldata.record(env, path, frames=args.dataset_frames)
    dataset_rows = len(rldata.load(path))

    config = TrainConfig(
        algo=args.algo,
        dataset=path,
        env="Pendulum-v1",
        frames=args.frames,
        init_random_frames=0,  # the dataset already fills the first batches
        utd=args.utd,
        offline_ratio=args.offline_ratio,
        batch_size=args.batch_size,
        store=args.store,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
    )
    run = Trainer(config).fit()
    for e in run.evaluations:
        print(f"env steps {e['env_steps']:6d}  updates {e['updates']:6d}  eval {e['mean']:8.1f}")
    print(
        f"{run.mode}: {dataset_rows} dataset rows + {run.env_steps} fresh, {run.updates} "
        f"updates; eval return {run.eval_return_mean:.1f}"
    )
    return {
        "dataset_rows": dataset_rows,
        "dataset_rows_after": len(rldata.load(path)),
        "env_steps": run.env_steps,
        "updates": run.updates,
        "eval_returns": [e["mean"] for e in run.evaluations],
        "mode": run.mode,
    }


if __name__ == "__main__":
    main()
