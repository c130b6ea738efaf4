"""Peak memory of ``rldata push`` and ``rldata pull`` as stores grow, before and after (issue 19).

For zarr and parquet stores of HalfCheetah-shaped rows (bench_scale.py's generator: 17-dim
float32 observations, 6-dim actions, 1000-step episodes, a commit every million rows) at
each size of ``--rows``, a fresh child process pushes the store to a ``file://`` folder
and another pulls it back; each reports its resident high-water mark (``ru_maxrss``: mapped
store pages it touched count) and its wall time. Both codes run in the same run: the
``--before`` commit's ``rldata`` (``_report.package_at``, on ``PYTHONPATH``) and the working
tree's. Each code writes its own stores (a format change between them would otherwise make
one refuse the other's store). Then the slope in GB per million rows from the smallest to
the largest size, and the ratio after / before of each peak. Issue 19's target: ≤ 1 GB plus
the configured cache at every size, slope ~0.

Peak memory is one measurement per process; ``--rounds`` repeats each and prints the median
with the min-max spread.

Run:  nice -n 10 python benchmarks/bench_transfer_memory.py --rows 300000,1000000,3000000 [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

BACKENDS = ["zarr", "parquet"]
GB = 1e9


def child(op: str, a: dict) -> dict:
    """One operation in this fresh process: ``write``, ``push`` or ``pull``."""
    t0 = time.perf_counter()
    if op == "write":
        import bench_scale as bs

        from rldata import stores

        with stores.create(a["path"], backend=a["backend"]) as w:
            since = 0
            for td in bs.blocks("halfcheetah", a["rows"]):
                w.append(td)
                since += td.batch_size[0]
                if since >= bs.COMMIT_ROWS:
                    w.commit()
                    since = 0
    elif op == "push":
        from rldata.sharing import push

        push(a["path"], a["url"])
    elif op == "pull":
        from rldata.sharing import pull

        pull(a["url"], a["out"])
    else:
        raise SystemExit(f"unknown child op {op!r}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # KiB on Linux
    return {"s": time.perf_counter() - t0, "rss_gb": rss}


def spawn(op: str, pythonpath: str, timeout: float, **a: object) -> dict:
    """``child(op, a)`` in a fresh interpreter whose ``rldata`` comes from ``pythonpath``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pythonpath, str(Path(__file__).parent)]))
    cmd = [sys.executable, __file__, "--child", json.dumps({"op": op, **a})]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            print(f"  {op} {a.get('path', a.get('url'))}: {r}", file=sys.stderr, flush=True)
            return r
    tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    print(f"  {op}: failed: {tail}", file=sys.stderr, flush=True)
    return {"error": tail[:160]}


def measure(codes: dict[str, str], args: argparse.Namespace) -> dict:
    """``{code: {backend: {rows: {"push": [..], "pull": [..]}}}}``."""
    out: dict = {}
    for backend in args.backends:
        for rows in args.rows:
            for code, pp in codes.items():
                path = args.work / f"{code}-{backend}-{rows}"
                pushed, pulled = Path(f"{path}-pushed"), Path(f"{path}-pulled")
                for p in (path, pushed, pulled):
                    shutil.rmtree(p, ignore_errors=True)
                w = spawn("write", pp, args.timeout, path=str(path), backend=backend, rows=rows)
                got = out.setdefault(code, {}).setdefault(backend, {}).setdefault(rows, {})
                if "error" in w:
                    got["error"] = f"write: {w['error']}"
                    continue
                for _ in range(args.rounds):
                    for p in (pushed, pulled):
                        shutil.rmtree(p, ignore_errors=True)
                    url = f"file://{pushed}"
                    got.setdefault("push", []).append(
                        spawn("push", pp, args.timeout, path=str(path), url=url)
                    )
                    got.setdefault("pull", []).append(
                        spawn("pull", pp, args.timeout, url=url, out=str(pulled))
                    )
                for p in (path, pushed, pulled):
                    shutil.rmtree(p, ignore_errors=True)
    return out


