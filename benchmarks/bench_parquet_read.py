"""Parquet random reads beside memmap, and the parquet writer's and verifier's peak memory.

Issue 19: sample(256) from a parquet store larger than its decoded cache must reach 0.5x
memmap's rate at the same size, and writing, sampling and verifying must run in memory that
does not grow with the rows. For each size this writes a HalfCheetah-shaped parquet store
(``bench_scale.py``'s rows, ~178 B a row, committed every million rows) with the code on
``PYTHONPATH`` (its peak RSS and seconds), reuses or writes a memmap store of the same rows,
then, in fresh child processes with the parquet cache at ``--cache-mib``, alternates memmap
and parquet ``rldata.load(path).sample()`` rounds (rate timed for ``--seconds`` after the
first batch; ratios round by round), SliceSampler(8) rounds, and one ``rldata verify`` of
the parquet store. ``--label`` names the code measured; figures accumulate in ``--out``
(JSON lines) and ``--write`` renders every label there into RESULTS-parquet-read.md.

Run:  nice -n 5 python benchmarks/bench_parquet_read.py --rows 1000000,3000000 \\
          --keep /tmp/pqr/after --label after --out /tmp/pqr/figures.jsonl [--write]
The code before a change: ``git archive`` it to DIR and put ``PYTHONPATH=DIR`` in front.

``--cold-vs REV`` measures instead ``rldata.load(path)`` + the first sample(256) **cold**
(the store's files dropped from the page cache with ``posix_fadvise(DONTNEED)``, as
bench_scale does; modules compiled once before the rounds, into ``KEEP/pycache``) for REV's code on a store REV writes, this code on that same store, and
this code on a store it writes (block digests since format 1.7), alternating round by round
in fresh processes; those figures render as a second, marked table (``parquet-cold-open``).

Run:  nice -n 10 python benchmarks/bench_parquet_read.py --rows 1000000,10000000 \
          --keep /tmp/pq_blocks --cold-vs 41b6ef6 --out /tmp/pq_blocks/figures.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402
import bench_scale as bs  # noqa: E402


def _rates(path: Path, op: str, env: dict, args: argparse.Namespace, seed: int) -> dict:
    sb = {"batches": 10**6, "seconds": args.seconds, "seed": seed}
    return bs.spawn(op, args.timeout, env=env, path=str(path), **sb)


def measure(rows: int, args: argparse.Namespace) -> dict:
    """Every figure of one size (see the module docstring)."""
    keep = args.keep
    env = {"RLDATA_PARQUET_CACHE_BYTES": str(args.cache_mib << 20)}
    out: dict = {"label": args.label, "rows": rows, "cache_mib": args.cache_mib}
    pq_path = keep / f"halfcheetah-{rows}-parquet"
    if args.rebuild or not (pq_path / "rldata.json").exists():
        shutil.rmtree(pq_path, ignore_errors=True)
        for _ in range(2):  # a writer killed from outside (a shared machine) is tried again
            pq_path, w = bs.build(keep, "halfcheetah", "parquet", rows, args.timeout)
            if "s" in w:
                break
        out["write"] = w
    mm_path = (args.memmap or keep) / f"halfcheetah-{rows}-memmap"
    if not (mm_path / "rldata.json").exists():
        mm_path, _ = bs.build(mm_path.parent, "halfcheetah", "memmap", rows, args.timeout)
    out["disk_mb"] = {
        "parquet": rep.disk_bytes(pq_path) / 1e6,
        "memmap": rep.disk_bytes(mm_path) / 1e6,
    }
    for op in ("sample", "slice"):
        got: dict[str, list[dict]] = {"memmap": [], "parquet": []}
        for r in range(args.rounds):
            got["memmap"].append(_rates(mm_path, op, env, args, r))
            got["parquet"].append(_rates(pq_path, op, env, args, r))
        out[op] = got
    out["verify"] = bs.spawn("verify", args.timeout, env=env, path=str(pq_path))
    return out


COLD = {  # column -> (whose code, whose store)
    "before": ("before", "before"),
    "after, old store": ("after", "before"),
    "after": ("after", "after"),
}


def cold(rows: int, args: argparse.Namespace) -> dict:
    """Load + first batch, cold: REV's code and this code, each on the store its code writes,
    and this code on REV's store, ``--rounds`` alternating rounds (see the docstring)."""
    code = rep.package_at(args.cold_vs, args.keep / f"code-{args.cold_vs}")
    # modules compiled once, as an installed package's are (PYTHONDONTWRITEBYTECODE=1 here
    # made every child compile rldata again: ~1-1.5 s of each cold load at this load)
    pyc = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(args.keep / "pycache")}
    env = {"before": {"PYTHONPATH": str(code), **pyc}, "after": pyc}
    probe = "import rldata, sys; print(rldata.__file__)"
    got = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env["before"]},
        capture_output=True,
        cwd="/",
    )
    if not got.stdout.decode().startswith(str(code)):  # the child must run REV's code
        raise SystemExit(f"PYTHONPATH={code} does not import rldata from there: {got}")
    out: dict = {"kind": "cold", "label": args.label, "rev": args.cold_vs, "rows": rows}
    paths = {who: args.keep / f"cold-{who}-{rows}-parquet" for who in env}
    for who, path in paths.items():
        if args.rebuild or not (path / "rldata.json").exists():
            shutil.rmtree(path, ignore_errors=True)
            w = bs.spawn(
                "write", args.timeout, env=env[who], path=str(path), backend="parquet",
                kind="halfcheetah", rows=rows,
            )  # fmt: skip
            out.setdefault("write", {})[who] = w
        m = json.loads((path / "rldata.json").read_text())
        out.setdefault("format", {})[who] = [
            m["format_version"],
            m["checksums"].get("blocks") is not None,
        ]
    out["disk_mb"] = {who: rep.disk_bytes(p) / 1e6 for who, p in paths.items()}
    for who, path in paths.items():  # untimed: each code's modules compiled
        bs.spawn("cold", args.timeout, env=env[who], path=str(path))
    got_: dict[str, list[dict]] = {col: [] for col in COLD}
    for _ in range(args.rounds):
        for col_, (who, store) in COLD.items():
            got_[col_].append(bs.spawn("cold", args.timeout, env=env[who], path=str(paths[store])))
    out["cold"] = got_
    return out


