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

Run:  nice -n 10 python benchmarks/bench_sample.py [--after REV] [--before REV] [--rows N]

The store is written by the ``before`` code when there is one (a newer reader reads an
older store); ``--after REV`` measures a commit instead of the working tree, so other
people's uncommitted edits stay out of the figures.
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
from collections.abc import Callable
from pathlib import Path

import _report as rep
import bench_replay as br
import bench_scale as bs

BATCH = 256
NOTES = """### Where a batch's time goes

- **memmap store**: `rldata.load(store, batch_size=256).sample()`: the sampler's draw, a
  bounds check (one numpy reduction of the positions read as unsigned), the block-digest
  check (one flag once every block was checked on first touch: nothing on warm reads), then
  the batch planned once per mapping (`_memmap_gather._Batch`): one numpy `take` of whole
  rows a payload file (10 files, `[rows, *shape]` views of the mappings, each result wrapped
  by `torch.from_numpy`), `next.observation` as `observation` one row later (a clipping
  take of the mapping from its second row on) with its explicit rows patched where a bucket
  table finds them, and the batch's TensorDicts built without per-leaf checks. Measured in a
  child process, one per code version (`before`: the read path before the change).
- **page-cache gathers alone**: the same 11 random 256-row gathers from the mapped files
  and nothing else (no sampler, checks, tensors or TensorDict), in the same child.
- **rldata memory**: `ReplayBuffer(LazyTensorStorage)` keeps a row's keys packed in 3
  dtype groups: 3 gathers, then views (`split_with_sizes`). The store keeps one file per
  key (the tensordict memmap layout of docs/FORMAT.md), so a batch is 11 gathers and 11
  fresh tensors: in a profile at 1M rows the `take`s are over half of a batch's time, most
  of it cache and TLB misses of 10 files' random rows (4 KiB pages: ~10 page walks a row
  against the packed buffer's ~3), and `from_numpy` ~0.8 us a leaf. Closing the rest of
  the gap needs a packed payload (several keys a file), a format change outside the read
  path.
- **cpu** columns divide batches by the process's CPU time (each contender runs in one
  thread), **wall** by the wall clock: on this shared 2-core machine the wall clock mostly
  measures the neighbours, so the CPU ratio is the one to read.
- TorchRL's `LazyMemmapStorage` indexes tensordict's `MemoryMappedTensor`s with their
  per-call checks: tens of batches a second on this loaded machine."""
WARM_BATCHES = 4000  # touches every 4096-row block of 1M rows many times over
CLOCKS = ("wall", "cpu")


def write(path: str, rows: int) -> None:
    """Write ``rows`` HalfCheetah rows to a memmap store at ``path`` (bench_scale's rows)."""
    from rldata import stores

    with stores.create(path, backend="memmap") as w:
        since = 0
        for td in bs.blocks("halfcheetah", rows):
            w.append(td)
            since += td.batch_size[0]
            if since >= bs.COMMIT_ROWS:
                w.commit()
                since = 0


def rates(fn: Callable[[], object], seconds: float) -> dict[str, float]:
    """Calls of ``fn`` a second for about ``seconds`` of wall time: ``wall`` by the wall
    clock, ``cpu`` by this process's CPU time (on a shared, loaded machine the wall clock
    mostly measures the neighbours; both contenders are single-threaded here)."""
    fn()
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        wall = time.perf_counter() - w0
        if wall >= seconds:
            cpu = max(time.process_time() - c0, 1e-9)
            return {"wall": n / wall, "cpu": n / cpu}


def child(path: str) -> None:
    """Sample the store at ``path`` on request: each ``what secs`` line on stdin answers
    its rates (see :func:`rates`)."""
    import rldata

    rb = rldata.load(path, batch_size=BATCH)
    for _ in range(WARM_BATCHES):
        rb.sample()
    print(json.dumps({"ready": True, "rldata": rldata.__file__}), flush=True)
    gathers = _floor(rb)
    for line in sys.stdin:
        what, secs = line.split()
        fn = gathers if what == "floor" else rb.sample
        print(json.dumps(rates(fn, float(secs))), flush=True)


def _floor(rb: object) -> Callable[[], object]:
    """The page-cache floor of a batch: 256 random rows of each mapped payload file (and
    ``observation`` one row later for the stored-once ``next.observation``), each row
    taken as one opaque item, nothing else (no sampler, checks or TensorDict)."""
    import numpy as np
    import torch

    store = rb.storage.store  # type: ignore[attr-defined]
    n = len(store)
    files = []
    for v in store._views.values():
        raw = v[:n].reshape(n, -1).view(torch.uint8).numpy()
        files.append(raw.view(np.dtype((np.void, raw.shape[1]))).reshape(n))
    nxt = [files[list(store._views).index(k)] for k in store._xpos]

    def gathers() -> None:
        p = torch.randint(n - 1, (BATCH,)).numpy()
        for f in files:
            f.take(p)
        for f in nxt:
            f.take(p + 1)

    return gathers


