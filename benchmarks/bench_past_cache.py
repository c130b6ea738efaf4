"""Past the page cache: a store several times the memory its reader may use, page cache included.

A benchmark on a machine with more free memory than the store is large measures the page
cache, not the store: every read after the first is a memory copy. Writing a store larger
than this machine's memory is not possible here (the disk has ~30 GB free), so the reader
is put in a memory cgroup (v1 ``memory.limit_in_bytes``, which charges the page cache the
process fills) of ``--limit-mib``: its reads beyond that come from the disk, as they would for
a store larger than the machine's memory.

Each measurement runs in a fresh process, one of ``bench_scale.py``'s children (the same
operations and code as the scale table), twice a round: once without a limit with the store
warm in the page cache, once inside the cgroup with the store's pages dropped first
(``posix_fadvise(DONTNEED)`` on its files: pages left in the page cache, charged to whoever
read them first, would be read for free). Per operation: time or rate, the process's peak
RSS, the cgroup's peak (RSS + the page cache it filled) and the bytes the process read from
the disk (``/proc/self/io`` ``read_bytes``) per batch, against the bytes a batch returns.

Needs root and a cgroup-v1 memory controller (``/sys/fs/cgroup/memory``); it says so and
exits otherwise.

    nice -n 10 python benchmarks/bench_past_cache.py --rows 10000000 --limit-mib 512 --rounds 3 --write
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
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as rep  # noqa: E402
import bench_scale as bs  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")
ROW_BYTES = 178  # a decoded HalfCheetah row (bench_scale's generator)
OPS = ["cold", "sample", "slice", "verify"]


# --- the cgroup ---------------------------------------------------------------------------------
def make_cgroup(limit: int) -> Path:
    """A fresh memory cgroup of ``limit`` bytes (RSS and page cache together)."""
    if not (CGROUP_ROOT / "memory.limit_in_bytes").exists():
        raise SystemExit(f"no cgroup-v1 memory controller at {CGROUP_ROOT}: this needs one")
    cg = CGROUP_ROOT / f"rldata-bench-{os.getpid()}"
    try:
        cg.mkdir(exist_ok=True)
        (cg / "memory.limit_in_bytes").write_text(str(limit))
    except OSError as exc:
        raise SystemExit(f"cannot create the memory cgroup {cg}: {exc} (needs root)") from None
    return cg


def remove_cgroup(cg: Path) -> None:
    try:
        cg.rmdir()
    except OSError as exc:
        print(f"cgroup {cg} left behind: {exc}", file=sys.stderr)


def _read_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    return 0


# --- a child: one operation in a fresh process, inside the cgroup when given --------------------
def child(a: dict) -> dict:
    cg = a.pop("cgroup", None)
    if cg:
        Path(cg, "cgroup.procs").write_text(str(os.getpid()))
    r0 = _read_bytes()
    out = bs.child(a.pop("op"), a)
    out["read_bytes"] = _read_bytes() - r0
    if cg:
        out["cgroup_peak"] = int(Path(cg, "memory.max_usage_in_bytes").read_text())
        out["cgroup_failcnt"] = int(Path(cg, "memory.failcnt").read_text())
    return out


def spawn(op: str, timeout: float, cg: Path | None, cache: Path, **a: object) -> dict:
    """Run ``child`` in a fresh interpreter (``bench_scale.spawn``'s protocol), with
    ``cache`` as its ``RLDATA_CACHE`` (where proof records are kept)."""
    if cg is not None:
        (cg / "memory.max_usage_in_bytes").write_text("0")
        (cg / "memory.failcnt").write_text("0")
    payload = {"op": op, **a, **({"cgroup": str(cg)} if cg else {})}
    cmd = [sys.executable, __file__, "--child", json.dumps(payload)]
    try:
        env = {**os.environ, "RLDATA_CACHE": str(cache)}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print(f"  {op}: timed out after {timeout:.0f} s", file=sys.stderr)
        return {"timeout": timeout}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            print(f"  {op} {'cgroup' if cg else 'no limit'}: {r}", file=sys.stderr, flush=True)
            return r
    tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    print(f"  {op}: failed: {tail}", file=sys.stderr)
    return {"error": tail[:160]}


def cat_in(path: Path, cg: Path | None) -> tuple[float, int]:
    """Seconds to ``cat`` every file of the store cold (inside ``cg`` when given) and the
    cgroup's peak meanwhile."""
    bs.drop_cache(path)
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    if cg is not None:
        (cg / "memory.max_usage_in_bytes").write_text("0")
    join = f"echo $$ > {cg / 'cgroup.procs'}; " if cg is not None else ""
    t0 = time.perf_counter()
    for i in range(0, len(files), 500):
        chunk = " ".join(f"'{f}'" for f in files[i : i + 500])
        subprocess.run(["sh", "-c", f"{join}exec cat {chunk} > /dev/null"], check=True)
    took = time.perf_counter() - t0
    peak = int((cg / "memory.max_usage_in_bytes").read_text()) if cg is not None else 0
    return took, peak


def warm(path: Path) -> None:
    """Read every file of the store once, so an unlimited reader finds it in the page cache."""
    for d, _, fs in os.walk(path):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                while fh.read(8 << 20):
                    pass


# --- the run ------------------------------------------------------------------------------------
CONDITIONS = {
    "none": "no limit, first process (store in the page cache for sample, slice)",
    "warm": "no limit, after `rldata verify` on this machine (store in the page cache)",
    "cgroup": "memory cgroup, first process, store's pages dropped",
    "proven": "memory cgroup, after `rldata verify` on this machine, store's pages dropped",
}


def measure(path: Path, cg: Path, work: Path, args: argparse.Namespace) -> dict:
    """Each round: every operation under each condition. A first process has no proof
    record (a fresh ``RLDATA_CACHE`` each child: it hashes each block it touches); a proven
    one shares the cache a full ``verify`` recorded every block in, before the rounds."""
    res: dict = {c: {op: [] for op in OPS} for c in CONDITIONS}
    res["cat"] = []
    t = args.timeout
    proven = work / "cache-proven"
    shutil.rmtree(proven, ignore_errors=True)
    spawn("verify", t, None, proven, path=str(path))
    for r in range(args.rounds):
        sb = {"batches": args.batches, "seconds": args.seconds, "seed": r}
        for cond in CONDITIONS:
            group = None if cond in ("none", "warm") else cg
            for op in OPS:
                shared = cond in ("proven", "warm")
                cache = proven if shared else work / f"cache-{cond}-{op}-{r}"
                if op in ("sample", "slice"):
                    if group is None:
                        warm(path)
                    else:
                        bs.drop_cache(path)
                    v = spawn(op, t, group, cache, path=str(path), **sb)
                else:  # cold and verify drop the store's pages themselves
                    v = spawn(op, t, group, cache, path=str(path))
                res[cond][op].append(v)
                if not shared:
                    shutil.rmtree(cache, ignore_errors=True)
        res["cat"].append(
            {"none": cat_in(path, None)[0], **dict(zip(("cgroup", "peak"), cat_in(path, cg)))}
        )
    return res


def _vals(rs: list[dict], key: str) -> list[float]:
    return [r[key] for r in rs if key in r]


def _cell(rs: list[dict], key: str, unit: str = "", scale: float = 1.0) -> str:
    xs = [x * scale for x in _vals(rs, key)]
    if not xs:
        errs = [r.get("error") or f"timed out ({r.get('timeout')} s)" for r in rs if r]
        return f"failed: {errs[0]}" if errs else "-"
    if unit == "GB":
        m = f"{rep.med(xs):.2f}"
        return m if len(xs) == 1 else f"{m} ({min(xs):.2f}–{max(xs):.2f})"
    return rep.spread(xs, unit)


def table(res: dict, rows: int, store_bytes: int, limit: int) -> str:
    head = [
        f"{rows:,} rows ({store_bytes / 1e9:.2f} GB on disk)",
        "load + first batch s (cold)",
        "sample(256)/s",
        "disk read a sample(256) batch",
        "SliceSampler(8)/s",
        "verify s (cold)",
        "cat s (cold)",
        "verify vs cat bandwidth",
        "peak RSS GB (sample / verify)",
        "cgroup peak GB (sample / verify): charged after joining, page cache included",
    ]
    batch_bytes = bs.BATCH * ROW_BYTES
    out = []
    for cond, label in CONDITIONS.items():
        r, group = res[cond], (None if cond in ("none", "warm") else cond)
        per_batch = [
            s["read_bytes"] / max(1, s["batches"] + 1) for s in r["sample"] if "read_bytes" in s
        ]
        cat = [c["none" if group is None else "cgroup"] for c in res["cat"]]
        ver = _vals(r["verify"], "s")
        ratio = [c / v for c, v in zip(cat, ver)] if ver else []
        out.append(
            [
                label,
                _cell(r["cold"], "s", "s"),
                _cell(r["sample"], "rate"),
                (
                    f"{rep.spread([b / 1024 for b in per_batch])} KiB "
                    f"({rep.med(per_batch) / batch_bytes:.1f}x the {batch_bytes // 1024} KiB "
                    "it returns)"
                    if per_batch
                    else "-"
                ),
                _cell(r["slice"], "rate"),
                _cell(r["verify"], "s", "s"),
                rep.spread(cat, "s"),
                rep.spread(ratio, "%") if ratio else "-",
                f"{_cell(r['sample'], 'rss_gb', 'GB')} / {_cell(r['verify'], 'rss_gb', 'GB')}",
                (
                    f"{_cell(r['sample'], 'cgroup_peak', 'GB', 1e-9)} / "
                    f"{_cell(r['verify'], 'cgroup_peak', 'GB', 1e-9)}"
                    if group is not None
                    else "-"
                ),
            ]
        )
    return rep.table(head, out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--backend", default="memmap")
    p.add_argument(
        "--limit-mib",
        type=int,
        default=1024,
        help="the reader's memory cgroup (RSS it allocates included)",
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--keep", type=Path, default=None, help="work directory (kept, store reused)")
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-past-cache.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        try:
            r = child(json.loads(args.child))
        except Exception as exc:
            traceback.print_exc()
            raise SystemExit(f"{type(exc).__name__}: {exc}") from None
        print("RESULT " + json.dumps(r), flush=True)
        return

    limit = args.limit_mib << 20
    cg = make_cgroup(limit)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-past-cache-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        path = work / f"halfcheetah-{args.rows}-{args.backend}"
        if not (path / "rldata.json").exists():  # the manifest: a store from an earlier run
            path, w = bs.build(work, "halfcheetah", args.backend, args.rows, args.timeout)
            if "s" not in w:
                raise SystemExit(f"writing the store failed: {w}")
        store_bytes = rep.disk_bytes(path)
        res = measure(path, cg, work, args)
    finally:
        remove_cgroup(cg)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    text = table(res, args.rows, store_bytes, limit)
    note = (
        f"{args.backend} store of {args.rows:,} HalfCheetah rows, {store_bytes / limit:.1f}x "
        f"the cgroup's {args.limit_mib} MiB; {args.rounds} rounds, medians (min-max). "
        "Disk read a batch: the sampling process's `read_bytes` over its batches, the first "
        "included; the bytes a batch returns are 256 decoded rows of ~178 B."
    )
    print(text + "\n\n" + note)
    if args.write:
        rep.write_results(
            "past-cache",
            "Past the page cache: a reader in a memory cgroup smaller than the store",
            "nice -n 10 python benchmarks/bench_past_cache.py " + " ".join(sys.argv[1:]),
            [note, rep.region("past-cache", text)],
        )


if __name__ == "__main__":
    main()