def render_cold(rows: list[dict]) -> str:
    """The cold load + first batch table: seconds median (min–max), ratio to before."""
    head = ["rows (code before)", *(f"{c} s" for c in COLD), "after / before"]
    head.append("peak RSS GB (before / after)")
    body = []
    for r in rows:
        secs = {c: _vals(r["cold"][c], "s") for c in COLD}
        pairs = [
            a["s"] / b["s"]
            for a, b in zip(r["cold"]["after"], r["cold"]["before"])
            if "s" in a and "s" in b
        ]
        rss = [_vals(r["cold"][c], "rss_gb") for c in ("before", "after")]
        body.append(
            [
                f"{r['rows']:,} ({r['rev']})",
                *(rep.spread(secs[c]) for c in COLD),
                _ratio(pairs),
                " / ".join(f"{max(x):.2f}" if x else "–" for x in rss),
            ]
        )
    return rep.table(head, body)


def _vals(rs: list[dict], key: str) -> list[float]:
    return [r[key] for r in rs if key in r]


def _ratio(xs: list[float]) -> str:
    """``median (min–max)`` of ratios, 2 significant figures (0.0014x stays readable)."""
    if not xs:
        return "–"
    m = f"{statistics.median(xs):.2g}x"
    return m if len(xs) == 1 else f"{m} ({min(xs):.2g}x–{max(xs):.2g}x)"


