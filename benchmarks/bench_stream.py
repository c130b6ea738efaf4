"""Streaming a memmap store from loopback S3: first batch, steady rate, bytes, memory.

For HalfCheetah-shaped memmap stores (bench_scale.py's rows: 17-dim float32 observations,
6-dim actions, 1000-step episodes) of each size in ``--rows``, pushed to a moto S3 server
on loopback (its own process, behind bench_scale.py's TCP proxy that counts every byte
the server sends, HTTP included), each client a fresh process with an empty chunk cache:

- **first batch**: ``rldata.load(URL)`` + the first ``sample(256)``, seconds, and the bytes
  the server sent for them;
- **1,000 batches**: load + 1,000 ``sample(256)`` batches, the bytes sent, beside the
  store's size (every payload object, as pushed);
- **steady**: ``sample(256)`` batches/s once those 1,000 batches warmed the chunk cache,
  against the same store read locally (``rldata.load(path)``) in the same round;
- **the server's floor**: the first batch's ranged GETs (logged by the client) replayed by
  one plain s3fs ``cat_ranges`` call against the same server, so the first batch reads
  beside what the server allows;
- **peak RSS** of the streaming client (``ru_maxrss``), with the chunk cache's size.

Which units the store has (format 1.4 block digests, or checksum chunks) is printed: a
batch downloads whole units, so their size decides the first batch's bytes.

Run:  nice -n 10 python benchmarks/bench_stream.py --rows 1000000[,10000000] [--rounds 2]
          [--cache-bytes 4000000000] [--gap BYTES] [--write] [--render WORK/raw.json]
      (--write: benchmarks/RESULTS-stream.md; --gap: a key's units this near share a range;
      --render: print an earlier run's table again, from the raw figures it kept)
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
import bench_scale  # noqa: E402
from bench_scale import Moto, blocks  # noqa: E402

# moto answers a ranged GET by reading the whole object, then slicing it (moto 5.2:
# ``FakeKey.value``), so one GET of a 68 MB object costs ~65 ms and GETs of one object are
# serialised by its lock: 15 GETs/s at any concurrency. S3 reads only the range.
# ``--server ranged`` patches moto in its server process to read the range by seek
# (RANGED_MOTO), so the bench measures the client against S3's cost model.
RANGED_MOTO = r"""
import threading as _th
import moto.s3.models as _mm
import moto.s3.responses as _mr

_lazy = _th.local()


class _Ranged:
    def __init__(self, key):
        self.key = key

    def __len__(self):
        return self.key.contentsize

    def __getitem__(self, s):
        with self.key.lock:
            self.key._value_buffer.seek(s.start)
            return self.key._value_buffer.read(s.stop - s.start)


_value = _mm.FakeKey.value
_mm.FakeKey.value = property(
    lambda self: _Ranged(self) if getattr(_lazy, "on", False) else _value.fget(self),
    _value.fset,
)
_get = _mr.S3Response._key_response_get


def _key_response_get(self, query, key_name):
    rng = self.headers.get("range") or ""
    _lazy.on = rng.startswith("bytes=") and "," not in rng and not rng.startswith("bytes=-")
    try:
        return _get(self, query, key_name)
    finally:
        _lazy.on = False


_mr.S3Response._key_response_get = _key_response_get
"""


def moto(kind: str) -> Moto:
    """moto on loopback behind bench_scale's counting proxy; ``ranged``: ranges read by seek."""
    if kind == "stock":
        return Moto()
    real = bench_scale._SERVER
    bench_scale._SERVER = RANGED_MOTO + real
    try:
        return Moto()
    finally:
        bench_scale._SERVER = real


BATCH = 256
COMMIT_ROWS = 1_000_000
TARGET_FIRST_S = 3.0
TARGET_STEADY = 0.5


