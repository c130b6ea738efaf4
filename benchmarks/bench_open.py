"""What readers and writers pay as a memmap store grows: a verified open plus the first
``sample(256)``, cold (the store's pages evicted with ``posix_fadvise``) and warm, the time
to commit 10k rows at the start and at the end of the store (between them, commits of
``--bulk`` rows build the store faster), and the number of files.
HalfCheetah-shaped rows (obs 17, action 6, 1000-step episodes), written once with block
digests (format 1.4: rows checked as reads touch them) and once without (as format 1.3:
every row checked at open), so both columns come from one run on the same machine.

Usage: ``python benchmarks/bench_open.py [--rows 1000000 10000000] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import halfcheetah_block  # noqa: E402

from rldata import stores  # noqa: E402
from rldata.stores.backend._memmap import MemmapStore  # noqa: E402

COMMIT_EPISODES = 10  # 10,000 rows a commit


def _build(root: Path, rows: int, digests: bool, bulk: int) -> tuple[float, float]:
    """Write ``rows`` rows: ten commits of 10k rows, then commits of ``bulk`` rows, then ten
    of 10k again; return the median time (append + commit, seconds) of the first ten and
    of the last ten (the store's size is what differs)."""
    MemmapStore.block_digests = digests
    first, last = [], []
    small = 10 * COMMIT_EPISODES * 1000
    try:
        with stores.create(root, durable=False) as w:
            traj = 0
            plan = [COMMIT_EPISODES] * 10
            middle = (rows - 2 * small) // 1000
            plan += [bulk // 1000] * (middle // (bulk // 1000))
            plan += [COMMIT_EPISODES] * 10
            for k, episodes in enumerate(plan):
                td = halfcheetah_block(traj, episodes, seed=k)
                traj += episodes
                t0 = time.perf_counter()
                w.append(td)
                w.commit()
                took = time.perf_counter() - t0
                if k < 10:
                    first.append(took)
                elif k >= len(plan) - 10:
                    last.append(took)
    finally:
        MemmapStore.block_digests = True
    return statistics.median(first), statistics.median(last)


def _evict(root: Path) -> None:
    """Drop the store's pages from the page cache (this process's files only; no root)."""
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _first_sample(root: Path, gen: torch.Generator) -> float:
    t0 = time.perf_counter()
    with stores.open(root) as r:
        r.get(torch.randint(0, len(r), (256,), generator=gen))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--bulk", type=int, default=100_000, help="rows a commit between the timed ones"
    )
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    print(
        "| rows | format | open + first sample(256), cold s | warm s | commit 10k rows at "
        "the start / at the end (median of 10), s | files |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory(prefix="rldata-open-", dir=".") as d:
            for digests, label in ((False, "1.3: every row at open"), (True, "1.4: on read")):
                root = Path(d) / f"s{int(digests)}"
                first, last = _build(root, rows, digests, args.bulk)
                files = sum(1 for p in root.rglob("*") if p.is_file())
                cold, warm = [], []
                for _ in range(args.rounds):
                    _evict(root)
                    cold.append(_first_sample(root, gen))
                    warm.append(_first_sample(root, gen))
                print(
                    f"| {rows:,} | {label} | {statistics.median(cold):.3f} "
                    f"| {statistics.median(warm):.3f} | {first:.3f} / {last:.3f} | {files} |",
                    flush=True,
                )
                shutil.rmtree(root)


if __name__ == "__main__":
    main()
