"""Scale: memory and speed of every read path as stores grow (issue 19's targets, one run).

For HalfCheetah-shaped stores (17-dim float32 observations, 6-dim actions, 1000-step
episodes, smooth AR(1) observations as in bench_stores.py) at each size of ``--rows``,
for each backend (memmap, zarr, parquet), and for pixel stores (``[3, 84, 84]`` uint8,
``--pixel-rows``; next pixels are stored beside pixels, as rldata stores them today):

- **peak memory** (``ru_maxrss`` of a fresh child process, so one measurement cannot
  inflate the next) of a process that writes the store, samples (sample(256) batches),
  slices (``SliceSampler(slice_len=8)``), verifies (``rldata.api.verify``), converts (to
  another backend: memmap to zarr, zarr and parquet to memmap), pushes (to a ``file://``
  URL) and pulls (from it); the slope in GB per million rows between the smallest and the
  largest size. RSS counts the mapped pages of a memmap store a process touched.
- sample(256) and SliceSampler batches/s on a handle from ``rldata.load`` (zarr and
  parquet as a ratio of memmap at the same size, round by round), the first sample() on
  a fresh handle (page cache warm), and ``rldata.load(path)`` + first batch **cold**: the
  store's pages are dropped from the page cache first (``posix_fadvise(DONTNEED)`` on
  every store file, which leaves no page of them resident; ``--drop-caches`` drops the
  whole page cache instead, as root); the child imports rldata before the drop, so import
  time is not counted.
- full verify (cold) throughput against ``cat`` of every store file (cold) in the same
  round: the fraction of the disk's sequential read bandwidth a verify reaches.
- commit time (append 10,000 rows to the store, then time ``commit()``), largest size vs 1M.
- a loopback S3 store (moto in server mode, its own process, started and stopped here) of
  ``--s3-rows`` rows: ``rldata.load(URL)`` to the first batch with an empty cache, steady
  sample(256) rate vs the local store in the same round, and the bytes the client received
  for load + 1,000 batches, counted by a TCP proxy in front of moto (every byte moto sent
  over the socket, HTTP headers included), beside the store's size.
- the 1M carry-over targets of earlier issues: sample(256) from the 1M memmap store vs
  TorchRL's ``LazyMemmapStorage`` and vs rldata in memory (``LazyTensorStorage``), all
  holding the same rows; in-memory extend (chunks of 1000 rows to 1M) vs SB3's and
  cpprb's ReplayBuffer (bench_replay.py's contenders: rldata keeps all 11 TED leaves a row,
  SB3 and cpprb their own 5 arrays).

Then every target line of issue 19 with "met" / "missed by X" / "not measured: why".
Timing figures are medians of ``--rounds`` interleaved rounds with the min-max spread;
one-shot measurements (write, convert, push, pull) run once per store. A child that runs
past ``--timeout`` is reported as such. Stores are written in 64-episode blocks and
committed every million rows, never holding the whole store in memory.

Run:  nice -n 10 python benchmarks/bench_scale.py --rows 1000000,10000000 [--memmap-rows 30000000]
          [--pixel-rows 20000] [--s3-rows 1000000] [--rounds 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

BACKENDS = ["memmap", "zarr", "parquet"]
CONVERT_TO = {"memmap": "zarr", "zarr": "memmap", "parquet": "memmap"}
BATCH = 256
T_LEN = 1000
BLOCK_EPISODES = 64
COMMIT_ROWS = 1_000_000
GB = 1e9
MEM_LIMIT = 1.0  # GB, plus the configured cache (issue 19)
SLOPE_FLAT = 0.01  # GB per million rows read as "flat" (0.3 GB over 30M rows)


# --- data, generated block by block ---------------------------------------------------------
def _ted(obs: np.ndarray, act: np.ndarray, rew: np.ndarray, key: str, traj0: int) -> TensorDict:
    """Episode-major arrays ``obs [E, T+1, ...]``, ``act [E, T, A]``, ``rew [E, T]`` as flat TED rows."""
    e, t = rew.shape
    n = e * t
    trunc = torch.zeros(e, t, 1, dtype=torch.bool)
    trunc[:, -1] = True
    trunc = trunc.reshape(n, 1)
    false = torch.zeros(n, 1, dtype=torch.bool)
    shape = obs.shape[2:]
    return TensorDict(
        {
            key: torch.from_numpy(np.ascontiguousarray(obs[:, :-1]).reshape(n, *shape)),
            "action": torch.from_numpy(act.reshape(n, -1)),
            "done": false,
            "terminated": false,
            "truncated": false,
            "next": {
                key: torch.from_numpy(np.ascontiguousarray(obs[:, 1:]).reshape(n, *shape)),
                "reward": torch.from_numpy(rew.reshape(n, 1)),
                "done": trunc,
                "terminated": false,
                "truncated": trunc,
            },
            "collector": {
                "traj_ids": torch.arange(traj0, traj0 + e, dtype=torch.int64).repeat_interleave(t)
            },
        },
        batch_size=[n],
    )


def halfcheetah_block(traj0: int, episodes: int, seed: int) -> TensorDict:
    """``episodes`` HalfCheetah-shaped episodes: AR(1) observations [17], uniform actions [6]."""
    rng = np.random.default_rng(seed)
    obs = np.empty((episodes, T_LEN + 1, 17), np.float32)
    x = rng.standard_normal((episodes, 17)).astype(np.float32)
    noise = rng.standard_normal((T_LEN, episodes, 17)).astype(np.float32)
    for t in range(T_LEN + 1):
        obs[:, t] = x
        if t < T_LEN:
            x = 0.95 * x + 0.3 * noise[t]
    act = rng.uniform(-1, 1, (episodes, T_LEN, 6)).astype(np.float32)
    rew = (obs[:, 1:, 8] - 0.1 * (act**2).sum(-1)).astype(np.float32)
    return _ted(obs, act, rew, "observation", traj0)


def pixel_block(traj0: int, episodes: int, seed: int) -> TensorDict:
    """``[3, 84, 84]`` uint8 frames: a smooth per-episode image (12x12 upsampled) drifting in time."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (episodes, 1, 3, 12, 12), dtype=np.uint8)
    base = base.repeat(7, axis=3).repeat(7, axis=4)
    steps = (np.arange(T_LEN + 1, dtype=np.uint16) // 4).astype(np.uint8)
    obs = base + steps[None, :, None, None, None]  # uint8 wraps: a drifting pattern
    obs += rng.integers(0, 4, obs.shape, dtype=np.uint8)
    act = rng.uniform(-1, 1, (episodes, T_LEN, 6)).astype(np.float32)
    rew = rng.standard_normal((episodes, T_LEN)).astype(np.float32)
    return _ted(obs, act, rew, "pixels", traj0)


def blocks(kind: str, rows: int, traj0: int = 0, seed: int = 0) -> Iterator[TensorDict]:
    """The store's rows, ``BLOCK_EPISODES`` episodes (pixels: 2) at a time; the last is cut."""
    make, per = (pixel_block, 2) if kind == "pixels" else (halfcheetah_block, BLOCK_EPISODES)
    done, i = 0, 0
    while done < rows:
        episodes = min(per, -(-(rows - done) // T_LEN))
        td = make(traj0 + done // T_LEN, episodes, seed * 1_000_003 + i)
        td = td[: rows - done] if td.batch_size[0] > rows - done else td
        yield td
        done += td.batch_size[0]
        i += 1


# --- children: one measurement each, in a fresh process ----------------------------------------
def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB  # KiB on Linux


def drop_cache(path: Path) -> str:
    """Drop ``path``'s pages from the page cache: ``posix_fadvise(DONTNEED)`` on every file
    (checked with ``fincore``: no page stays resident), or system-wide ``drop_caches`` with
    ``--drop-caches`` (it also evicts every other process's pages: other jobs' benchmarks
    on a shared machine slow down, so it is opt-in)."""
    os.sync()
    if os.environ.get("BENCH_SCALE_DROP") == "system":
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            return "drop_caches"
        except OSError:
            pass
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return "posix_fadvise"


def _rate(rb: object, batches: int, seconds: float) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    while True:
        rb.sample()  # type: ignore[attr-defined]
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= batches or (elapsed >= seconds and n >= 5):
            return n / elapsed, n


def child(op: str, a: dict) -> dict:
    import rldata
    import rldata.api as api
    from rldata import stores
    from rldata.data import SliceSampler

    path = a.get("path")
    out: dict = {}
    if op == "write":
        t0 = time.perf_counter()
        with stores.create(path, backend=a["backend"]) as w:
            since = 0
            for td in blocks(a["kind"], a["rows"]):
                w.append(td)
                since += td.batch_size[0]
                if since >= COMMIT_ROWS:
                    w.commit()
                    since = 0
        out["s"] = time.perf_counter() - t0
    elif op in ("sample", "slice", "s3"):
        torch.manual_seed(a.get("seed", 0))
        sampler = SliceSampler(slice_len=8) if op == "slice" else None
        t0 = time.perf_counter()
        rb = rldata.load(a.get("url") or path, sampler=sampler, batch_size=BATCH)
        t1 = time.perf_counter()
        rb.sample()
        t2 = time.perf_counter()
        out.update(open_s=t1 - t0, first_s=t2 - t1, load_first_s=t2 - t0)
        out["rate"], out["batches"] = _rate(rb, a["batches"], a["seconds"])
    elif op == "cold":
        out["drop"] = drop_cache(Path(path))
        t0 = time.perf_counter()
        rb = rldata.load(path, batch_size=BATCH)
        rb.sample()
        out["s"] = time.perf_counter() - t0
    elif op == "verify":
        out["drop"] = drop_cache(Path(path))
        t0 = time.perf_counter()
        out["faults"] = len(api.verify(path))
        out["s"] = time.perf_counter() - t0
    elif op == "convert":
        t0 = time.perf_counter()
        api.convert(path, a["out"], backend=a["to"])
        out["s"] = time.perf_counter() - t0
    elif op == "push":
        t0 = time.perf_counter()
        api.push(path, a["url"])
        out["s"] = time.perf_counter() - t0
    elif op == "pull":
        t0 = time.perf_counter()
        api.pull(a["url"], a["out"])
        out["s"] = time.perf_counter() - t0
    elif op == "commit":
        w = stores.open(path, mode="a", verify=False)
        try:
            tds = list(blocks(a["kind"], 10_000, traj0=w.next_traj_id(), seed=10**6 + a["seed"]))
            t0 = time.perf_counter()
            for td in tds:
                w.append(td)
            t1 = time.perf_counter()
            w.commit()
            out.update(append_s=t1 - t0, s=time.perf_counter() - t1)
        finally:
            w.close()
    elif op == "peers":
        out = peers(a)
    else:
        raise SystemExit(f"unknown child op {op!r}")
    out["rss_gb"] = _rss_gb()
    return out


def spawn(op: str, timeout: float, env: dict | None = None, **a: object) -> dict:
    """Run ``child(op, a)`` in a fresh interpreter; its result, or ``timeout`` / ``error``."""
    cmd = [sys.executable, __file__, "--child", json.dumps({"op": op, **a})]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a first process every time: no proof record of an earlier child's verified blocks
        # (rldata/stores/backend/_proofs.py) carries over between rounds
        env={**os.environ, "RLDATA_PROOFS": "0", **(env or {})},
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hwm = _hwm_gb(proc.pid)  # the high-water mark so far: a lower bound of its peak
        proc.kill()
        proc.communicate()
        print(f"  {op} {a.get('path', '')}: timed out after {timeout:.0f} s", file=sys.stderr)
        return {"timeout": timeout, **({"rss_gb_lower": hwm} if hwm is not None else {})}
    p = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            print(f"  {op} {a.get('path', a.get('url', ''))}: {r}", file=sys.stderr, flush=True)
            return r
    tail = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    if p.returncode < 0 or p.returncode == 137:
        tail = f"killed by signal {-p.returncode}" if p.returncode < 0 else "killed (137)"
    print(f"  {op}: failed after {time.perf_counter() - t0:.0f} s: {tail}", file=sys.stderr)
    return {"error": tail[:160]}


def _hwm_gb(pid: int) -> float | None:
    """``VmHWM`` of a running process (its RSS high-water mark so far), in GB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / GB
    except OSError:
        pass
    return None


def cat_cold(path: Path) -> float:
    """Seconds of ``cat`` of every file of the store, cold, to /dev/null."""
    drop_cache(path)
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        for i in range(0, len(files), 500):
            subprocess.run(["cat", *files[i : i + 500]], stdout=null, check=True)
    return time.perf_counter() - t0


def apparent_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


# --- loopback S3 with a byte-counting proxy ---------------------------------------------------
_SERVER = r"""
import socket, sys, threading
from moto.server import ThreadedMotoServer
mport, pport = int(sys.argv[1]), int(sys.argv[2])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=mport, verbose=False)
server.start()
down, up = [0], [0]
lock = threading.Lock()
def pipe(a, b, ctr):
    try:
        while True:
            d = a.recv(1 << 16)
            if not d:
                break
            b.sendall(d)
            with lock:
                ctr[0] += len(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", pport))
    ls.listen(256)
    while True:
        c, _ = ls.accept()
        u = socket.create_connection(("127.0.0.1", mport))
        threading.Thread(target=pipe, args=(c, u, up), daemon=True).start()
        threading.Thread(target=pipe, args=(u, c, down), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    with lock:
        print(down[0], up[0], flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """moto's S3 server on loopback behind a proxy that counts the bytes each way."""

    def __init__(self) -> None:
        mport, pport = _free_port(), _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(mport), str(pport)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{pport}",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def sent(self) -> int:
        """Bytes moto has sent to clients so far."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[0])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- the 1M carry-over targets ------------------------------------------------------------------
def peers(a: dict) -> dict:
    """sample(256): memmap store vs TorchRL LazyMemmapStorage vs rldata in memory (same rows);
    in-memory extend to 1M in chunks of 1000 rows: rldata vs SB3 vs cpprb."""
    import gc

    import bench_replay as br

    import rldata
    from rldata.data import LazyTensorStorage, ReplayBuffer

    rows, n_rounds, secs = a["rows"], a["rounds"], a["seconds"]
    out: dict = {"have": {"torchrl": br.HAVE_TORCHRL, "sb3": br.HAVE_SB3, "cpprb": br.HAVE_CPPRB}}
    store = rldata.load(a["path"], batch_size=BATCH)
    mem = ReplayBuffer(storage=LazyTensorStorage(rows))
    trl = br.TorchRL(rows, True, a["scratch"]) if br.HAVE_TORCHRL else None
    for td in blocks("halfcheetah", rows):
        mem.extend(td)
        if trl is not None:
            trl.extend(td)
    fns = {
        "memmap store": lambda: br.rate(lambda: store.sample(), secs),
        "rldata memory": lambda m=mem: br.rate(lambda: m.sample(BATCH), secs),
    }
    if trl is not None:
        fns["TorchRL LazyMemmapStorage"] = lambda t=trl: br.rate(t.sample, secs)
    out["sample"] = rep.rounds(fns, n_rounds)
    del fns, mem, trl
    gc.collect()

    chunk = next(blocks("halfcheetah", br.CHUNK))
    arrays = br.sb3_arrays(chunk)

    def fill(make: object, np_arrays: bool) -> float:
        gc.collect()
        t0 = time.perf_counter()
        buf = make()  # type: ignore[operator]
        ext = buf.extend_np if np_arrays else buf.extend
        data = arrays if np_arrays else chunk
        for _ in range(rows // br.CHUNK):
            ext(data)
        elapsed = time.perf_counter() - t0
        del buf
        return rows / elapsed

    ext = {"rldata memory": lambda: fill(lambda: br.Rldata(rows, False, ""), False)}
    if br.HAVE_SB3:
        ext["SB3"] = lambda: fill(lambda: br.SB3(rows, (17,), 6, br.CHUNK), True)
    if br.HAVE_CPPRB:
        ext["cpprb"] = lambda: fill(lambda: br.Cpprb(rows, (17,), 6), True)
    out["extend"] = rep.rounds(ext, n_rounds)
    return out


# --- the run ------------------------------------------------------------------------------
def build(work: Path, kind: str, backend: str, rows: int, timeout: float) -> tuple[Path, dict]:
    path = work / f"{kind}-{rows}-{backend}"
    shutil.rmtree(path, ignore_errors=True)
    print(f"writing {path.name}", file=sys.stderr, flush=True)
    r = spawn("write", timeout, path=str(path), backend=backend, kind=kind, rows=rows)
    if "s" in r:
        r["disk"] = rep.disk_bytes(path)
        r["bytes"] = apparent_bytes(path)
    return path, r


def measure_store(
    path: Path, kind: str, backend: str, n_rounds: int, args: argparse.Namespace, res: dict
) -> None:
    """Every per-store measurement; timing ones ``n_rounds`` times, one-shot ones once."""
    t = args.timeout

    def add(k: str, v: dict) -> None:
        res.setdefault(k, []).append(v)

    for r in range(n_rounds):
        sb = {"batches": args.batches, "seconds": args.seconds, "seed": r}
        add("sample", spawn("sample", t, path=str(path), **sb))
        add("slice", spawn("slice", t, path=str(path), **sb))
        add("cold", spawn("cold", t, path=str(path)))
        cat_s = cat_cold(path)
        v = spawn("verify", t, path=str(path))
        v["cat_s"] = cat_s
        add("verify", v)
    out = path.parent / f"{path.name}-to-{CONVERT_TO[backend]}"
    shutil.rmtree(out, ignore_errors=True)
    res["convert"] = spawn("convert", t, path=str(path), out=str(out), to=CONVERT_TO[backend])
    shutil.rmtree(out, ignore_errors=True)
    pushed, pulled = path.parent / f"{path.name}-pushed", path.parent / f"{path.name}-pulled"
    for p in (pushed, pulled):
        shutil.rmtree(p, ignore_errors=True)
    res["push"] = spawn("push", t, path=str(path), url=f"file://{pushed}")
    res["pull"] = spawn("pull", t, url=f"file://{pushed}", out=str(pulled))
    for p in (pushed, pulled):
        shutil.rmtree(p, ignore_errors=True)
    for r in range(n_rounds):  # last: it appends rows to the store
        add("commit", spawn("commit", t, path=str(path), kind=kind, seed=r))


def vals(rs: list[dict] | None, key: str) -> list[float]:
    return [r[key] for r in rs or [] if key in r]


def fail(rs: list[dict] | dict | None) -> str | None:
    """Why a measurement has no figure (timeout / error), or None."""
    for r in rs if isinstance(rs, list) else [rs] if rs else []:
        if "timeout" in r:
            return f"timed out (> {r['timeout']:.0f} s)"
        if "error" in r:
            return f"failed: {r['error']}"
    return None if rs else "not run"


def gb(r: list[dict] | dict | None, key: str = "rss_gb") -> str:
    rs = r if isinstance(r, list) else [r] if r else []
    v = vals(rs, key)
    if v:
        return f"{max(v):.2f}"
    low = vals(rs, "rss_gb_lower")
    if low:
        return f"≥ {max(low):.2f} ({fail(r)})"
    return fail(r) or "–"


def cell(rs: list[dict] | None, key: str, unit: str = "") -> str:
    v = vals(rs, key)
    return rep.spread(v, unit) if v else (fail(rs) or "–")


MEM_OPS = [
    ("write", "write"),
    ("sample", "sample"),
    ("slice", "slice"),
    ("verify", "verify"),
    ("convert", "convert"),
    ("push", "push (file://)"),
    ("pull", "pull (file://)"),
]


def peak(res: dict, op: str, key: str = "rss_gb") -> float | None:
    v = res.get(op)
    xs = vals(v if isinstance(v, list) else [v] if v else [], key)
    return max(xs) if xs else None


def tables(all_res: dict, args: argparse.Namespace) -> tuple[list[str], dict]:
    """The markdown tables, and the figures the target lines read."""
    out = []
    labels = sorted(all_res, key=lambda k: (k[0] != "halfcheetah", BACKENDS.index(k[1]), k[2]))
    # memory
    rows = []
    for kind, b, n in labels:
        res = all_res[(kind, b, n)]
        rows.append(
            [
                f"{b}{' pixels' if kind == 'pixels' else ''}",
                f"{n:,}",
                (
                    f"{res['write']['disk'] / GB:.2f} / {res['write']['bytes'] / GB:.2f}"
                    if "disk" in res["write"]
                    else "–"
                ),
                *[gb(res.get(op)) for op, _ in MEM_OPS],
            ]
        )
    head = ["backend", "rows", "store GB allocated / apparent"]
    head += [f"{label} GB" for _, label in MEM_OPS]
    out.append(
        "### Peak memory (RSS high-water of a fresh process per operation, GB)\n\n"
        + rep.table(head, rows)
        + f"\n\nconvert: memmap to zarr, zarr and parquet to memmap. zarr's decoded-chunk cache "
        f"is {_zarr_cache() / GB:.2f} GB (RLDATA_ZARR_CACHE_BYTES)."
    )
    # slopes
    slopes: dict = {}
    rows = []
    for b in BACKENDS:
        sizes = sorted(n for k, bb, n in all_res if k == "halfcheetah" and bb == b)
        if len(sizes) < 2:
            continue
        lo, hi = all_res[("halfcheetah", b, sizes[0])], all_res[("halfcheetah", b, sizes[-1])]
        line = [b, f"{sizes[0] / 1e6:g}M → {sizes[-1] / 1e6:g}M"]
        for op, _ in MEM_OPS:
            p0, p1 = peak(lo, op), peak(hi, op)
            if p0 is None or p1 is None:
                line.append("–")
                continue
            s = (p1 - p0) / ((sizes[-1] - sizes[0]) / 1e6)
            slopes[(b, op)] = (s, sizes[0], sizes[-1])
            line.append(f"{s:+.3f}")
        rows.append(line)
    if rows:
        out.append(
            "### Memory slope (GB per million rows, smallest to largest size)\n\n"
            + rep.table(["backend", "sizes"] + [label for _, label in MEM_OPS], rows)
        )
    # speed
    rows = []
    ratio: dict = {}
    for kind, b, n in labels:
        res = all_res[(kind, b, n)]
        mm = all_res.get((kind, "memmap", n), {})
        rr = {}
        for op in ("sample", "slice"):
            mine, base = res.get(op, []), mm.get(op, [])
            pr = [
                x["rate"] / y["rate"]
                for x, y in zip(mine, base, strict=False)
                if "rate" in x and "rate" in y
            ]
            rr[op] = pr
            ratio[(kind, b, n, op)] = pr
        v = res.get("verify", [])
        frac = [x["cat_s"] / x["s"] for x in v if "s" in x]
        ratio[(kind, b, n, "verify")] = frac
        rows.append(
            [
                f"{b}{' pixels' if kind == 'pixels' else ''}",
                f"{n:,}",
                cell(res.get("sample"), "open_s", "s"),
                cell(res.get("sample"), "first_s", "s"),
                cell(res.get("sample"), "rate"),
                rep.spread(rr["sample"], "x") if b != "memmap" else "1",
                cell(res.get("slice"), "first_s", "s"),
                cell(res.get("slice"), "rate"),
                rep.spread(rr["slice"], "x") if b != "memmap" else "1",
                cell(res.get("cold"), "s", "s"),
                cell(v, "s", "s"),
                cell(v, "cat_s", "s"),
                rep.spread(frac, "%") if frac else "–",
                cell(res.get("commit"), "s", "s"),
            ]
        )
    head = [
        "backend",
        "rows",
        "load s (warm)",
        "first sample s (warm)",
        "sample(256)/s",
        "vs memmap",
        "first slice batch s",
        "SliceSampler/s",
        "vs memmap",
        "load + first batch s (cold)",
        "verify s (cold)",
        "cat s (cold)",
        "verify vs cat bandwidth",
        "commit s (10k rows)",
    ]
    out.append(
        "### Speed (sample(256), SliceSampler(slice_len=8) batches of 256, verify, commit)\n\n"
        + rep.table(head, rows)
    )
    return out, {"slopes": slopes, "ratio": ratio}


def _zarr_cache() -> int:
    """The zarr reader's decoded-cache budget, as the backend reads it (its default moves)."""
    from rldata.stores.backend._zarr_cache import CACHE_BYTES

    return CACHE_BYTES


def s3_table(s3: dict) -> str:
    if "rows" not in s3:
        return f"### Loopback S3\n\nnot measured: {s3.get('skip', 'not run')}"
    rs, loc = s3.get("load", []), s3.get("local", [])
    st, sl = s3.get("steady", []), s3.get("steady_local", [])
    first = [
        x["rate"] / y["rate"] for x, y in zip(rs, loc, strict=False) if "rate" in x and "rate" in y
    ]
    pr = [
        x["rate"] / y["rate"] for x, y in zip(st, sl, strict=False) if "rate" in x and "rate" in y
    ]
    s3["ratio"], s3["ratio_1000"] = pr, first
    down = vals(rs, "down")
    size = s3.get("disk", s3["bytes"])  # allocated: a memmap store's files are preallocated
    row = [
        f"{s3['rows']:,}",
        f"{size / GB:.2f} / {s3['bytes'] / GB:.2f}",
        cell(rs, "load_first_s", "s"),
        cell(rs, "rate"),
        cell(loc, "rate"),
        rep.spread(first, "x") if first else "–",
        cell(st, "rate"),
        cell(sl, "rate"),
        rep.spread(pr, "x") if pr else "–",
        f"{rep.med(down) / GB:.2f}" if down else "–",
        f"{rep.med(down) / size:.2f}x" if down else "–",
        gb(rs),
        gb(s3.get("push")),
    ]
    head = [
        "rows (memmap store)",
        "store GB allocated / apparent",
        "load(URL) + first batch s, empty cache",
        "sample(256)/s over the first 1,000 batches (downloading)",
        "local, first 1,000 batches",
        "vs local",
        "steady sample(256)/s once cached (after 1,000 batches)",
        "local, after 1,000 batches",
        "steady vs local",
        "GB downloaded (load + 1,000 batches)",
        "downloaded / allocated",
        "client peak GB",
        "push peak GB",
    ]
    return (
        "### Loopback S3 (moto server, own process)\n\n"
        + rep.table(head, [row])
        + "\n\nBytes downloaded: every byte moto sent over the socket (HTTP headers "
        "included), counted by a TCP proxy between client and server, for load + the first "
        "1,000 batches. The steady columns are the issue's target: a fresh process samples "
        "1,000 batches (downloading and verifying the units they touch), then sample(256) is "
        "timed for at least 2,000 batches and 3 s, beside a local store read the same way "
        "(bench_stream.py's children)."
    )


def peers_table(p: dict) -> str:
    if "sample" not in p:
        return f"### 1M carry-over targets\n\nnot measured: {fail(p) or 'not run'}"
    s, e = p["sample"], p["extend"]
    rows = []
    mm = s["memmap store"]
    for k, v in s.items():
        rows.append([f"sample(256) {k}", rep.spread(v), rep.spread(rep.per_round(mm, v), "x")])
    mine = e["rldata memory"]
    for k, v in e.items():
        rows.append([f"extend {k}, rows/s", rep.spread(v), rep.spread(rep.per_round(mine, v), "x")])
    return (
        "### 1M carry-over targets (HalfCheetah rows, same rows in every buffer)\n\n"
        + rep.table(["", "rate", "rldata / this"], rows)
        + "\n\nsample: `rldata.load` of the 1M memmap store, TorchRL's `TensorDictReplayBuffer"
        "(LazyMemmapStorage)` and rldata's `ReplayBuffer(LazyTensorStorage)`, each extended "
        "with the store's rows (11 TED leaves; TorchRL adds an `index`). extend: chunks of 1000 "
        "rows into a fresh buffer to 1M rows, creation inside the timing; rldata keeps 11 TED "
        "leaves a row, SB3 and cpprb their own 5 arrays (obs, next obs, action, reward, done)."
    )


def judge(ok: bool | None, miss: str, why: str = "") -> str:
    if ok is None:
        return f"not measured: {miss}"
    return "met" if ok else f"missed by {miss}" + (f": {why}" if why else "")


def targets(all_res: dict, fig: dict, s3: dict, p: dict, args: argparse.Namespace) -> str:
    lines = []
    hc = [k for k in all_res if k[0] == "halfcheetah"]
    # memory: at every size, each op
    for kind in ("halfcheetah", "pixels"):
        for b in BACKENDS:
            keys = sorted(k for k in all_res if k[0] == kind and k[1] == b)
            if not keys:
                continue
            limit = MEM_LIMIT + (_zarr_cache() / GB if b == "zarr" else 0)
            for op, label in MEM_OPS[1:]:
                worst = [(peak(all_res[k], op), k[2]) for k in keys]
                got = [(v, n) for v, n in worst if v is not None]
                what = f"peak memory, {b}{' pixels' if kind == 'pixels' else ''}, {label}"
                low = [(peak(all_res[k], op, "rss_gb_lower"), k[2]) for k in keys]
                low = [(v, n) for v, n in low if v is not None and v > limit]
                if low:  # a run cut short already past the limit
                    v, n = max(low)
                    lines.append(
                        f"- {what} ≤ {limit:.2f} GB: ≥ {v:.2f} GB at {n:,} rows before it "
                        f"{fail(all_res[(kind, b, n)].get(op))}: "
                        f"missed by ≥ {v - limit:.2f} GB"
                        + (f": {_why_mem(b, op)}" if _why_mem(b, op) else "")
                    )
                    continue
                if not got:
                    lines.append(f"- {what}: not measured: {fail(all_res[keys[-1]].get(op))}")
                    continue
                v, n = max(got)
                line = f"- {what} ≤ {limit:.2f} GB: {v:.2f} GB at {n:,} rows: " + judge(
                    v <= limit, f"{v - limit:.2f} GB", _why_mem(b, op)
                )
                sl = fig["slopes"].get((b, op)) if kind == "halfcheetah" else None
                if sl is not None:
                    line += f"; slope ~0 (≤ {SLOPE_FLAT} GB/M rows): {sl[0]:+.3f}: " + judge(
                        sl[0] <= SLOPE_FLAT, f"{sl[0] - SLOPE_FLAT:.3f} GB/M rows"
                    )
                lines.append(line)
    big = max((k[2] for k in hc), default=0)
    for op, name in (("sample", "sample(256)"), ("slice", "SliceSampler")):
        for b in ("zarr", "parquet"):
            pr = fig["ratio"].get(("halfcheetah", b, big, op), [])
            what = f"{name} {b} ≥ 0.5x memmap at {big:,} rows"
            if not pr:
                r = all_res.get(("halfcheetah", b, big), {}).get(op)
                lines.append(f"- {what}: not measured: {fail(r) or 'no memmap figure'}")
                continue
            m = rep.med(pr)
            lines.append(f"- {what}: {m:.2f}x: " + judge(m >= 0.5, f"{0.5 - m:.2f}x"))
    note30 = "" if big >= 30_000_000 else f" (target at 30M; largest here {big:,})"
    for b in BACKENDS:
        for key, what, limit in (
            ("first_s", "first sample() warm", 1.0),
            ("cold", "rldata.load(path) + first batch cold", 1.0),
        ):
            res = all_res.get(("halfcheetah", b, big), {})
            rs = res.get("sample" if key == "first_s" else "cold")
            v = vals(rs, key if key == "first_s" else "s")
            line = f"- {what} ≤ {limit:g} s, {b}{note30}"
            if not v:
                lines.append(f"{line}: not measured: {fail(rs)}")
                continue
            m = rep.med(v)
            why = (  # zarr shards and parquet parts have no block digests (memmap has)
                "a first batch hashes whole every shard or part it touches before serving it"
                if b != "memmap"
                else ""
            )
            lines.append(f"{line}: {m:.3f} s: " + judge(m <= limit, f"{m - limit:.3f} s", why))
        frac = fig["ratio"].get(("halfcheetah", b, big, "verify"), [])
        line = f"- full verify ≥ 50% of cat's sequential read bandwidth, {b}, {big:,} rows"
        if frac:
            m = rep.med(frac)
            lines.append(
                f"{line}: {100 * m:.0f}%: " + judge(m >= 0.5, f"{100 * (0.5 - m):.0f} points")
            )
        else:
            lines.append(
                f"{line}: not measured: {fail(all_res.get(('halfcheetah', b, big), {}).get('verify'))}"
            )
        sizes = sorted(k[2] for k in hc if k[1] == b)
        if len(sizes) >= 2 and sizes[0] == 1_000_000:
            c0 = vals(all_res[("halfcheetah", b, sizes[0])].get("commit"), "s")
            c1 = vals(all_res[("halfcheetah", b, sizes[-1])].get("commit"), "s")
            line = f"- commit at {sizes[-1]:,} rows ≤ 1.2x commit at 1M, {b}"
            if c0 and c1:
                m = rep.med(c1) / rep.med(c0)
                lines.append(
                    f"{line}: {m:.2f}x ({rep.med(c1):.3f} s vs {rep.med(c0):.3f} s): "
                    + judge(m <= 1.2, f"{m - 1.2:.2f}x")
                )
            else:
                lines.append(f"{line}: not measured: no commit figure")
    if "rows" not in s3:
        lines.append(f"- loopback S3 targets: not measured: {s3.get('skip', 'not run')}")
    else:
        note = "" if s3["rows"] >= 10_000_000 else f" (target at 10M; {s3['rows']:,} here)"
        v = vals(s3.get("load"), "load_first_s")
        if v:
            m = rep.med(v)
            lines.append(
                f"- S3 first batch ≤ 3 s, empty cache{note}: {m:.2f} s: "
                + judge(m <= 3, f"{m - 3:.2f} s", "benchmarks/RESULTS-stream.md traces it")
            )
        else:
            lines.append(f"- S3 first batch: not measured: {fail(s3.get('load'))}")
        pr = s3.get("ratio", [])
        if pr:
            m = rep.med(pr)
            lines.append(
                f"- S3 steady sampling ≥ 0.5x local{note}: {m:.2f}x: "
                + judge(
                    m >= 0.5,
                    f"{0.5 - m:.2f}x",
                    "measured after 1,000 warm-up batches, beside a local store measured "
                    "the same way",
                )
            )
        d = vals(s3.get("load"), "down")
        if d:
            lines.append(
                f"- S3 bytes downloaded for load + 1,000 batches: {rep.med(d) / GB:.2f} GB beside a "
                f"store of {s3.get('disk', s3['bytes']) / GB:.2f} GB allocated (reported, no threshold)"
            )
    lines.append(
        f"- 2 DataLoader workers ≥ 1.6x one process: not measured: needs two free cores; this "
        f"machine's {os.cpu_count()} cores are shared with other busy jobs (load average "
        f"{os.getloadavg()[0]:.1f})"
    )
    if "sample" in p:
        s, e = p["sample"], p["extend"]
        mm = s["memmap store"]
        for k, goal in (("TorchRL LazyMemmapStorage", 3.0), ("rldata memory", 0.8)):
            if k not in s:
                lines.append(f"- 1M memmap sample(256) ≥ {goal}x {k}: not measured: not installed")
                continue
            m = rep.med(rep.per_round(mm, s[k]))
            lines.append(
                f"- 1M memmap sample(256) ≥ {goal}x {k}: {m:.2f}x: "
                + judge(m >= goal, f"{goal - m:.2f}x")
            )
        for k in ("SB3", "cpprb"):
            if k not in e:
                lines.append(f"- 1M in-memory extend ≥ {k}: not measured: not installed")
                continue
            m = rep.med(rep.per_round(e["rldata memory"], e[k]))
            lines.append(
                f"- 1M in-memory extend ≥ {k}: {m:.2f}x: "
                + judge(
                    m >= 1.0,
                    f"{1 - m:.2f}x",
                    "rldata writes 11 TED leaves a row, " + k + " 5 arrays",
                )
            )
    else:
        lines.append(f"- 1M carry-over targets: not measured: {fail(p) or 'no 1M memmap store'}")
    return "### Targets (issue 19)\n\n" + "\n".join(lines)


def _why_mem(b: str, op: str) -> str:
    """What issue 19 found behind a memory miss; empty where nobody traced it yet."""
    if op in ("sample", "slice") and b in ("memmap", "parquet"):
        return "RSS counts the mapped pages it touched (below RLDATA_MAP_BYTES of files)"
    return ""


def run_s3(work: Path, args: argparse.Namespace, stores_built: dict) -> dict:
    n = args.s3_rows
    if not n:
        return {"skip": "--s3-rows 0"}
    try:
        import moto  # noqa: F401
        import s3fs
    except ImportError as exc:
        return {"skip": f"{exc.name} is not installed"}
    import bench_stream  # its stream/local children measure after a warm-up

    path = stores_built.get(("halfcheetah", "memmap", n))
    if path is None:
        path, w = build(work, "halfcheetah", "memmap", n, args.timeout)
        if "s" not in w:
            return {"skip": f"writing the store {fail(w)}"}
    res: dict = {"rows": n, "bytes": apparent_bytes(path), "disk": rep.disk_bytes(path)}
    res.update(load=[], local=[])
    server = Moto()
    try:
        os.environ.update(server.env)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("bench-scale")
        url = "s3://bench-scale/hc"
        res["push"] = spawn("push", args.timeout, env=server.env, path=str(path), url=url)
        if "s" not in res["push"]:
            return {"skip": f"push {fail(res['push'])}"}
        for r in range(args.rounds):
            cache = work / f"s3-cache-{r}"
            shutil.rmtree(cache, ignore_errors=True)
            before = server.sent()
            x = spawn(
                "s3",
                args.timeout,
                env={**server.env, "RLDATA_CACHE": str(cache)},
                url=url,
                batches=1000,
                seconds=1e9,
                seed=r,
            )
            x["down"] = server.sent() - before
            res["load"].append(x)
            shutil.rmtree(cache, ignore_errors=True)
            res["local"].append(
                spawn("sample", args.timeout, path=str(path), batches=1000, seconds=1e9, seed=r)
            )
            # the target's "once the chunks it needs are cached": bench_stream.py's children
            # sample 1,000 batches first (streamed: they download and verify what they
            # touch), then time sample(256) on the warm process, streamed and local alike
            steady = {"seed": r, "warm": 1000, "batches": 2000, "seconds": 3.0}
            res.setdefault("steady", []).append(
                bench_stream.spawn(
                    "stream",
                    env={**server.env, "RLDATA_CACHE": str(cache)},
                    timeout=args.timeout,
                    url=url,
                    **steady,
                )
            )
            shutil.rmtree(cache, ignore_errors=True)
            res.setdefault("steady_local", []).append(
                bench_stream.spawn("local", timeout=args.timeout, path=str(path), **steady)
            )
    finally:
        server.stop()
    return res


def save_raw(path: Path, all_res: dict, s3: dict, pr: dict) -> None:
    """Every figure so far, to re-render the tables with ``--render`` (a crash loses nothing)."""
    res = {f"{k}|{b}|{n}": v for (k, b, n), v in all_res.items()}
    path.write_text(json.dumps({"argv": sys.argv[1:], "res": res, "s3": s3, "peers": pr}))


def measure_all(args: argparse.Namespace) -> tuple[dict, dict, dict]:
    if args.drop_caches:
        os.environ["BENCH_SCALE_DROP"] = "system"
    sizes = [int(x) for x in args.rows.split(",") if x]
    extra = [int(x) for x in args.memmap_rows.split(",") if x]
    backends = [b for b in args.backends.split(",") if b]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    all_res: dict = {}
    built: dict = {}
    t_start = time.perf_counter()
    try:
        plan = [("halfcheetah", b, n) for n in sizes for b in backends]
        plan += [("halfcheetah", "memmap", n) for n in extra if "memmap" in backends]
        if args.pixel_rows:
            plan += [("pixels", b, args.pixel_rows) for b in backends]
        for kind, b, n in plan:
            if args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at:
                all_res[(kind, b, n)] = {
                    "write": {"error": f"skipped: past --stop-at {args.stop_at}"}
                }
                continue
            path, w = build(work, kind, b, n, args.timeout)
            res = all_res[(kind, b, n)] = {"write": w}
            if "s" in w:
                built[(kind, b, n)] = path
                measure_store(path, kind, b, args.rounds, args, res)
            if not (
                kind == "halfcheetah" and n in (args.peers_rows, args.s3_rows) and b == "memmap"
            ):
                shutil.rmtree(path, ignore_errors=True)  # keep only what later sections read
                built.pop((kind, b, n), None)
            print(f"[{time.perf_counter() - t_start:.0f} s] done {kind} {b} {n:,}", file=sys.stderr)
            save_raw(args.raw, all_res, {}, {})
        late = args.stop_at and time.strftime("%H:%M", time.gmtime()) >= args.stop_at
        s3 = {"skip": f"past --stop-at {args.stop_at}"} if late else run_s3(work, args, built)
        mm1 = built.get(("halfcheetah", "memmap", args.peers_rows))
        if args.no_peers:
            pr: dict = {"error": "--no-peers"}
        elif mm1 is None:
            pr = {"error": f"no {args.peers_rows:,}-row memmap store (add it to --rows)"}
        else:
            pr = spawn(
                "peers",
                args.timeout,
                path=str(mm1),
                rows=args.peers_rows,
                rounds=args.rounds,
                seconds=1.0,
                scratch=str(work / "torchrl"),
            )
        save_raw(args.raw, all_res, s3, pr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return all_res, s3, pr


def docs_section(command: str, text: str) -> None:
    """The "Scale" section of docs/BENCHMARKS.md: replaced when there, appended when not."""
    path = rep.ROOT / "docs" / "BENCHMARKS.md"
    begin, end = "<!-- scale:begin -->", "<!-- scale:end -->"
    section = (
        f"{begin}\n## Scale\n\nCopied from `benchmarks/RESULTS-scale.md` by the run itself "
        f"(issue 19's targets).\n\n"
        f"Command: `{command}`\n\n{text.strip()}\n{end}"
    )
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        new = old[: old.index(begin)] + section + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(new)
    print(f"wrote {path.relative_to(rep.ROOT)}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="1000000,10000000,30000000", help="HalfCheetah store sizes")
    p.add_argument("--memmap-rows", default="", help="extra sizes for the memmap backend only")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--pixel-rows", type=int, default=100_000, help="0 skips the pixel stores")
    p.add_argument("--s3-rows", type=int, default=10_000_000, help="0 skips the S3 section")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batches", type=int, default=500, help="sample batches timed (at most)")
    p.add_argument("--seconds", type=float, default=3.0, help="sample timing window (at most)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one child may run")
    p.add_argument("--no-peers", action="store_true", help="skip the 1M carry-over targets")
    p.add_argument(
        "--peers-rows", type=int, default=1_000_000, help="rows of the carry-over targets"
    )
    p.add_argument("--keep", type=Path, default=None, help="work directory (kept)")
    p.add_argument(
        "--drop-caches",
        action="store_true",
        help="drop the page cache system-wide (as root) instead of the store's files only",
    )
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-scale.md")
    p.add_argument("--stop-at", default="", help="UTC HH:MM after which no new store starts")
    p.add_argument("--raw", type=Path, default=Path(tempfile.gettempdir()) / "bench-scale-raw.json")
    p.add_argument("--render", type=Path, default=None, help="re-render the tables from --raw")
    p.add_argument(
        "--measured", default="", help="with --render: the revision the measuring run ran"
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        a = json.loads(args.child)
        try:
            r = child(a.pop("op"), a)
        except Exception as exc:
            traceback.print_exc()
            raise SystemExit(f"{type(exc).__name__}: {exc}") from None
        print("RESULT " + json.dumps(r), flush=True)
        return

    if args.render:
        raw = json.loads(args.render.read_text())
        all_res = {
            tuple(k.split("|")[:2]) + (int(k.split("|")[2]),): v for k, v in raw["res"].items()
        }
        s3, pr, argv = raw["s3"], raw["peers"], raw["argv"]
    else:
        all_res, s3, pr = measure_all(args)
        argv = sys.argv[1:]
    body, fig = tables(all_res, args)
    written = all_res.get(("halfcheetah", "memmap", s3.get("rows")), {}).get("write", {})
    if "rows" in s3 and "disk" not in s3 and "disk" in written:  # raw figures of older runs
        s3["disk"] = written["disk"]
    rounds_run = max((len(v.get("sample", [])) for v in all_res.values()), default=0)
    sections = [*body, s3_table(s3), peers_table(pr), targets(all_res, fig, s3, pr, args)]
    text = "\n\n".join(sections)
    print(text)
    if args.write:
        command = " ".join(["nice -n 10 python benchmarks/bench_scale.py", *argv])
        if args.measured:  # the run measured a git archive of that revision, not this tree
            command = f"PYTHONPATH=<git archive of {args.measured}> {command}"
        if args.render:
            command += f"`, tables written afterwards by `--render {args.render} --write"
        rep.write_results(
            "scale",
            "Scale: memory and speed as stores grow (issue 19)",
            command,
            [
                (
                    f"Code measured: {args.measured} (a git archive on PYTHONPATH; the Run line "
                    "names the tree that wrote the tables). "
                    if args.measured
                    else "Code measured: the Run line's. "
                )
                + "Targets met or missed are listed at the end. "
                + (
                    f"This run had {rounds_run} round(s): "
                    + (
                        "each timing is one measurement, without a spread; on a machine shared "
                        "with other jobs (load average in the Run line) a single timing can be "
                        "off by 2x or more, so a ratio near its threshold (commit growth, "
                        "SliceSampler) is not a verdict."
                        if rounds_run == 1
                        else "medians with min-max spread."
                    )
                ),
                rep.region("scale", "\n\n".join(body)),
                rep.region("scale-s3", s3_table(s3)),
                rep.region("scale-peers", peers_table(pr)),
                rep.region("scale-targets", targets(all_res, fig, s3, pr, args)),
            ],
        )
        docs_section(
            command, "\n\n".join([*body, s3_table(s3), targets(all_res, fig, s3, pr, args)])
        )


if __name__ == "__main__":
    main()