def child(op: str, a: dict) -> dict:
    import torch

    import rldata
    from rldata import stores

    out: dict = {}
    torch.manual_seed(a.get("seed", 0))
    if a.get("gap") is not None:  # --gap: how near a key's units must be to share a range
        from rldata.stores.location import remote_units

        remote_units.COALESCE_GAP = int(a["gap"])
    if op == "write":
        t0 = time.perf_counter()
        with stores.create(a["path"], capacity=None) as w:
            since = 0
            for td in blocks("halfcheetah", a["rows"]):
                w.append(td)
                since += td.batch_size[0]
                if since >= COMMIT_ROWS:
                    w.commit()
                    since = 0
        out["s"] = time.perf_counter() - t0
        m = json.loads((Path(a["path"]) / "rldata.json").read_text())
        blk = (m["checksums"].get("blocks") or {}).get("block_rows")
        out["units"] = (
            f"block digests, {blk} rows"
            if blk
            else (f"checksum chunks, {m['checksums']['chunk_rows']} rows")
        )
    elif op == "push":
        from rldata import api

        t0 = time.perf_counter()
        api.push(a["path"], a["url"])
        out["s"] = time.perf_counter() - t0
    elif op == "floor":
        import s3fs

        reqs = json.loads(Path(a["ranges"]).read_text())
        from rldata.stores.location.remote_units import FETCH_AT_ONCE

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        t0 = time.perf_counter()
        got = fs.cat_ranges(  # as many in flight at once as the client sends
            [r[0] for r in reqs],
            [r[1] for r in reqs],
            [r[2] for r in reqs],
            on_error="raise",
            batch_size=FETCH_AT_ONCE,
        )
        out["s"] = time.perf_counter() - t0
        out["requests"] = len(reqs)
        out["bytes"] = sum(len(g) for g in got)
    elif op in ("first", "stream", "local"):
        sent: list[tuple[str, int, int]] = []
        if op == "first":  # the ranges the first batch sends, for the floor row to replay
            from rldata.stores.location import remote_units

            real = remote_units.Remote._fetch

            def logged(self: object, reqs: list) -> list:
                sent.extend((self.loc.path(rel), a0, b0) for rel, a0, b0 in reqs)  # type: ignore[attr-defined]
                return real(self, reqs)  # type: ignore[arg-type]

            remote_units.Remote._fetch = logged  # type: ignore[method-assign]
        t0 = time.perf_counter()
        rb = rldata.load(a.get("url") or a["path"], batch_size=BATCH)
        rb.sample()
        out["first_s"] = time.perf_counter() - t0
        if op == "first":
            out["requests"] = len(sent)
            Path(a["ranges"]).write_text(json.dumps(sent))
        if op != "first":
            for _ in range(a["warm"]):
                rb.sample()
            out["warm_s"] = time.perf_counter() - t0
            n, t1 = 0, time.perf_counter()
            while n < a["batches"] or time.perf_counter() - t1 < a["seconds"]:
                rb.sample()
                n += 1
            out["rate"] = n / (time.perf_counter() - t1)
    else:
        raise SystemExit(f"unknown op {op}")
    out["rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return out


def scaling(server_kind: str) -> list[str]:
    """Ranged GETs/s the server answers, by object size and GETs in flight: 300 random 34 KiB
    ranges (an observation unit) a cell, one s3fs ``cat_ranges`` call with ``batch_size``."""
    import random

    server = moto(server_kind)
    lines = []
    try:
        os.environ.update(server.env)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("bench-scaling")
        rng = random.Random(0)
        for mb in (1, 68):
            fs.pipe(f"bench-scaling/o{mb}", os.urandom(mb << 20))
            cells = []
            for conc in (1, 8, 64, 256):
                starts = [rng.randrange(0, (mb << 20) - 34816) for _ in range(300)]
                t0 = time.perf_counter()
                fs.cat_ranges(
                    [f"bench-scaling/o{mb}"] * 300,
                    starts,
                    [a + 34816 for a in starts],
                    batch_size=conc,
                )
                cells.append(f"{300 / (time.perf_counter() - t0):,.0f}")
            lines.append(f"| {server_kind} | {mb} MB | " + " | ".join(cells) + " |")
    finally:
        server.stop()
    return lines


def spawn(op: str, env: dict | None = None, timeout: float = 3600, **a: object) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps({"op": op, **a})]
    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            print(f"  {op}: {r}", file=sys.stderr, flush=True)
            return r
    tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    print(f"  {op}: failed: {tail}", file=sys.stderr, flush=True)
    return {"error": tail[:200]}