def _env(pythonpath: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f"{pythonpath}{os.pathsep}{Path(__file__).parent}")


class Child:
    """A store-sampling process over the rldata package at ``pythonpath``."""

    def __init__(self, path: Path, pythonpath: Path) -> None:
        env = _env(pythonpath)
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

    def rates(self, secs: float, what: str = "sample") -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{what} {secs}\n")
        self.proc.stdin.flush()
        return {k: float(v) for k, v in json.loads(self._line()).items()}

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
    # each child is a first process: no proof record (rldata/stores/backend/_proofs.py) of
    # the blocks an earlier child verified carries over between rounds
    os.environ.setdefault("RLDATA_PROOFS", "0")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--before", default="", help="git revision of the 'before' read path")
    p.add_argument("--after", default="", help="git revision of the read path (default: tree)")
    p.add_argument("--store", default="", help="an existing store of --rows HalfCheetah rows")
    p.add_argument("--work", default="", help="scratch directory (default: a temporary one)")
    p.add_argument("--no-write", action="store_true", help="print only, no RESULTS file")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--write", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child)
        return
    if a.write:
        write(a.write, a.rows)
        return

    import torch

    from rldata.data import LazyTensorStorage, ReplayBuffer

    work = Path(a.work or tempfile.mkdtemp(prefix="rldata-bench-sample-"))
    work.mkdir(parents=True, exist_ok=True)
    store = Path(a.store) if a.store else work / f"halfcheetah-{a.rows}-memmap"
    after = extract(a.after, work / "after") if a.after else rep.ROOT
    before = extract(a.before, work / "before") if a.before else None
    if not a.store:  # written by the oldest code measured: newer readers read older stores
        shutil.rmtree(store, ignore_errors=True)
        cmd = [sys.executable, __file__, "--write", str(store), "--rows", str(a.rows)]
        env = _env(before or after)
        subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir())
    shutil.rmtree(work / "torchrl", ignore_errors=True)
    torch.manual_seed(0)
    mem = ReplayBuffer(storage=LazyTensorStorage(a.rows))
    trl = br.TorchRL(a.rows, True, str(work / "torchrl")) if br.HAVE_TORCHRL else None
    for td in bs.blocks("halfcheetah", a.rows):
        mem.extend(td)
        if trl is not None:
            trl.extend(td)
    kids = {"memmap store": Child(store, after)}
    if before is not None:
        kids["memmap store, before"] = Child(store, before)
    secs = a.seconds
    fns: dict[str, Callable[[], dict[str, float]]] = {
        label: (lambda c=c: c.rates(secs)) for label, c in kids.items()
    }
    fns["page-cache gathers alone (floor)"] = lambda: kids["memmap store"].rates(secs, "floor")
    fns["rldata memory"] = lambda: rates(lambda: mem.sample(BATCH), secs)
    if trl is not None:
        fns["TorchRL LazyMemmapStorage"] = lambda: rates(trl.sample, secs)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    got = rep.rounds(fns, a.rounds)  # type: ignore[arg-type]
    for c in kids.values():
        c.stop()
    took = time.perf_counter() - t0

    res = {clock: {k: [r[clock] for r in v] for k, v in got.items()} for clock in CLOCKS}
    head = [f"sample(256), {a.rows:,} HalfCheetah rows"]
    for clock in CLOCKS:
        head += [f"batches/s ({clock})", f"memmap store / this ({clock})"]
    rows = []
    for label in got:
        row = [label]
        for clock in CLOCKS:
            v, st = res[clock][label], res[clock]["memmap store"]
            row += [rep.spread(v), rep.spread(rep.per_round(st, v), "x")]
        rows.append(row)
    lines = []
    for label, goal in [("rldata memory", 0.8), ("TorchRL LazyMemmapStorage", 3.0)]:
        if label not in got:
            lines.append(f"- memmap store ≥ {goal}x {label}: not measured (not installed)")
            continue
        for clock in CLOCKS:
            r = rep.med(rep.per_round(res[clock]["memmap store"], res[clock][label]))
            lines.append(rep.goal_line("memmap store", label, r, goal, clock))
    if a.before:
        for clock in CLOCKS:
            old = res[clock]["memmap store, before"]
            r = rep.med(rep.per_round(res[clock]["memmap store"], old))
            lines.append(
                f"- after ({a.after or 'working tree'}) / before ({a.before}), {clock}: {r:.2f}x"
            )
    heading = (
        f"sample(256) at {a.rows:,} rows (load average {rep.load_average()}; "
        f"{a.rounds} rounds of {secs:g} s in {took:.0f} s)"
    )
    rep.finish(
        "sample",
        "sample(256) from a memmap store (issue 19)",
        "bench_sample.py",
        heading,
        rep.table(head, rows),
        lines,
        NOTES,
        after=a.after,
        before=a.before,
        write=not a.no_write,
    )
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
