"""What opening a store to append and committing 10k rows cost as an append-only store grows,
before and after a change, in one run (issue 19: "commit time at 30M rows <= 1.2x commit
time at 1M"; open cost independent of size).

For each backend and size, a store of HalfCheetah-shaped rows (obs 17, action 6, 1000-step
episodes: ``bench_scale``'s generator, committed every 1M rows, durable) is written by each
code version: ``before`` (``git archive`` of ``--before``, put on ``PYTHONPATH``) and
``after`` (this tree), so each version measures the stores it writes. Then each round, in a
fresh process per measurement, alternating the versions: ``rldata.stores.open(path,
mode="a")`` (verify=True: what a resumed writer checks before writing), append 10k rows,
``commit()``, close. Figures are the median of the rounds with min–max; the bytes an open
read come from ``/proc/self/io`` (``rchar``: read syscalls; mapped pages are not counted).
Ratios are the largest size's median over 1M's. Both versions' stores of one size exist at a
time, then are deleted (30M memmap rows: ~7 GB).

Usage: ``python benchmarks/bench_commit.py [--before REV] [--rows 1000000 10000000]
[--memmap-rows 30000000] [--backends memmap parquet] [--rounds 5] [--dir DIR]``
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

ROUND_ROWS = 10_000
BUILD_COMMIT = 1_000_000


def _rchar() -> int | None:
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar"))
    except (OSError, StopIteration):
        return None


def child(args: list[str]) -> dict:
    """One measurement, in this process: ``build PATH BACKEND ROWS`` or ``round PATH SEED``."""
    from bench_scale import blocks

    from rldata import stores

    if args[0] == "build":
        path, backend, rows = args[1], args[2], int(args[3])
        t0 = time.perf_counter()
        with stores.create(path, backend=backend) as w:
            since = 0
            for td in blocks("halfcheetah", rows):
                w.append(td)
                since += td.batch_size[0]
                if since >= BUILD_COMMIT:
                    w.commit()
                    since = 0
        return {"s": time.perf_counter() - t0}
    path, seed = args[1], int(args[2])
    r0 = _rchar()
    t0 = time.perf_counter()
    w = stores.open(path, mode="a", verify=True)
    t1 = time.perf_counter()
    r1 = _rchar()
    try:
        tds = list(blocks("halfcheetah", ROUND_ROWS, traj0=w.next_traj_id(), seed=10**6 + seed))
        for td in tds:
            w.append(td)
        t2 = time.perf_counter()
        w.commit()
        t3 = time.perf_counter()
    finally:
        w.close()
    read = None if r0 is None or r1 is None else r1 - r0
    return {"open": t1 - t0, "commit": t3 - t2, "open_read": read}


def spawn(pythonpath: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, code: dict[str, str], work: Path) -> dict:
    """``{(backend, rows, version): [round results]}``."""
    res: dict = {}
    for backend in args.backends:
        sizes = sorted(set(args.rows + (args.memmap_rows if backend == "memmap" else [])))
        for rows in sizes:
            paths = {}
            for version, pp in code.items():
                paths[version] = work / f"{backend}-{rows}-{version}"
                shutil.rmtree(paths[version], ignore_errors=True)
                took = spawn(pp, "build", str(paths[version]), backend, str(rows))["s"]
                print(f"built {backend} {rows:,} rows ({version}) in {took:.0f} s", flush=True)
            for r in range(args.rounds):  # versions alternate: a busy machine slows both
                for version, pp in code.items():
                    got = spawn(pp, "round", str(paths[version]), str(r))
                    res.setdefault((backend, rows, version), []).append(got)
            for p in paths.values():
                shutil.rmtree(p, ignore_errors=True)
    return res


def tables(res: dict, args: argparse.Namespace) -> str:
    head = [
        "backend",
        "rows",
        "open(mode='a') s, before",
        "after",
        "bytes read by the open, before",
        "after",
        "commit of 10k rows s, before",
        "after",
    ]
    body, ratios = [], []
    keys = sorted({(b, n) for b, n, _ in res}, key=lambda k: (args.backends.index(k[0]), k[1]))
    for b, n in keys:
        cells = [b, f"{n:,}"]
        for what in ("open", "open_read", "commit"):
            for v in ("before", "after"):
                xs = [r[what] for r in res.get((b, n, v), []) if r[what] is not None]
                if what == "open_read":
                    cells.append(f"{rep.med(xs) / 1e6:.2f} MB" if xs else "–")
                else:
                    cells.append(rep.spread(xs, "s"))
        body.append(cells)
    for b in args.backends:
        sizes = sorted(n for bb, n in keys if bb == b)
        if len(sizes) < 2:
            continue
        lo, hi = sizes[0], sizes[-1]
        for what in ("open", "commit"):
            cells = [f"{b}: {what} at {hi:,} / at {lo:,}"]
            for v in ("before", "after"):
                a = rep.med([r[what] for r in res[(b, hi, v)]])
                z = rep.med([r[what] for r in res[(b, lo, v)]])
                cells.append(f"{a / z:.2f}x")
            ratios.append(cells)
    return (
        rep.table(head, body)
        + "\n\n"
        + rep.table(["ratio (medians)", "before", "after"], ratios, "lrr")
        + f"\n\n{args.rounds} rounds; rows: HalfCheetah-shaped, committed every 1M rows; "
        "each round opens the store in a fresh process, appends 10k rows and commits."
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2:])))
        return
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", default="HEAD", help="the revision measured as 'before'")
    ap.add_argument("--after", default=None, help="a copy of rldata/'s parent (default: here)")
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--memmap-rows", type=int, nargs="*", default=[], help="memmap only")
    ap.add_argument("--backends", nargs="+", default=["memmap", "parquet"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where stores are built (deleted after)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-commit-", dir=args.dir))
    try:
        before = rep.package_at(args.before, work / "before-code")
        here = args.after or str(rep.ROOT)
        code = {"before": f"{before}:{os.environ.get('PYTHONPATH', '')}", "after": here}
        res = measure(args, code, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average {', '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(tables(res, args))


if __name__ == "__main__":
    main()
