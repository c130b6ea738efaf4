"""sample(256) from a 1M-row HalfCheetah memmap store vs rldata in memory vs TorchRL's
``LazyMemmapStorage`` (issue 19's carry-over target: the store ≥ 3x TorchRL and ≥ 0.8x
rldata in memory), with the store's read path before and after a change in the same run.

Every contender samples the same rows (11 TED leaves a row; the store keeps each
observation once, so ``next.observation`` is rebuilt from ``observation`` and the explicit
next rows). Contenders run in turn, ``--rounds`` rounds of ``--seconds`` each (median and
min-max; ratios round by round). The store is sampled in child processes, one per code
version: ``after`` is the working tree, ``before`` the rldata package of ``--before REV``
(extracted with ``git archive``; omit it to skip), each kept warm (every block of the store
checked once) before the first round, so the figures are steady warm-page-cache reads.

Run:  nice -n 10 python benchmarks/bench_sample.py [--before HEAD~1] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import _report as rep
import bench_replay as br
import bench_scale as bs

BATCH = 256
WARM_BATCHES = 4000  # touches every 4096-row block of 1M rows many times over


def child(path: str) -> None:
    """Sample the store at ``path`` on request: each ``secs`` line on stdin answers a rate."""
    import rldata

    rb = rldata.load(path, batch_size=BATCH)
    for _ in range(WARM_BATCHES):
        rb.sample()
    print(json.dumps({"ready": True, "rldata": rldata.__file__}), flush=True)
    for line in sys.stdin:
        secs = float(line)
        print(json.dumps({"rate": br.rate(rb.sample, secs)}), flush=True)


class Child:
    """A store-sampling process over the rldata package at ``pythonpath``."""

    def __init__(self, path: Path, pythonpath: Path) -> None:
        env = dict(os.environ, PYTHONPATH=f"{pythonpath}{os.pathsep}{Path(__file__).parent}")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # not the repository root: PYTHONPATH picks rldata
        )
        self.where = json.loads(self._line())["rldata"]
        if not self.where.startswith(str(pythonpath)):
            raise RuntimeError(f"bench_sample: expected rldata from {pythonpath}, got {self.where}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench_sample child exited with {self.proc.wait()}")
        return line

    def rate(self, secs: float) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{secs}\n")
        self.proc.stdin.flush()
        return float(json.loads(self._line())["rate"])

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def extract(rev: str, into: Path) -> Path:
    """The ``rldata`` package of ``rev`` under ``into`` (``git archive``: no checkout)."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    tar = into / "rldata.tar"
    with open(tar, "wb") as f:
        subprocess.run(["git", "archive", rev, "rldata"], cwd=rep.ROOT, stdout=f, check=True)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="data")
    return into


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--before", default="", help="git revision of the 'before' read path")
    p.add_argument("--store", default="", help="an existing store of --rows HalfCheetah rows")
    p.add_argument("--work", default="", help="scratch directory (default: a temporary one)")
    p.add_argument("--no-write", action="store_true", help="print only, no RESULTS file")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child)
        return

    import torch

    from rldata import stores
    from rldata.data import LazyTensorStorage, ReplayBuffer

    work = Path(a.work or tempfile.mkdtemp(prefix="rldata-bench-sample-"))
    work.mkdir(parents=True, exist_ok=True)
    store = Path(a.store) if a.store else work / f"halfcheetah-{a.rows}-memmap"
    if not a.store:
        shutil.rmtree(store, ignore_errors=True)
        with stores.create(store, backend="memmap") as w:
            since = 0
            for td in bs.blocks("halfcheetah", a.rows):
                w.append(td)
                since += td.batch_size[0]
                if since >= bs.COMMIT_ROWS:
                    w.commit()
                    since = 0
    shutil.rmtree(work / "torchrl", ignore_errors=True)
    torch.manual_seed(0)
    mem = ReplayBuffer(storage=LazyTensorStorage(a.rows))
    trl = br.TorchRL(a.rows, True, str(work / "torchrl")) if br.HAVE_TORCHRL else None
    for td in bs.blocks("halfcheetah", a.rows):
        mem.extend(td)
        if trl is not None:
            trl.extend(td)
    kids = {"memmap store": Child(store, rep.ROOT)}
    if a.before:
        kids["memmap store, before"] = Child(store, extract(a.before, work / "before"))
    secs = a.seconds
    fns = {label: (lambda c=c: c.rate(secs)) for label, c in kids.items()}
    fns["rldata memory"] = lambda: br.rate(lambda: mem.sample(BATCH), secs)
    if trl is not None:
        fns["TorchRL LazyMemmapStorage"] = lambda: br.rate(trl.sample, secs)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    res = rep.rounds(fns, a.rounds)
    for c in kids.values():
        c.stop()
    took = time.perf_counter() - t0

    st = res["memmap store"]
    head = ["sample(256), 1M HalfCheetah rows", "batches/s", "memmap store / this"]
    rows = [
        [label, rep.spread(v), rep.spread(rep.per_round(st, v), "x")] for label, v in res.items()
    ]
    goals = [("rldata memory", 0.8), ("TorchRL LazyMemmapStorage", 3.0)]
    lines = []
    for label, goal in goals:
        if label not in res:
            lines.append(f"- memmap store ≥ {goal}x {label}: not measured (not installed)")
            continue
        r = rep.med(rep.per_round(st, res[label]))
        verdict = "met" if r >= goal else f"missed by {goal - r:.2f}x"
        lines.append(f"- memmap store ≥ {goal}x {label}: {r:.2f}x: {verdict}")
    if a.before:
        r = rep.med(rep.per_round(st, res["memmap store, before"]))
        lines.append(f"- after / before ({a.before}): {r:.2f}x")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    body = (
        f"### sample(256) at {a.rows:,} rows (load average {load}; "
        f"{a.rounds} rounds of {secs:g} s in {took:.0f} s)\n\n"
        + rep.table(head, rows)
        + "\n\n"
        + "\n".join(lines)
    )
    print(body)
    if not a.no_write:
        cmd = "nice -n 10 python benchmarks/bench_sample.py" + (
            f" --before {a.before}" if a.before else ""
        )
        rep.write_results(
            "sample",
            "sample(256) from a memmap store (issue 19)",
            cmd,
            [rep.region("sample", body)],
        )
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
