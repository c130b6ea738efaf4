"""Random access above the decoded cache: sample(256)/s and SliceSampler/s at one size.

Issue 19: zarr and parquet readers decode whole units (a chunk, a row group) per random
row once a store is larger than their decoded cache. This measures, for each backend, a
HalfCheetah-shaped store (``bench_scale.py``'s rows, ~178 B a row) read through
``rldata.load`` in a fresh process with both decoded caches set to ``--cache-mib``:
sample(256) batches/s, ``SliceSampler(slice_len=8)`` batches/s, the open and first-batch
times and the child's peak RSS. Stores are written by the code checked out (``--keep``
keeps them, so a store written by older code can be read by newer code: ``--label``
names the figures).

Run:  nice -n 5 python benchmarks/bench_decode_units.py --rows 3000000 --keep /tmp/du \
          --label before [--rounds 2] [--out /tmp/du/before.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402
import bench_scale as bs  # noqa: E402

BACKENDS = ["memmap", "zarr", "parquet"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=3_000_000)
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--cache-mib", type=int, default=256, help="both decoded caches, MiB")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batches", type=int, default=300)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--keep", type=Path, required=True, help="directory of the stores (reused)")
    p.add_argument("--label", default="now", help="a name for these figures")
    p.add_argument("--out", type=Path, default=None, help="append the figures here (JSON lines)")
    args = p.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    cache = str(args.cache_mib << 20)
    env = {"RLDATA_ZARR_CACHE_BYTES": cache, "RLDATA_PARQUET_CACHE_BYTES": cache}
    rows = []
    for backend in args.backends.split(","):
        path = args.keep / f"halfcheetah-{args.rows}-{backend}"
        if not (path / "rldata.json").exists():
            path, w = bs.build(args.keep, "halfcheetah", backend, args.rows, args.timeout)
            print(f"  wrote {path.name}: {w}", file=sys.stderr)
        res: dict[str, list[dict]] = {"sample": [], "slice": []}
        for r in range(args.rounds):
            sb = {"batches": args.batches, "seconds": args.seconds, "seed": r}
            for op in ("sample", "slice"):
                res[op].append(bs.spawn(op, args.timeout, env=env, path=str(path), **sb))
        row = {
            "label": args.label,
            "backend": backend,
            "rows": args.rows,
            "cache_mib": args.cache_mib,
        }
        row["disk_mb"] = rep.disk_bytes(path) / 1e6
        for op, rs in res.items():
            ok = [r for r in rs if "rate" in r]
            if not ok:
                row[op] = rs[0]
                continue
            row[f"{op}_per_s"] = statistics.median(r["rate"] for r in ok)
            row[f"{op}_spread"] = [min(r["rate"] for r in ok), max(r["rate"] for r in ok)]
            row[f"{op}_first_s"] = statistics.median(r["first_s"] for r in ok)
            row[f"{op}_open_s"] = statistics.median(r["open_s"] for r in ok)
            row[f"{op}_rss_gb"] = max(r["rss_gb"] for r in ok)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out is not None:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(
        f"\n| {args.label}: {args.rows:,} rows, caches {args.cache_mib} MiB | sample(256)/s | "
        "SliceSampler/s | open s | first batch s | peak RSS GB | disk MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r.get('sample_per_s', float('nan')):,.1f} | "
            f"{r.get('slice_per_s', float('nan')):,.1f} | {r.get('sample_open_s', float('nan')):.3f} | "
            f"{r.get('sample_first_s', float('nan')):.3f} | "
            f"{max(r.get('sample_rss_gb', 0), r.get('slice_rss_gb', 0)):.2f} | {r['disk_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