def _vals(rs: list[dict] | None, key: str) -> list[float]:
    return [r[key] for r in rs or [] if key in r]


def _cell(rs: list[dict] | None, key: str, unit: str = "") -> str:
    v = _vals(rs, key)
    if not v:
        errs = [r.get("error") for r in rs or [] if "error" in r]
        return f"failed: {errs[0]}" if errs else "–"
    digits = 3 if key == "rss_gb" else 1
    text = f"{rep.med(v):.{digits}f}{unit}"
    return text if len(v) < 2 else f"{text} ({min(v):.{digits}f}-{max(v):.{digits}f})"


def tables(res: dict, args: argparse.Namespace) -> str:
    codes = list(res)
    before, after = codes[0], codes[-1]
    head = ["backend", "rows"]
    for op in ("push", "pull"):
        head += [f"{op} GB {before}", f"{op} GB after", "after / before", f"{op} s after"]
    rows_out = []
    for backend in args.backends:
        for rows in args.rows:
            cells = [backend, f"{rows:,}"]
            for op in ("push", "pull"):
                b = res[before][backend][rows].get(op)
                a = res[after][backend][rows].get(op)
                vb, va = _vals(b, "rss_gb"), _vals(a, "rss_gb")
                ratio = f"{rep.med(va) / rep.med(vb):.2f}x" if va and vb else "–"
                cells += [_cell(b, "rss_gb"), _cell(a, "rss_gb"), ratio, _cell(a, "s")]
            rows_out.append(cells)
    peak = rep.table(head, rows_out, "ll" + "rrrr" * 2)
    lo, hi = min(args.rows), max(args.rows)
    shead = ["backend", "sizes"] + [
        f"{op} {c}" for op in ("push", "pull") for c in (before, "after")
    ]
    srows = []
    for backend in args.backends:
        cells = [backend, f"{lo / 1e6:g}M → {hi / 1e6:g}M"]
        for op in ("push", "pull"):
            for code in (before, after):
                a = _vals(res[code][backend][lo].get(op), "rss_gb")
                b = _vals(res[code][backend][hi].get(op), "rss_gb")
                ok = a and b and hi > lo  # one size has no slope
                slope = (rep.med(b) - rep.med(a)) / ((hi - lo) / 1e6) if ok else None
                cells.append("–" if slope is None else f"{slope:+.3f}")
        srows.append(cells)
    slope = rep.table(shead, srows, "ll" + "r" * 4)
    return rep.region(
        "transfer-memory",
        "### Peak memory of push and pull (RSS high-water of a fresh process, GB)\n\n"
        f"{peak}\n\n### Slope (GB per million rows)\n\n{slope}\n\n"
        f"`{before}`: the code before this change; after: the working tree. push: to a "
        "`file://` folder; pull: from it into a new folder. Each peak is one process "
        f"({args.rounds} round(s): median, min-max).",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="300000,1000000,3000000")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--before", default="41b6ef6")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_transfer_memory"))
    ap.add_argument(
        "--write", action="store_true", help="write benchmarks/RESULTS-transfer-memory.md"
    )
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        a = json.loads(args.child)
        print("RESULT " + json.dumps(child(a.pop("op"), a)), flush=True)
        return
    args.rows = sorted(int(x) for x in args.rows.split(","))
    args.backends = args.backends.split(",")
    args.work.mkdir(parents=True, exist_ok=True)
    old = rep.package_at(args.before, args.work / f"code-{args.before}")
    res = measure({args.before: str(old), "after": str(rep.ROOT)}, args)
    shutil.rmtree(old, ignore_errors=True)
    text = tables(res, args)
    print(text)
    if args.write:
        command = "nice -n 10 python benchmarks/bench_transfer_memory.py " + " ".join(
            a for a in sys.argv[1:] if a != "--write"
        )
        rep.write_results(
            "transfer-memory",
            "Push and pull: peak memory as stores grow (issue 19)",
            command,
            [text],
        )


if __name__ == "__main__":
    main()
