"""DataLoader workers over a store: rows/s of one process vs ``num_workers=2``.

Both sides stream one full epoch of the same 1M-row HalfCheetah-shaped memmap store
(obs 17, action 6, 1000-step trajectories) through :class:`rldata.data.StoreDataset`
(blocks of the store's chunk, a shuffle buffer of 4 blocks, batches of 256 and of 4096):
"1 process"
iterates the dataset in the main process; "2 new workers an epoch" iterates a new
``ds.loader(num_workers=2, persistent_workers=False)`` each epoch (worker start-up and the
hand-over of every batch to the main process included); "2 workers kept" iterates one
``ds.loader(num_workers=2)`` every epoch (its workers persist, the default since the epoch
reaches them through shared memory; the first round includes their start-up). The
rounds alternate the sides; the ratio is taken round by round. The target (issue 19)
is 2 workers >= 1.6x one process, which needs two free cores: the load average before and
after the run is printed beside the cores.

Every run of batches a worker yields crosses to the main process, which cuts it into
batches: a cost per batch in the one process that all workers feed, so small batches cap
the speed-up (the two batch sizes show how much).

With ``--before REV`` the same rounds also measure commit ``REV``'s code (its ``rldata/``
extracted by ``_report.package_at``) on the same store: each code runs in its own
long-lived process (``--serve``), which the rounds ask in turn for one epoch at a time.

Usage: ``python benchmarks/bench_loader.py [--rows 1000000] [--rounds 5] [--batch 256 4096]
[--before REV]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import (  # noqa: E402
    med,
    package_at,
    per_round,
    region,
    rounds,
    spread,
    table,
    write_results,
)

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


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the workers)."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def live_cpu(pids: list[int]) -> float:
    """User + system CPU so far of the live processes ``pids`` (persistent workers, which
    are not reaped between epochs, so ``RUSAGE_CHILDREN`` does not count them)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def worker_pids(loader: object) -> list[int]:
    it = getattr(getattr(loader, "_loader", None), "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


def epoch(ds: StoreDataset, workers: int, number: int, loader: object = None) -> dict:
    """One epoch read through ``workers`` DataLoader workers (0: this process), or through
    ``loader`` (persistent workers): rows/s and the CPU seconds per million rows of all
    processes."""
    ds.set_epoch(number)
    before = dict.fromkeys(worker_pids(loader), 0.0)
    before.update(zip(before, [live_cpu([p]) for p in before], strict=True))
    c0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    if loader is not None:
        it = iter(loader)
    else:
        it = iter(ds.loader(num_workers=workers, persistent_workers=False))
    for td in it:
        n += td.batch_size[0]
    rate = n / (time.perf_counter() - t0)
    kept = sum(live_cpu([p]) - before.get(p, 0.0) for p in worker_pids(loader))
    del it  # new workers exit and are reaped, so their CPU time counts
    return {"rate": rate, "cpu": (cpu_seconds() - c0 + kept) * 1e6 / n}


def serve() -> None:
    """``--serve``: read ``STORE BATCH WORKERS EPOCH`` lines, answer each with one epoch's
    figures as a JSON line (the code measured is the ``rldata`` this process imports)."""
    import rldata

    torch.set_num_threads(1)  # each reader one core, as DataLoader workers are
    print(json.dumps({"rldata": rldata.__file__}), flush=True)
    datasets: dict[tuple[str, int, bool], StoreDataset] = {}
    loaders: dict[tuple[str, int, bool], object] = {}
    for line in sys.stdin:
        path, batch, workers, number = line.split()
        kept = workers.endswith("p")  # "2p": 2 persistent workers
        key = (path, int(batch), kept)
        if key not in datasets:
            datasets[key] = StoreDataset(path, batch_size=int(batch), seed=0)
            if kept:
                loaders[key] = datasets[key].loader(
                    num_workers=int(workers[:-1]), persistent_workers=True
                )
        got = epoch(datasets[key], int(workers.rstrip("p")), int(number), loaders.get(key))
        print(json.dumps(got), flush=True)


class Server:
    """A ``--serve`` process running the code under ``pythonpath`` (None: this checkout)."""

    def __init__(self, pythonpath: Path | None) -> None:
        env = dict(os.environ)
        if pythonpath is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.rldata = json.loads(self.ask_line())["rldata"]
        where = str(pythonpath if pythonpath is not None else ROOT)
        if not self.rldata.startswith(where):  # it must run the code it was asked to
            raise SystemExit(f"a server for {where} imported rldata from {self.rldata}")

    def ask_line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a --serve process exited ({self.proc.wait()})")
        return line

    def epoch(self, path: Path, batch: int, workers: str, number: int) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{path} {batch} {workers} {number}\n")
        self.proc.stdin.flush()
        return json.loads(self.ask_line())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    ap.add_argument("--before", metavar="REV", help="also measure commit REV's code")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve()
        return
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rldata-loader-") as d:
        root = Path(d) / "s"
        t0 = time.perf_counter()
        build(root, args.rows)
        print(f"built {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        codes = {"this code": Server(None)}
        if args.before:
            codes = {args.before: Server(package_at(args.before, Path(d) / "before")), **codes}
        figures: dict[tuple[str, int, str], list[dict[str, float]]] = {}
        number = [0]  # the epoch of this round: every contender reads the same one

        def one(code: str, batch: int, workers: str) -> float:
            got = codes[code].epoch(root, batch, workers, number[0])
            figures.setdefault((code, batch, workers), []).append(got)
            return got["rate"]

        for batch in args.batch:
            fns = {
                f"{code} {w}": lambda c=code, w=w, b=batch: one(c, b, w)
                for code in codes
                for w in ("0", "2", "2p")
                if w != "2p" or code == "this code"  # REV's workers kept their first epoch
            }
            for _ in range(args.rounds):
                rounds(fns, 1)
                number[0] += 1
        for server in codes.values():
            server.close()
    load_after = os.getloadavg()[0]
    report(args, codes, figures, cores, load_before, load_after)


def report(
    args: argparse.Namespace,
    codes: dict[str, Server],
    figures: dict[tuple[str, int, str], list[dict[str, float]]],
    cores: int,
    load_before: float,
    load_after: float,
) -> None:
    """Print the table and the notes; write RESULTS-loader.md."""

    def col(code: str, b: int, w: str, what: str) -> list[float]:
        return [f[what] for f in figures[(code, b, w)]]

    rows, bounds, verdicts = [], [], []
    for b in args.batch:
        for code in codes:
            one_cpu = col(code, b, "0", "cpu")
            name = "this code" if code == "this code" else f"{code} (before)"
            rows.append(
                [f"{name}: 1 process, batch {b}", spread(col(code, b, "0", "rate")), "1.00x"]
                + [spread(one_cpu, "s"), "–"]
            )
            for w, what in (("2", "2 new workers an epoch"), ("2p", "2 workers kept")):
                if (code, b, w) not in figures:
                    continue
                two_cpu = col(code, b, w, "cpu")
                ratio = per_round(col(code, b, w, "rate"), col(code, b, "0", "rate"))
                bound = 2 * med(one_cpu) / med(two_cpu)
                rows.append(
                    [f"{name}: DataLoader, {what}, batch {b}", spread(col(code, b, w, "rate"))]
                    + [spread(ratio, "x", bold=True), spread(two_cpu, "s"), f"{bound:.2f}x"]
                )
                if code == "this code":
                    bounds.append(f"batch {b}, {what}: {bound:.2f}x")
                    m = med(ratio)
                    miss = "met" if m >= TARGET else f"missed by {TARGET - m:.2f}x"
                    verdicts.append(f"batch {b}, {what}: {miss}")
    head = [
        "code: reader",
        "rows/s: median (min–max)",
        "vs 1 process",
        "CPU s per 1M rows, all processes",
        "ceiling on 2 free cores",
    ]
    body = table(head, rows)
    free = cores - max(load_before, load_after)
    had = "yes" if free >= 2 else "no"
    before = f" and of {args.before}'s code (before)" if args.before else ""
    notes = (
        f"{args.rows:,} HalfCheetah-shaped rows (memmap), shuffle buffer 4 blocks, "
        f"{args.rounds} rounds of one epoch each side, this checkout's code{before} in "
        f"alternation, the same epoch in a round. Target 2 workers >= {TARGET}x one process "
        f"(this code): {'; '.join(verdicts)}. Two free cores: {had} ({cores} cores, 1-minute "
        f"load average {load_before:.1f} before, {load_after:.1f} after; free = cores - load). "
        f"The CPU column is the work itself, which load changes little: on two free cores, 2 "
        f"workers can be at most 2 x (1-process CPU) / (2-worker CPU) times as fast as one "
        f"process, the last column (this code: {'; '.join(bounds)})."
    )
    print(body)
    print(notes)
    before_flag = f" --before {args.before}" if args.before else ""
    write_results(
        "loader",
        "StoreDataset: DataLoader workers vs one process",
        f"python benchmarks/bench_loader.py --rows {args.rows} --rounds {args.rounds} "
        f"--batch {' '.join(map(str, args.batch))}{before_flag}",
        [region("loader", body), notes],
    )


if __name__ == "__main__":
    main()