def render(rows: list[dict]) -> str:
    head = [
        "code, rows",
        "parquet sample(256)/s",
        "memmap sample(256)/s",
        "ratio",
        "parquet SliceSampler/s",
        "ratio",
        "first batch s",
        "sample RSS GB",
        "write s",
        "write RSS GB",
        "verify s",
        "verify RSS GB",
        "disk MB (memmap)",
    ]
    body = []
    for r in rows:
        cells = [f"{r['label']}, {r['rows']:,}"]
        for op in ("sample", "slice"):
            p, m = r[op]["parquet"], r[op]["memmap"]
            pr, mr = _vals(p, "rate"), _vals(m, "rate")
            cells.append(rep.spread(pr))
            if op == "sample":
                cells.append(rep.spread(mr))
            pairs = [a["rate"] / b["rate"] for a, b in zip(p, m) if "rate" in a and "rate" in b]
            cells.append(_ratio(pairs))
        p = r["sample"]["parquet"]
        cells.append(rep.spread(_vals(p, "first_s")))
        rss = _vals(p, "rss_gb") + _vals(r["slice"]["parquet"], "rss_gb")
        cells.append(f"{max(rss):.2f}" if rss else "–")
        w = r.get("write") or {}
        cells.append(f"{w['s']:.0f}" if "s" in w else "(reused)")
        cells.append(f"{w['rss_gb']:.2f}" if "rss_gb" in w else "–")
        v = r.get("verify") or {}
        cells.append(f"{v['s']:.1f}" if "s" in v else "–")
        cells.append(f"{v['rss_gb']:.2f}" if "rss_gb" in v else "–")
        cells.append(f"{r['disk_mb']['parquet']:.0f} ({r['disk_mb']['memmap']:.0f})")
        body.append(cells)
    return rep.table(head, body)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,3000000", help="sizes, comma-separated")
    p.add_argument("--keep", type=Path, required=True, help="directory of the parquet stores")
    p.add_argument("--memmap", type=Path, default=None, help="directory of memmap stores")
    p.add_argument("--rebuild", action="store_true", help="write the parquet stores again")
    p.add_argument("--cache-mib", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--label", default="now")
    p.add_argument("--out", type=Path, default=None, help="append figures here (JSON lines)")
    p.add_argument("--write", action="store_true", help="write RESULTS-parquet-read.md")
    p.add_argument("--render-only", action="store_true", help="only render --out's figures")
    p.add_argument("--note", default="", help="a paragraph for RESULTS (how the runs were made)")
    p.add_argument("--cold-vs", default=None, metavar="REV", help="cold load: REV vs this code")
    p.add_argument("--cold-note", default="", help="a paragraph for RESULTS on the cold runs")
    args = p.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    done: list[dict] = []
    if not args.render_only:
        for n in (int(x) for x in args.rows.split(",")):
            r = cold(n, args) if args.cold_vs else measure(n, args)
            done.append(r)
            if args.out is not None:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    if args.out is not None and args.out.exists():
        done = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
    colds = [r for r in done if r.get("kind") == "cold"]
    done = [r for r in done if r.get("kind") != "cold"]
    table = render(done) if done else ""
    cold_table = render_cold(colds) if colds else ""
    print(table, cold_table, sep="\n\n")
    if args.write:
        argv = sys.argv[1:]
        for flag in ("--note", "--cold-note"):  # notes are printed below, not in the command
            if flag in argv:
                i = argv.index(flag)
                argv = argv[:i] + argv[i + 2 :]
        cmd = " ".join(["nice -n 5 python benchmarks/bench_parquet_read.py", *argv])
        note = (
            f"HalfCheetah-shaped rows (obs 17, action 6, ~178 B a decoded row), parquet cache "
            f"{statistics.median(r['cache_mib'] for r in done or [{'cache_mib': 0}]):.0f} MiB; "
            "each rate the median (min–max) of rounds in fresh processes, memmap and parquet "
            "alternating; ratios taken round by round. RSS is each child's peak (ru_maxrss)."
        )
        cold_head = (
            "**Cold open** (`--cold-vs REV`): `rldata.load(path)` + the first sample(256), the "
            "store's files dropped from the page cache first (posix_fadvise DONTNEED); since "
            "3c975db's rows, modules compiled once before the rounds (PYTHONPYCACHEPREFIX), as "
            "an installed package's are, where earlier rows compiled rldata in each child; 'before' "
            "is REV's code (a git archive on PYTHONPATH) on a store it wrote, 'after, old store' "
            "this code on that store (no block digests: parts hashed whole on first read), "
            "'after' this code on a store it wrote (block digests, format 1.7); seconds the "
            "median (min–max) of rounds in fresh processes, the three alternating; the ratio "
            "taken round by round."
        )
        sections = [note, args.note, table] if done else []
        if colds:
            sections += [cold_head, args.cold_note, rep.region("parquet-cold-open", cold_table)]
        rep.write_results(
            "parquet-read",
            "Parquet random reads beside memmap; writer and verify memory — "
            "`python benchmarks/bench_parquet_read.py`",
            cmd,
            sections,
        )


if __name__ == "__main__":
    main()