def payload_bytes(path: Path) -> int:
    """The store's bytes as pushed (the object index's sizes: memmap files cut at their rows)."""
    from rldata.sharing import objects as ob

    doc = json.loads((path / ob.INDEX).read_text()) if (path / ob.INDEX).exists() else None
    if doc:
        return sum(int(e["size"]) for e in doc["objects"].values())
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def run(rows: int, work: Path, args: argparse.Namespace, server: Moto) -> dict:
    path = work / f"hc-{rows}"
    res: dict = {"rows": rows}
    if not (path / "rldata.json").exists():
        shutil.rmtree(path, ignore_errors=True)
        w = spawn("write", path=str(path), rows=rows)
        if "s" not in w:
            return {**res, "error": f"write: {w.get('error')}"}
    m = json.loads((path / "rldata.json").read_text())
    blk = (m["checksums"].get("blocks") or {}).get("block_rows")
    res["units"] = (
        f"block digests, {blk} rows"
        if blk
        else f"checksum chunks, {m['checksums']['chunk_rows']} rows"
    )
    url = f"s3://bench-stream/hc-{rows}"
    push = spawn("push", env=server.env, path=str(path), url=url)
    if "s" not in push:
        return {**res, "error": f"push: {push.get('error')}"}
    res["store_bytes"] = sum(
        int(e["size"])
        for e in json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import s3fs,sys;sys.stdout.write(s3fs.S3FileSystem().cat_file('bench-stream/hc-{rows}/rldata.objects.json').decode())",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, **server.env},
                check=True,
            ).stdout
        )["objects"].values()
    )
    res.update(first=[], stream=[], local=[])
    env = {**server.env, "RLDATA_CHUNK_CACHE_BYTES": str(args.cache_bytes)}
    for r in range(args.rounds):
        cache = work / f"cache-{rows}-{r}"
        shutil.rmtree(cache, ignore_errors=True)
        before = server.sent()
        ranges = work / f"ranges-{rows}-{r}.json"
        x = spawn(
            "first",
            env={**env, "RLDATA_CACHE": str(cache)},
            url=url,
            seed=r,
            ranges=str(ranges),
            gap=args.gap,
        )
        x["down"] = server.sent() - before
        res["first"].append(x)
        if ranges.exists():  # the same ranges, sent at once by plain s3fs: the server's floor
            res.setdefault("floor", []).append(spawn("floor", env=env, ranges=str(ranges)))
        shutil.rmtree(cache, ignore_errors=True)
        before = server.sent()
        x = spawn(
            "stream",
            env={**env, "RLDATA_CACHE": str(cache)},
            url=url,
            seed=r,
            gap=args.gap,
            warm=999,
            batches=args.batches,
            seconds=args.seconds,
        )
        x["down"] = server.sent() - before  # load + 1,000 batches, and the steady ones
        res["stream"].append(x)
        shutil.rmtree(cache, ignore_errors=True)
        res["local"].append(
            spawn(
                "local",
                path=str(path),
                seed=r,
                warm=999,
                batches=args.batches,
                seconds=args.seconds,
            )
        )
    return res


def spread(xs: list[float], fmt: str) -> str:
    """`` (min-max)`` of several rounds; nothing for one."""
    return f" ({min(xs):{fmt}}-{max(xs):{fmt}})" if len(xs) > 1 else ""


