"""What one commit costs as an append-only memmap store grows: the time to append and commit
10k HalfCheetah-shaped rows (obs 17, action 6, 1000-step episodes) into a store of 1M, 10M and
30M rows, and the manifest's size there. Issue 19's target: commit time at 30M rows <= 1.2x
at 1M. Each size is its own store, built with commits of ``--bulk`` rows and the default durability
(``durable=True``: every commit fsyncs); the measured commits then alternate between the
stores, round by round, so a busy machine slows every size alike. ``mf.write`` is timed
alone to show what the manifest costs, beside its ``checksums`` section (format 1.6 keeps the
full chunks' digests in ``chunks.sha256``; before, they grew the manifest with the rows).

Usage: ``python benchmarks/bench_commit.py [--rows 1000000 10000000 30000000] [--commits 7]
[--profile] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import halfcheetah_block  # noqa: E402

from rldata import stores  # noqa: E402
from rldata.stores.format import manifest as mf  # noqa: E402

SMALL_EPISODES = 10  # 10,000 rows a measured commit


def _shift(td, episodes: int):  # noqa: ANN001, ANN202
    """The same rows as the next ``episodes`` trajectories (fresh traj ids)."""
    td["collector", "traj_ids"] += episodes
    return td


MANIFEST_WRITES: list[float] = []
_write = mf.write


def _timed_write(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
    """``manifest.write`` (serialize, self-checksum, write, fsync, rename), timed."""
    t0 = time.perf_counter()
    _write(*args, **kwargs)
    MANIFEST_WRITES.append(time.perf_counter() - t0)


def _build(root: Path, rows: int, bulk: int, commits: int) -> tuple[object, int, float]:
    """A store of ``rows - commits * 10k`` rows written in commits of ``bulk`` rows, left open
    for writing; return it, the next traj id and the build time."""
    t0 = time.perf_counter()
    w = stores.create(root)  # durable=True: the default
    fill = (rows - commits * 1000 * SMALL_EPISODES) // 1000
    traj, big = 0, None
    while traj < fill:
        eps = min(bulk // 1000, fill - traj)
        if big is None or len(big) != eps * 1000:
            big = halfcheetah_block(traj, eps, seed=traj)
        else:
            big = _shift(big, eps)
        w.append(big)
        w.commit()
        traj += eps
    return w, traj, time.perf_counter() - t0


def _fmt(xs: list[float]) -> str:
    ms = [x * 1e3 for x in xs]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}–{max(ms):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000])
    ap.add_argument("--commits", type=int, default=7)
    ap.add_argument("--bulk", type=int, default=1_000_000, help="rows of a building commit")
    ap.add_argument("--profile", action="store_true", help="print the last commit's top functions")
    ap.add_argument("--dir", default=None, help="where to build the stores (deleted after)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-commit-", dir=args.dir))
    sizes = sorted(args.rows)
    writers, trajs = [], []
    out: dict[int, dict[str, list[float]]] = {
        n: {"append": [], "commit": [], "manifest": []} for n in sizes
    }
    mf.write = _timed_write
    try:
        for n in sizes:
            w, traj, took = _build(base / f"s{n}", n, args.bulk, args.commits)
            writers.append(w)
            trajs.append(traj)
            print(f"built {n:,} rows in {took:.0f} s", flush=True)
        small = halfcheetah_block(0, SMALL_EPISODES, seed=7)
        # rounds alternate the sizes, so a busy machine slows every size alike
        for k in range(args.commits):
            for i, (n, w) in enumerate(zip(sizes, writers)):
                small["collector", "traj_ids"] += trajs[i] - int(small["collector", "traj_ids"][0])
                trajs[i] += SMALL_EPISODES
                t0 = time.perf_counter()
                w.append(small)
                t1 = time.perf_counter()
                MANIFEST_WRITES.clear()
                if args.profile and k == args.commits - 1:
                    prof = cProfile.Profile()
                    prof.enable()
                    w.commit()
                    prof.disable()
                    text = io.StringIO()
                    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(8)
                    print(f"{n:,} rows, one commit:\n{text.getvalue()}", flush=True)
                else:
                    w.commit()
                t2 = time.perf_counter()
                out[n]["append"].append(t1 - t0)
                out[n]["commit"].append(t2 - t1)
                out[n]["manifest"].append(sum(MANIFEST_WRITES))
        rows = []
        for n, w in zip(sizes, writers):
            root = w.root
            reads = []
            for _ in range(args.commits):  # what every open pays: read, self-checksum, check
                t0 = time.perf_counter()
                mf.read(root)
                reads.append(time.perf_counter() - t0)
            out[n]["read"] = reads
            rows.append(
                (
                    len(w),
                    out[n],
                    (root / "rldata.json").stat().st_size,
                    len(json.dumps(json.loads((root / "rldata.json").read_bytes())["checksums"])),
                    (root / "chunks.sha256").stat().st_size
                    if (root / "chunks.sha256").exists()
                    else 0,
                    (root / "stats.log").stat().st_size,
                    sum(1 for _ in root.iterdir()),
                )
            )
            w.close()
    finally:
        mf.write = _write
        shutil.rmtree(base, ignore_errors=True)
    print()
    print("<!-- table:commit -->")
    print(
        f"| rows in the store | commit of 10k rows, ms: median (min–max), {args.commits} commits "
        "| of which the manifest's write, ms | manifest read, ms | append of 10k rows, ms "
        "| manifest, bytes "
        "| its checksums, bytes | chunks.sha256, bytes | stats.log, bytes "
        "| files in the store's root |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, t, manifest, sums, sidecar, stats_log, files in rows:
        print(
            f"| {n:,} | {_fmt(t['commit'])} | {_fmt(t['manifest'])} | {_fmt(t['read'])} "
            f"| {_fmt(t['append'])} "
            f"| {manifest:,} | {sums:,} | {sidecar:,} | {stats_log:,} | {files} |"
        )
    print("<!-- /table:commit -->")
    first = statistics.median(rows[0][1]["commit"])
    last = statistics.median(rows[-1][1]["commit"])
    print(f"commit at {rows[-1][0]:,} / at {rows[0][0]:,} rows: {last / first:.2f}x")


if __name__ == "__main__":
    main()
