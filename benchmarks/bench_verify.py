"""Full verify speed: ``rldata verify`` (cold) against ``cat`` of the store (cold), issue 19.

For HalfCheetah-shaped stores (bench_scale.py's generator: 17-dim float32 observations,
6-dim actions, 1000-step episodes) of each size in ``--rows`` and each backend in
``--backends``, every round runs, in turn:

- ``cat`` of every store file to /dev/null, cold: the disk's sequential read bandwidth;
- a full verify (``rldata.api.verify``: checksums, episode index, TED invariants) in a
  fresh child process, cold, with the code of this checkout;
- the same with the code of ``--baseline REV`` (exported with ``git archive`` and put first
  on the child's ``PYTHONPATH``), when given: before and after, under the same load.

"Cold": every store file's pages are dropped first with ``posix_fadvise(DONTNEED)``
(bench_scale.drop_cache; no root needed). The child imports rldata before the drop, so
import time is not counted. Figures are medians of ``--rounds`` with the min-max spread;
bandwidth ratios (``cat s / verify s``) are taken round by round. Peak RSS is the child's
``ru_maxrss``; CPU is its user + system seconds (every thread), which the load of other
processes inflates less than wall time. The load average is printed beside the table: on a
shared machine, read ratios, not absolute times.

Run:  nice -n 5 python benchmarks/bench_verify.py --rows 1000000,3000000
          [--backends memmap,zarr,parquet] [--smallest-only zarr,parquet] [--rounds 3]
          [--baseline REV] [--work /tmp/rldata-bench-verify] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402
import bench_scale as scale  # noqa: E402

GB = 1e9


def child(a: dict) -> dict:
    """One cold verify of the store at ``a["path"]`` in this process."""
    import rldata.api as api

    path = Path(a["path"])
    scale.drop_cache(path)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    faults = api.verify(str(path))
    s = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "s": s,
        "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "faults": len(faults),
        "rss_gb": r1.ru_maxrss * 1024 / GB,
        "code": str(Path(api.__file__).resolve().parent),
    }


def spawn(path: Path, pythonpath: str | None, timeout: float) -> dict:
    """:func:`child` in a fresh interpreter (``pythonpath`` first on its path)."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--child", json.dumps({"path": str(path)})]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return {"error": tail[:160]}


def _fixed(xs: list[float], digits: int) -> str:
    """``median (min–max)`` with ``digits`` decimals (RSS differences are tens of MB)."""
    f = f"{{:.{digits}f}}".format
    return f"{f(rep.med(xs))} ({f(min(xs))}–{f(max(xs))})" if len(xs) > 1 else f(xs[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="1000000,3000000", help="store sizes, comma separated")
    ap.add_argument("--backends", default="memmap", help="comma separated: memmap,zarr,parquet")
    ap.add_argument(
        "--smallest-only", default="", help="backends measured at the smallest size only"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=None, help="a git revision to measure beside (before)")
    ap.add_argument("--work", default=None, help="where stores are built (kept; reused if there)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-verify.md")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    load0 = os.getloadavg()
    work = Path(args.work or tempfile.mkdtemp(prefix="rldata-bench-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    codes: dict[str, str | None] = {"this checkout": None}
    if args.baseline:
        codes[f"before ({args.baseline})"] = str(rep.package_at(args.baseline, work / "baseline"))
    rows_out = []
    cpu_ratios: list[str] = []  # this checkout's CPU seconds over the baseline's, per store
    sizes = sorted(int(x) for x in args.rows.split(","))
    for backend in args.backends.split(","):
        for rows in sizes[:1] if backend in args.smallest_only.split(",") else sizes:
            path = work / f"halfcheetah-{rows}-{backend}"
            if not (path / "rldata.json").exists():
                path, r = scale.build(work, "halfcheetah", backend, rows, args.timeout)
                if "s" not in r:
                    print(f"{path.name}: not built: {r}", file=sys.stderr)
                    continue
            size = scale.apparent_bytes(path)
            res: dict[str, list[dict]] = {label: [] for label in codes}
            cats: list[float] = []
            for _ in range(args.rounds):
                cats.append(scale.cat_cold(path))
                for label, code in codes.items():
                    v = spawn(path, code, args.timeout)
                    res[label].append(v)
                    print(f"  {path.name} {label}: cat {cats[-1]:.3f} s, {v}", file=sys.stderr)
            for label, vs in res.items():
                ok = [v for v in vs if "s" in v]
                if len(ok) < len(vs):
                    err = next(v["error"] for v in vs if "s" not in v)
                    rows_out.append([backend, label, f"{rows:,}", "–", "–", err, "–", "–", "–"])
                    continue
                secs = [v["s"] for v in ok]
                ratio = rep.per_round(cats, secs)
                rows_out.append(
                    [
                        backend,
                        label,
                        f"{rows:,}",
                        f"{size / GB:.3f}",
                        _fixed(cats, 3),
                        _fixed(secs, 3),
                        rep.spread(ratio, "%"),
                        _fixed([v["cpu"] for v in ok], 2),
                        _fixed([v["rss_gb"] for v in ok], 3),
                    ]
                )
                ours = [v["cpu"] for v in res["this checkout"] if "cpu" in v]
                if label != "this checkout" and len(ours) == len(ok):
                    ratio_cpu = rep.per_round(ours, [v["cpu"] for v in ok])
                    cpu_ratios.append(f"{backend} {rows:,}: {rep.spread(ratio_cpu, 'x')}")
                faults = {v["faults"] for v in ok}
                if faults != {0}:
                    print(
                        f"  {path.name} {label}: faults {faults} (expected none)", file=sys.stderr
                    )
    load1 = os.getloadavg()
    head = [
        "backend",
        "code",
        "rows",
        "store GB",
        "cat s (cold)",
        "verify s (cold)",
        "verify / cat bandwidth",
        "verify CPU s",
        "verify peak RSS GB",
    ]
    body = rep.table(head, rows_out, "ll" + "r" * 7)
    loads = (
        f"Load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load0)} at the start, "
        f"{', '.join(f'{x:.1f}' for x in load1)} at the end, on {os.cpu_count()} cores "
        f"(the target: verify / cat bandwidth ≥ 50%)."
    )
    if cpu_ratios:  # what load inflates least: CPU seconds, this checkout over the baseline
        loads += " Verify CPU, this checkout / before: " + "; ".join(cpu_ratios) + "."
    print(body)
    print(loads)
    if args.write:
        command = "nice -n 5 python benchmarks/bench_verify.py " + " ".join(sys.argv[1:])
        rep.write_results(
            "verify",
            "Full verify (cold) against cat (cold): issue 19",
            command.replace(" --write", "") + " --write",
            [rep.region("verify", body), loads],
        )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