def table(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "| server | gap | rows | units | store | first batch | its ranged GETs | the same GETs, plain s3fs "
        "| bytes, first batch | bytes, load + 1,000 batches "
        "| steady sample(256)/s streamed | local | ratio | client peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    from rldata.stores.location.remote_units import COALESCE_GAP

    g = COALESCE_GAP if args.gap is None else args.gap
    gap = f"{g >> 10} KiB" if g > 0 else str(g)
    for res in results:
        if "error" in res:
            lines.append(
                f"| {args.server} | {gap} | {res['rows']:,} | | | {res['error']} | | | | | | | | |"
            )
            continue
        ok = [x for x in res["first"] if "first_s" in x]
        st = [x for x in res["stream"] if "rate" in x]
        lo = [x for x in res["local"] if "rate" in x]
        first = median([x["first_s"] for x in ok]) if ok else float("nan")
        down1 = median([x["down"] for x in ok]) if ok else float("nan")
        # the stream child's bytes include its steady batches, which download nothing more
        # once the 1,000 warm-up batches filled the cache (the rate column is measured then)
        down = median([x["down"] for x in st]) if st else float("nan")
        rate = median([x["rate"] for x in st]) if st else float("nan")
        local = median([x["rate"] for x in lo]) if lo else float("nan")
        rss = max([x["rss_gb"] for x in st], default=float("nan"))
        sb = res["store_bytes"]
        reqs = median([x["requests"] for x in ok if "requests" in x] or [float("nan")])
        fl = [x for x in res.get("floor", []) if "s" in x]
        floor = median([x["s"] for x in fl]) if fl else float("nan")
        rps = median([x["requests"] / x["s"] for x in fl]) if fl else float("nan")
        lines.append(
            f"| {args.server} | {gap} | {res['rows']:,} | {res.get('units', '')} | {sb / 1e6:,.0f} MB | {first:.2f} s{spread([x['first_s'] for x in ok], '.2f')} | "
            f"{reqs:,.0f} | {floor:.2f} s ({rps:,.0f}/s) | "
            f"{down1 / 1e6:,.1f} MB ({down1 / sb:.1%}) | {down / 1e6:,.0f} MB ({down / sb:.0%}) | "
            f"{rate:,.0f}{spread([x['rate'] for x in st], ',.0f')} | "
            f"{local:,.0f}{spread([x['rate'] for x in lo], ',.0f')} | {rate / local:.2f}x | {rss:.2f} GB |"
        )
    lines.append("")
    lines.append(
        f"Chunk cache {args.cache_bytes / 1e9:.1f} GB (RLDATA_CHUNK_CACHE_BYTES), empty at each "
        f'start; medians of {args.rounds} rounds. "The same GETs, plain s3fs": the first '
        f"batch's ranged GETs replayed by one s3fs `cat_ranges` call against the same server, "
        f"as many in flight at once as the client sends (what the server allows). Gap: a "
        f"key's units this near share a range. Targets at 10M rows: first batch <= "
        f"{TARGET_FIRST_S:.0f} s, steady >= {TARGET_STEADY}x local."
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        a = json.loads(sys.argv[2])
        print("RESULT " + json.dumps(child(a.pop("op"), a)), flush=True)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--cache-bytes", type=int, default=4_000_000_000)
    ap.add_argument(
        "--gap", type=int, default=None, help="coalescing gap in bytes (default: the library's)"
    )
    ap.add_argument(
        "--server",
        choices=("stock", "ranged"),
        default="stock",
        help="stock moto (reads a whole object per ranged GET) or moto reading ranges by seek",
    )
    ap.add_argument("--work", default=None)
    ap.add_argument("--write", action="store_true")
    ap.add_argument(
        "--scaling", action="store_true", help="only: GETs/s by object size and concurrency"
    )
    ap.add_argument(
        "--render", default=None, help="only: the table of an earlier run's WORK/raw.json"
    )
    args = ap.parse_args()
    if args.render:  # the other arguments as that run had them (--server, --gap, --rounds)
        print(table(json.loads(Path(args.render).read_text()), args))
        return
    if args.scaling:
        print("| server | object | 1 at once | 8 | 64 | 256 |\n|---|---|---|---|---|---|")
        print("\n".join(scaling("stock") + scaling("ranged")))
        print(f"load average {os.getloadavg()[0]:.1f}")
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    server = moto(args.server)
    try:
        subprocess.run(
            [sys.executable, "-c", "import s3fs; s3fs.S3FileSystem().mkdir('bench-stream')"],
            env={**os.environ, **server.env},
            check=True,
        )
        results = [run(int(n), work, args, server) for n in args.rows.split(",")]
    finally:
        server.stop()
    text = table(results, args)
    print(text)
    (work / "raw.json").write_text(json.dumps(results, indent=1))
    if args.write:
        out = Path(__file__).resolve().parent / "RESULTS-stream.md"
        cmd = "python benchmarks/bench_stream.py " + " ".join(sys.argv[1:])
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        load = os.getloadavg()[0]
        with open(out, "a") as f:  # runs are appended: each with its command and the load
            f.write(
                f"\n### {when}, load average {load:.1f} at the end\n\nCommand: `{cmd}`\n\n{text}\n"
            )


if __name__ == "__main__":
    main()
