"""Peak memory of the whole-store commands bench_scale.py does not run, as stores grow.

Issue 19 asks that "sampling, trajectory slicing, verify, info, digest, diff, merge,
convert, push, pull, report and the writers" run in memory that does not grow with the
number of rows. bench_scale.py measures the first of them; this script measures the rest on
the same HalfCheetah-shaped stores (its generator, 1M-row commits, so every size past 1M
has parts, shards and chunk logs of the same sizes):

- ``info``: :func:`rldata.api.dataset_card` (what ``rldata info`` prints);
- ``digest``: :func:`rldata.api.content_digest` of an opened store;
- ``diff``: :func:`rldata.api.diff` of the store with itself (every episode hashed twice);
- ``merge``: :func:`rldata.api.merge` of the store with itself into a new store of the same
  backend (twice the rows written);
- ``report``: :func:`rldata.api.report` (the HTML page; its histograms use a 100k-row
  sample).

Each runs in a fresh process. Two peaks are reported: ``VmHWM`` (RSS high-water, what
``top`` shows, counting the file pages of a mapped store the process touched, which the
kernel can drop at any time) and anonymous memory (``RssAnon``, polled every 10 ms by a
thread of the child: the heap, which the kernel cannot drop). The slope is GB per million
rows between the smallest and the largest size.

Run:  nice -n 10 python benchmarks/bench_read_paths.py --rows 1000000,4000000 [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402
import bench_scale  # noqa: E402

OPS = ["info", "digest", "diff", "merge", "report"]
GB = 1e9


def _status_mb() -> tuple[int, int, int]:
    """``(RssAnon, RssFile, VmHWM)`` of this process, in kB."""
    with open("/proc/self/status") as f:
        text = f.read()

    def field(name: str) -> int:
        return int(text.split(name + ":")[1].split()[0])

    return field("RssAnon"), field("RssFile"), field("VmHWM")


def child(op: str, path: str, out: str, backend: str) -> dict:
    import rldata.api as api

    peak = {"anon": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak["anon"] = max(peak["anon"], _status_mb()[0])
            time.sleep(0.01)

    threading.Thread(target=poll, daemon=True).start()
    t0 = time.perf_counter()
    if op == "info":
        api.dataset_card(path)
    elif op == "digest":
        with api.open(path) as store:
            api.content_digest(store)
    elif op == "diff":
        if not api.diff(path, path).identical:
            raise SystemExit("a store differs from itself")
    elif op == "merge":
        api.merge([path, path], out, backend=backend, force=True)
    elif op == "report":
        api.report(path, out, force=True)
    else:
        raise SystemExit(f"unknown op {op!r}")
    seconds = time.perf_counter() - t0
    done.set()
    anon, _, hwm = _status_mb()
    return {
        "s": seconds,
        "hwm_gb": hwm * 1024 / GB,
        "anon_gb": max(peak["anon"], anon) * 1024 / GB,
    }


def spawn(op: str, path: Path, out: Path, backend: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([op, str(path), str(out), backend])]
    try:
        # RLDATA_PROOFS=0: a first process every time, as in bench_scale.py (no record of an
        # earlier child's verified blocks carries over)
        env = {**os.environ, "RLDATA_PROOFS": "0"}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    finally:
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:160]}


def cell(r: dict | None, key: str, fmt: str) -> str:
    if r is None:
        return "not run"
    if "error" in r:
        return r["error"]
    return format(r[key], fmt)


def slope(res: dict, backend: str, op: str, key: str, sizes: list[int]) -> str:
    a, b = res.get((backend, sizes[0], op)), res.get((backend, sizes[-1], op))
    if not a or not b or "error" in a or "error" in b or sizes[0] == sizes[-1]:
        return "n/a"
    return f"{(b[key] - a[key]) / ((sizes[-1] - sizes[0]) / 1e6):+.3f}"


def tables(res: dict, backends: list[str], sizes: list[int]) -> str:
    head = ["backend", "rows"] + [f"{op} GB (anon / RSS) , s" for op in OPS]
    rows = []
    for b in backends:
        for n in sizes:
            cells = []
            for op in OPS:
                r = res.get((b, n, op))
                if r is None or "error" in r:
                    cells.append(cell(r, "s", ""))
                    continue
                cells.append(f"{r['anon_gb']:.2f} / {r['hwm_gb']:.2f}, {r['s']:.1f}")
            rows.append([b, f"{n:,}", *cells])
    peaks = rep.table(head, rows, "ll" + "r" * len(OPS))
    head2 = ["backend", "sizes"] + [f"{op} anon / RSS" for op in OPS]
    rows2 = []
    for b in backends:
        cells = [
            f"{slope(res, b, op, 'anon_gb', sizes)} / {slope(res, b, op, 'hwm_gb', sizes)}"
            for op in OPS
        ]
        rows2.append([b, f"{sizes[0] / 1e6:g}M → {sizes[-1] / 1e6:g}M", *cells])
    return (
        "### Peak memory (GB: anonymous / RSS high-water) and seconds, a fresh process each\n\n"
        + peaks
        + "\n\n### Slope (GB per million rows: anonymous / RSS high-water)\n\n"
        + rep.table(head2, rows2, "ll" + "r" * len(OPS))
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,4000000")
    p.add_argument("--backends", default="memmap,zarr,parquet")
    p.add_argument("--timeout", type=float, default=1200)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-read-paths.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(*json.loads(args.child))), flush=True)
        return
    sizes = [int(x) for x in args.rows.split(",")]
    backends = args.backends.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-read-paths-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {}
    try:
        for b in backends:
            for n in sizes:
                path, built = bench_scale.build(work, "halfcheetah", b, n, args.timeout)
                if "error" in built or "timeout" in built:
                    for op in OPS:
                        res[(b, n, op)] = {"error": f"write failed: {built}"}
                    continue
                for op in OPS:
                    out = work / f"{b}-{n}-{op}.out"
                    res[(b, n, op)] = r = spawn(op, path, out, b, args.timeout)
                    print(f"{b} {n:,} {op}: {r}", file=sys.stderr, flush=True)
                shutil.rmtree(path, ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = tables(res, backends, sizes)
    print(text)
    if args.write:
        command = "nice -n 10 python benchmarks/bench_read_paths.py " + " ".join(sys.argv[1:])
        path = rep.write_results(
            "read-paths",
            "Whole-store commands: peak memory as stores grow (issue 19)",
            command.replace(" --write", ""),
            [rep.region("read-paths", text)],
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
