"""Zarr reads before and after block digests (format 1.8, issue 19), in one run.

For HalfCheetah-shaped zarr stores (``bench_scale.py``'s rows) of each size in ``--rows``,
two stores of the same rows: one written and read by the code at ``--before`` (a directory
holding ``git archive`` of the commit to compare, put first on ``PYTHONPATH``), one written
and read by this tree. Each measurement runs in a fresh child (``bench_scale.py --child``),
before and after interleaved round by round:

- ``rldata.load(path)`` + first sample(256) **cold**: the store's pages dropped first
  (``posix_fadvise(DONTNEED)`` on every file; rldata imported before the drop, zarr not);
- first sample on a fresh handle (page cache warm), sample(256) batches/s over the next
  ``--seconds`` (a store with block digests hashes the blocks each batch touches first),
  then, after ``--warm-seconds`` more of sampling, the steady rate;
- full ``rldata verify`` cold, beside ``cat`` of every store file cold (its share of the
  disk's sequential bandwidth).

Medians of ``--rounds`` rounds with the min-max spread.

Run:  git archive 9a836e9 | tar -x -C /tmp/zarr-blocks/before
      nice -n 10 python benchmarks/bench_zarr_read.py --before /tmp/zarr-blocks/before \\
          --rows 1000000,10000000 --work /tmp/zarr-blocks
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_scale as bs  # noqa: E402


def child(a: dict) -> dict:
    """First sample, early rate, then the steady rate after ``warm`` seconds of sampling."""
    import rldata

    rb = rldata.load(a["path"], batch_size=bs.BATCH)
    t0 = time.perf_counter()
    rb.sample()
    out = {"first_s": time.perf_counter() - t0}
    out["rate"], _ = bs._rate(rb, 10**9, a["seconds"])
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < a["warm"]:
        rb.sample()
    out["steady"], _ = bs._rate(rb, 10**9, a["seconds"])
    out["rss_gb"] = bs._rss_gb()
    return out


def spawn_sample(env: dict, timeout: float, **a: object) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps(a)]
    try:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "RLDATA_PROOFS": "0", **env},
        )
    except subprocess.TimeoutExpired:
        return {}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  sample child failed: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return {}


def _env(before: Path | None) -> dict:
    if before is None:
        return {"PYTHONPATH": str(HERE.parent)}
    return {"PYTHONPATH": str(before)}


def _build(path: Path, rows: int, env: dict, timeout: float) -> None:
    if (path / "rldata.json").exists():
        return  # written by an earlier run of the same code (delete it to rebuild)
    print(f"writing {path}", file=sys.stderr, flush=True)
    r = bs.spawn(
        "write", timeout, env=env, path=str(path), backend="zarr", kind="halfcheetah", rows=rows
    )
    if "s" not in r:
        raise SystemExit(f"writing {path} failed: {r}")


def _fmt(xs: list[float], digits: int = 3) -> str:
    if not xs:
        return "n/a"
    med = statistics.median(xs)
    spread = f" ({min(xs):.{digits}f}–{max(xs):.{digits}f})" if len(xs) > 1 else ""
    return f"{med:,.{digits}f}{spread}"


def measure(args: argparse.Namespace) -> list[str]:
    sides = {"before": _env(args.before), "after": _env(None)}
    lines = [
        "| rows | code | load + first batch s (cold) | first sample s (warm) | "
        "sample(256)/s, first seconds | sample(256)/s, steady | verify s (cold) | "
        "cat s (cold) | verify vs cat |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in args.rows:
        paths = {side: args.work / f"{side}-{rows}" for side in sides}
        for side, env in sides.items():
            _build(paths[side], rows, env, args.timeout)
        names = ("cold", "first", "rate", "steady", "verify", "cat")
        res: dict = {side: {k: [] for k in names} for side in sides}
        for _ in range(args.rounds):
            for side, env in sides.items():
                p, t, out = str(paths[side]), args.timeout, res[side]
                c = bs.spawn("cold", t, env=env, path=p)
                out["cold"].append(c.get("s"))

                s = spawn_sample(env, t, path=p, seconds=args.seconds, warm=args.warm_seconds)
                for k, v in (("first", "first_s"), ("rate", "rate"), ("steady", "steady")):
                    out[k].append(s.get(v))
                print(f"  {side} {rows}: {c} {s}", file=sys.stderr, flush=True)
                if args.verify:
                    out["cat"].append(bs.cat_cold(paths[side]))
                    out["verify"].append(bs.spawn("verify", t, env=env, path=p).get("s"))
        for side in sides:
            o = {k: [x for x in v if x is not None] for k, v in res[side].items()}
            share = (
                f"{statistics.median(o['cat']) / statistics.median(o['verify']):.0%}"
                if o["cat"] and o["verify"]
                else "n/a"
            )
            lines.append(
                f"| {rows:,} | {side} | {_fmt(o['cold'])} | {_fmt(o['first'])} | "
                f"{_fmt(o['rate'], 0)} | {_fmt(o['steady'], 0)} | {_fmt(o['verify'], 2)} | {_fmt(o['cat'], 2)} | {share} |"
            )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, help="git archive of the old commit (required)")
    p.add_argument("--rows", default="1000000,10000000")
    p.add_argument("--work", type=Path, default=Path("/tmp/zarr-blocks"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warm-seconds", type=float, default=20.0)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--no-verify", dest="verify", action="store_false")
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    if args.before is None:
        p.error("--before is required")
    args.rows = [int(x) for x in args.rows.split(",")]
    args.before = args.before.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = measure(args)
    print(f"load: {load}; {os.cpu_count()} cores")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
