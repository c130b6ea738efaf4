"""DataLoader workers over a store: rows/s of one process vs ``num_workers=2``.

Both sides stream one full epoch of the same 1M-row HalfCheetah-shaped memmap store
(obs 17, action 6, 1000-step trajectories) through :class:`rldata.data.StoreDataset`
(blocks of the store's chunk, a shuffle buffer of 4 blocks, batches of 256 and of 4096):
"1 process"
iterates the dataset in the main process, "2 workers" iterates ``ds.loader(num_workers=2)``
(worker start-up and the hand-over of every batch to the main process included). The
rounds alternate the two sides; the ratio is taken round by round. The target (issue 19)
is 2 workers >= 1.6x one process, which needs two free cores: the load average before and
after the run is printed beside the cores.

Every batch a worker yields crosses to the main process, which unpickles it: a fixed cost
per batch in the one process that all workers feed, so small batches cap the speed-up (the
two batch sizes show how much).

Usage: ``python benchmarks/bench_loader.py [--rows 1000000] [--rounds 5] [--batch 256 4096]``
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import med, per_round, region, rounds, spread, table, write_results  # noqa: E402

from rldata import stores  # noqa: E402
from rldata.data import StoreDataset  # noqa: E402
from rldata.testing.ted_factory import ted_batch  # noqa: E402

TARGET = 1.6


def build(root: Path, rows: int) -> None:
    """``rows`` HalfCheetah-shaped rows: float32 obs [17], action [6], 1000-step episodes."""
    with stores.create(root, durable=False) as w:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            lengths = [1000] * (n // 1000) + ([n % 1000] if n % 1000 else [])
            w.append(
                ted_batch(lengths, start_traj_id=start // 1000, obs_shape=(17,), act_shape=(6,))
            )
        w.commit()


CPU: dict[tuple[int, int], list[float]] = {}  # (batch, workers) -> CPU s per 1M rows


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the workers)."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def epoch_rate(ds: StoreDataset, workers: int, epoch: int) -> float:
    """Rows/s of one epoch read through ``workers`` DataLoader workers (0: this process);
    records the CPU seconds per million rows of all processes in ``CPU``."""
    ds.set_epoch(epoch)
    c0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    it = iter(ds) if workers == 0 else iter(ds.loader(num_workers=workers))
    for td in it:
        n += td.batch_size[0]
    rate = n / (time.perf_counter() - t0)
    del it  # the workers exit and are reaped, so their CPU time counts
    CPU.setdefault((ds.batch_size, workers), []).append((cpu_seconds() - c0) * 1e6 / n)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    args = ap.parse_args()
    torch.set_num_threads(1)  # each reader one core, as DataLoader workers are
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rldata-loader-") as d:
        root = Path(d) / "s"
        t0 = time.perf_counter()
        build(root, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        epochs = iter(range(10**6))
        res: dict[int, dict[str, list[float]]] = {}
        for batch in args.batch:
            ds = StoreDataset(root, batch_size=batch, seed=0)
            res[batch] = rounds(
                {
                    "1 process": lambda ds=ds: epoch_rate(ds, 0, next(epochs)),
                    "2 workers": lambda ds=ds: epoch_rate(ds, 2, next(epochs)),
                },
                args.rounds,
            )
    load_after = os.getloadavg()[0]
    ratios = {b: per_round(r["2 workers"], r["1 process"]) for b, r in res.items()}
    free = cores - max(load_before, load_after)
    had = "yes" if free >= 2 else "no"
    rows = []
    for b, r in res.items():
        rows.append(
            [f"1 process, batch {b}", spread(r["1 process"]), "1.00x", spread(CPU[(b, 0)], "s")]
        )
        rows.append(
            [
                f"DataLoader, 2 workers, batch {b}",
                spread(r["2 workers"]),
                spread(ratios[b], "x", bold=True),
                spread(CPU[(b, 2)], "s"),
            ]
        )
    head = [
        "reader",
        "rows/s: median (min–max)",
        "vs 1 process",
        "CPU s per 1M rows, all processes",
    ]
    body = table(head, rows)
    bound = "; batch ".join(f"{b}: {2 * med(CPU[(b, 0)]) / med(CPU[(b, 2)]):.2f}x" for b in res)
    verdicts = "; ".join(
        f"batch {b}: {'met' if med(x) >= TARGET else f'missed by {TARGET - med(x):.2f}x'}"
        for b, x in ratios.items()
    )
    notes = (
        f"{args.rows:,} HalfCheetah-shaped rows (memmap), shuffle buffer 4 blocks, "
        f"{args.rounds} rounds of one epoch each side. Target 2 workers >= {TARGET}x one "
        f"process: {verdicts}. Two free cores: {had} ({cores} cores, 1-minute load average "
        f"{load_before:.1f} before, {load_after:.1f} after; free = cores - load). The CPU "
        f"column is the work itself, which load does not change: on two free cores, 2 workers "
        f"can be at most 2 x (1-process CPU) / (2-worker CPU) times as fast as one process "
        f"(batch {bound})."
    )
    print(body)
    print(notes)
    write_results(
        "loader",
        "StoreDataset: DataLoader workers vs one process",
        f"python benchmarks/bench_loader.py --rows {args.rows} --rounds {args.rounds} "
        f"--batch {' '.join(map(str, args.batch))}",
        [region("loader", body), notes],
    )


if __name__ == "__main__":
    main()
