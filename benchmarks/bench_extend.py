"""In-memory extend to 1M HalfCheetah rows in chunks of 1000: rldata's
``ReplayBuffer(LazyTensorStorage)`` vs SB3 vs cpprb (issue 19's carry-over target:
rldata ≥ SB3 and ≥ cpprb), with rldata's code before and after a change in the same run.

Every fill runs in a fresh child process (a fresh buffer, creation inside the timing, as
bench_scale.py's peers section fills it), contenders in turn, ``--rounds`` rounds (median
and min-max; ratios round by round). rldata writes the 11 TED leaves of each row; SB3 and
cpprb their own 5 arrays (obs, next obs, action, reward, done) of the same chunk. Both the
wall-clock rate and the process-CPU rate are reported: on a shared, loaded machine the
wall clock mostly measures the neighbours.

Run:  nice -n 10 python benchmarks/bench_extend.py [--after REV] [--before REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report as rep

ROWS = 1_000_000
NOTES = """- A fill: `ReplayBuffer(storage=LazyTensorStorage(1_000_000))` created, then 1,000
  `extend` calls of one 1000-row TED chunk (11 leaves: checks of schema, done flags and
  finite rewards, then the rows land in the packed per-dtype columns). SB3:
  `ReplayBuffer(n_envs=1000).add` of the chunk's 5 arrays; cpprb: `ReplayBuffer.add`.
- `before`: rldata's package at the `--before` revision, in its own children; SB3 and cpprb
  run beside the `after` code."""


def child(kind: str, rows: int) -> None:
    """One fill in this process: print its wall and CPU rates (rows/s) as JSON."""
    import gc

    import bench_replay as br
    import bench_scale as bs

    chunk = next(bs.blocks("halfcheetah", br.CHUNK))
    arrays = br.sb3_arrays(chunk)
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    if kind == "sb3":
        buf = br.SB3(rows, (17,), 6, br.CHUNK)
        ext, data = buf.extend_np, arrays
    elif kind == "cpprb":
        buf = br.Cpprb(rows, (17,), 6)
        ext, data = buf.extend_np, arrays
    else:
        buf = br.Rldata(rows, False, "")
        ext, data = buf.extend, chunk
    for _ in range(rows // br.CHUNK):
        ext(data)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    print(json.dumps({"wall": rows / wall, "cpu": rows / cpu}))


def fill(kind: str, pythonpath: Path, rows: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{pythonpath}{os.pathsep}{Path(__file__).parent}")
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--rows", str(rows)],
        env=env,
        cwd=tempfile.gettempdir(),  # not the repository root: PYTHONPATH picks rldata
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--before", default="", help="git revision of rldata 'before'")
    p.add_argument("--after", default="", help="git revision of rldata (default: tree)")
    p.add_argument("--no-write", action="store_true", help="print only, no RESULTS file")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.rows)
        return

    import bench_replay as br

    work = Path(tempfile.mkdtemp(prefix="rldata-bench-extend-"))
    after = rep.package_at(a.after, work / "after") if a.after else rep.ROOT
    contenders: dict[str, tuple[str, Path]] = {"rldata memory": ("rldata", after)}
    if a.before:
        contenders["rldata memory, before"] = ("rldata", rep.package_at(a.before, work / "before"))
    if br.HAVE_SB3:
        contenders["SB3"] = ("sb3", after)
    if br.HAVE_CPPRB:
        contenders["cpprb"] = ("cpprb", after)
    got: dict[str, list[dict[str, float]]] = {k: [] for k in contenders}
    t0 = time.perf_counter()
    for _ in range(a.rounds):
        for label, (kind, path) in contenders.items():
            got[label].append(fill(kind, path, a.rows))
    took = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)

    head = [f"extend to {a.rows:,} rows, chunks of 1000", "rows/s (wall)", "rldata / this (wall)"]
    head += ["rows/s (CPU)", "rldata / this (CPU)"]
    mine = got["rldata memory"]
    rows = []
    for label, runs in got.items():
        row = [label]
        for clock in ("wall", "cpu"):
            v, m = [r[clock] for r in runs], [r[clock] for r in mine]
            row += [rep.spread(v), rep.spread(rep.per_round(m, v), "x")]
        rows.append(row)
    lines = []
    for label in ("SB3", "cpprb"):
        if label not in got:
            lines.append(f"- rldata ≥ {label}: not measured (not installed)")
            continue
        for clock in ("wall", "cpu"):
            r = rep.med(rep.per_round([x[clock] for x in mine], [x[clock] for x in got[label]]))
            lines.append(rep.goal_line("rldata memory", label, r, 1.0, clock))
    if a.before:
        for clock in ("wall", "cpu"):
            old = [x[clock] for x in got["rldata memory, before"]]
            r = rep.med(rep.per_round([x[clock] for x in mine], old))
            lines.append(f"- after ({a.after or 'tree'}) / before ({a.before}), {clock}: {r:.2f}x")
    heading = (
        f"extend to {a.rows:,} rows in memory (load average {rep.load_average()}; "
        f"{a.rounds} rounds in {took:.0f} s, a fresh process a fill)"
    )
    rep.finish(
        "extend",
        "In-memory extend: rldata vs SB3 vs cpprb (issue 19)",
        "bench_extend.py",
        heading,
        rep.table(head, rows),
        lines,
        NOTES,
        after=a.after,
        before=a.before,
        write=not a.no_write,
    )


if __name__ == "__main__":
    main()
