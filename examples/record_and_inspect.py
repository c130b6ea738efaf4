"""Record a dataset, look inside it, and sample from it: the store's life in five steps.

1. ``rldata.record`` runs an environment (random actions here) and writes a store.
2. ``rldata.record(..., resume=True)`` appends more episodes; trajectory ids continue.
3. ``rldata.open`` reads the manifest (provenance, env, schema), the episode table and
   whole episodes, without loading the payload into memory.
4. ``rldata.load`` turns the store into a replay buffer: uniform transitions ...
5. ... or contiguous slices of episodes with a ``SliceSampler``.

Run:
    python examples/record_and_inspect.py --path datasets/pendulum-inspect --frames 1000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import rldata
from rldata.data import SliceSampler
from rldata.envs import GymEnv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--path", default=None, help="a new store directory (default: temporary)")
    p.add_argument("--env", default="Pendulum-v1", help="gymnasium id")
    p.add_argument("--frames", type=int, default=1000, help="transitions in the first recording")
    p.add_argument("--more-frames", type=int, default=400, help="transitions appended after")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--slice-len", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    path = args.path or os.path.join(tempfile.mkdtemp(prefix="rldata-inspect-"), "dataset")

    # 1. record: a new store at `path`, committed as it fills and when recording ends
    env = GymEnv(args.env)
    env.set_seed(args.seed)
    summary = rldata.record(env, path, frames=args.frames, provenance={"seed": args.seed})
    print(f"recorded {summary.frames} frames, {summary.episodes} finished episodes -> {path}")

    # 2. resume: append to the same store; new trajectory ids start after the stored ones
    more = rldata.record(GymEnv(args.env), path, frames=args.more_frames, resume=True)
    print(f"appended {more.frames} frames, first new trajectory id {more.first_traj_id}")

    # 3. open read-only: metadata, the episode table, one episode
    store = rldata.open(path)
    print(store)
    manifest = store.manifest
    print("env:       ", manifest["env"])
    print("provenance:", manifest["provenance"])
    print("schema:    ", json.dumps(store.schema))
    print("specs:     ", store.specs)

    episodes = store.episodes()  # one row per episode: traj_id, start, length, return, flags
    print(f"{len(episodes)} episodes; the first ones:")
    for row in range(min(len(episodes), 10)):
        print(
            f"  episode {row}: traj_id {int(episodes['traj_id'][row])}  "
            f"start {int(episodes['start'][row]):5d}  length {int(episodes['length'][row]):4d}  "
            f"return {float(episodes['return'][row]):9.1f}  "
            f"terminated {bool(episodes['terminated'][row])}  "
            f"truncated {bool(episodes['truncated'][row])}"
        )
    first = store.episode(0)  # its rows [T], in time order
    print(
        f"episode 0: {first.batch_size[0]} rows, reward sum {float(first['next', 'reward'].sum()):.1f}"
    )

    # 4. load as a replay buffer and sample transitions
    buffer = rldata.load(path, batch_size=args.batch_size)
    batch = buffer.sample()
    print(
        f"buffer of {len(buffer)} rows; a batch: {tuple(batch.batch_size)}, keys {sorted(batch.keys())}"
    )

    # 5. sample contiguous slices of episodes instead (e.g. for sequence models)
    slices = rldata.load(
        path, sampler=SliceSampler(slice_len=args.slice_len), batch_size=args.batch_size
    ).sample()
    slices = slices.reshape(-1, args.slice_len)
    print(f"slices: {tuple(slices.batch_size)}, one trajectory id per slice")

    return {
        "path": path,
        "summary": summary,
        "more": more,
        "manifest": manifest,
        "episodes": episodes,
        "first_episode": first,
        "rows": len(buffer),
        "batch": batch,
        "slices": slices,
    }


if __name__ == "__main__":
    main()
