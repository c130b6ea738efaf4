"""Replay-buffer speed, like against like: rldata beside TorchRL, SB3, cpprb and bare copies.

Run:  python benchmarks/bench_replay.py [--rounds 5] [--write]   (about 4 minutes on 2 cores)
      python benchmarks/bench_replay.py --quick                  (smaller buffers, a smoke run)

For 1M TED transitions of Pendulum shape (obs 3, act 1) and HalfCheetah shape (obs 17,
act 6): extend throughput (chunks of 1000 rows into a fresh buffer; buffer and store
creation, and the memmap store's commits, inside the timing), one-row add throughput
and sample(256) batches/s. In memory, rldata's ``LazyTensorStorage`` buffer is compared
with TorchRL's ``TensorDictReplayBuffer(LazyTensorStorage)``, SB3's ``ReplayBuffer`` and
cpprb's ``ReplayBuffer``; on disk, rldata's ``LazyMemmapStorage`` (a durable store) with
TorchRL's ``LazyMemmapStorage``. Bare floors: one preallocated tensor per key with a
per-key ``copy_`` (extend) or ``index_select`` (sample). rldata and TorchRL keep all 11
TED leaves per row; SB3 and cpprb keep their own 5 arrays. Then prioritized sample +
update, SliceSampler at 1M vs 10M rows, and pixels ([3, 84, 84] uint8 with next pixels)
against libc ``memcpy`` bandwidth (``numpy.copyto`` and ``ctypes.memmove`` of 256 MiB,
the faster counts) measured in the same run. Each figure is the median of ``--rounds``
interleaved rounds with the min-max spread; ratios are taken round by round. Peers are
skipped (–) when the ``bench`` extra is missing.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict

os.environ.setdefault("RL_LOGGING_LEVEL", "WARNING")  # TorchRL's per-buffer INFO lines
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import med, per_round, region, rounds, spread, table, write_results  # noqa: E402

from rldata.data import (  # noqa: E402
    LazyMemmapStorage,
    LazyTensorStorage,
    PrioritizedSampler,
    ReplayBuffer,
    SliceSampler,
    TensorDictReplayBuffer,
)

HAVE_TORCHRL = importlib.util.find_spec("torchrl") is not None
HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None
HAVE_CPPRB = importlib.util.find_spec("cpprb") is not None
BATCH = 256
CHUNK = 1000


# --- data ------------------------------------------------------------------------------


def ted_chunk(
    rows: int, obs: tuple[int, ...], act: int, episode: int = 200, pixels: bool = False
) -> TensorDict:
    """``rows`` valid TED transitions with random payload (episodes of ``episode`` steps)."""
    g = torch.Generator().manual_seed(0)
    done = torch.zeros(rows, 1, dtype=torch.bool)
    done[episode - 1 :: episode] = True
    false = torch.zeros(rows, 1, dtype=torch.bool)
    key = "pixels" if pixels else "observation"
    if pixels:
        o, o2 = (
            torch.randint(0, 256, (rows, *obs), generator=g, dtype=torch.uint8) for _ in range(2)
        )
    else:
        o, o2 = torch.randn(rows, *obs, generator=g), torch.randn(rows, *obs, generator=g)
    return TensorDict(
        {
            key: o,
            "action": torch.randn(rows, act, generator=g),
            "done": false,
            "terminated": false.clone(),
            "truncated": false.clone(),
            "next": {
                key: o2,
                "reward": torch.randn(rows, 1, generator=g),
                "done": done,
                "terminated": done.clone(),
                "truncated": false.clone(),
            },
            "collector": {"traj_ids": torch.arange(rows) // episode},
        },
        batch_size=[rows],
    )


# --- contenders ----------------------------------------------------------------------------


class Rldata:
    def __init__(self, capacity: int, memmap: bool, scratch: str) -> None:
        storage = (
            LazyMemmapStorage(capacity, scratch_dir=scratch)
            if memmap
            else LazyTensorStorage(capacity)
        )
        self.rb = ReplayBuffer(storage=storage)

    def extend(self, td):
        self.rb.extend(td)

    def add(self, row):
        self.rb.add(row)

    def sample(self):
        return self.rb.sample(BATCH)


class TorchRL:
    def __init__(self, capacity: int, memmap: bool, scratch: str) -> None:
        from torchrl.data import LazyMemmapStorage as TLazyMemmapStorage
        from torchrl.data import LazyTensorStorage as TLazyTensorStorage
        from torchrl.data import TensorDictReplayBuffer as TRB

        storage = (
            TLazyMemmapStorage(capacity, scratch_dir=scratch)
            if memmap
            else TLazyTensorStorage(capacity)
        )
        self.rb = TRB(storage=storage)

    def extend(self, td):
        self.rb.extend(td)

    def add(self, row):
        self.rb.add(row)

    def sample(self):
        return self.rb.sample(BATCH)


class SB3:
    """SB3's ReplayBuffer; ``n_envs=CHUNK`` so one ``add`` writes a chunk of 1000 rows."""

    def __init__(
        self, capacity: int, obs: tuple[int, ...], act: int, chunk: int, pixels: bool = False
    ) -> None:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer as SB3Buffer

        if pixels:
            obs_space = spaces.Box(0, 255, obs, dtype=np.uint8)
        else:
            obs_space = spaces.Box(-np.inf, np.inf, obs, dtype=np.float32)
        act_space = spaces.Box(-1.0, 1.0, (act,), dtype=np.float32)
        self.rb = SB3Buffer(capacity, obs_space, act_space, device="cpu", n_envs=chunk)
        self.chunk = chunk

    def extend_np(self, arrays):
        self.rb.add(*arrays)

    def sample(self):
        return self.rb.sample(BATCH)


def sb3_arrays(td: TensorDict, key: str = "observation"):
    n = td.batch_size[0]
    return (
        td[key].numpy(),
        td["next", key].numpy(),
        td["action"].numpy(),
        td["next", "reward"].reshape(n).numpy(),
        td["next", "done"].reshape(n).numpy(),
        [{} for _ in range(n)],
    )


class Cpprb:
    """cpprb's ReplayBuffer (C++ ring of numpy arrays); ``extend_np`` adds a chunk at once."""

    def __init__(self, capacity: int, obs: tuple[int, ...], act: int, pixels: bool = False) -> None:
        from cpprb import ReplayBuffer as CBuffer

        o = {"shape": obs, "dtype": np.uint8 if pixels else np.float32}
        self.rb = CBuffer(
            capacity,
            env_dict={"obs": o, "act": {"shape": act}, "rew": {}, "next_obs": o, "done": {}},
        )

    def extend_np(self, arrays):
        obs, nobs, act, rew, done, _ = arrays
        self.rb.add(obs=obs, act=act, rew=rew, next_obs=nobs, done=done)

    def sample(self):
        return self.rb.sample(BATCH)


class Bare:
    """Preallocated tensors, one per key, and one index_select per key: the floor."""

    def __init__(self, capacity: int, chunk: TensorDict) -> None:
        self.leaves = []
        for key, value in chunk.items(include_nested=True, leaves_only=True):
            reps = -(-capacity // value.shape[0])
            self.leaves.append(
                (key, value.repeat(reps, *([1] * (value.dim() - 1)))[:capacity].contiguous())
            )
        self.capacity = capacity

        self.pos = 0

    def sample(self):
        idx = torch.randint(self.capacity, (BATCH,))
        return [t.index_select(0, idx) for _, t in self.leaves]

    def extend(self, chunk: TensorDict) -> None:
        """Per-key ``copy_`` of a chunk into the preallocated tensors (the extend floor)."""
        n = chunk.batch_size[0]
        if self.pos + n > self.capacity:
            self.pos = 0
        for key, dst in self.leaves:
            dst[self.pos : self.pos + n].copy_(chunk.get(key))
        self.pos += n


# --- timing ------------------------------------------------------------------------------


def rate(fn: Callable[[], object], seconds: float, per_call: float = 1.0) -> float:
    """Calls (times ``per_call``) per second of ``fn``, run for about ``seconds``."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n * per_call / elapsed


Results = dict[str, list[float]]


# --- sections --------------------------------------------------------------------------------


def transitions(
    name: str, obs: int, act: int, size: int, secs: float, n_rounds: int, scratch: str
) -> list[tuple[str, Results]]:
    chunk = ted_chunk(CHUNK, (obs,), act)
    rows = [chunk[i] for i in range(CHUNK)]
    arrays = sb3_arrays(chunk)
    counter = iter(range(10**9))

    def scratch_dir(label: str) -> str:
        return f"{scratch}/{name}-{label.replace(' ', '-')}-{next(counter)}"

    makers: dict[str, Callable[[], object]] = {
        "rldata memory": lambda: Rldata(size, False, ""),
        "rldata memmap": lambda: Rldata(size, True, scratch_dir("mm")),
    }
    if HAVE_TORCHRL:
        makers["TorchRL memory"] = lambda: TorchRL(size, False, "")
        makers["TorchRL memmap"] = lambda: TorchRL(size, True, scratch_dir("trl"))
    if HAVE_SB3:
        makers["SB3"] = lambda: SB3(size, (obs,), act, CHUNK)
    if HAVE_CPPRB:
        makers["cpprb"] = lambda: Cpprb(size, (obs,), act)
    bare = Bare(size, chunk)
    full: dict[str, object] = {}

    def fill(label: str) -> float:
        """rows/s of creating a buffer and extending it to ``size`` rows in chunks of 1000."""
        full.pop(label, None)
        gc.collect()
        start = time.perf_counter()
        buf = makers[label]()
        ext = buf.extend_np if hasattr(buf, "extend_np") else buf.extend
        data = arrays if hasattr(buf, "extend_np") else chunk
        for _ in range(size // CHUNK):
            ext(data)
        elapsed = time.perf_counter() - start
        full[label] = buf  # kept for the sample rounds
        return size / elapsed

    def fill_bare() -> float:
        start = time.perf_counter()
        for _ in range(size // CHUNK):
            bare.extend(chunk)
        return size / (time.perf_counter() - start)

    fills: dict[str, Callable[[], float]] = {k: (lambda k=k: fill(k)) for k in makers}
    fills["bare copy"] = fill_bare
    extend = rounds(fills, n_rounds)

    samples: dict[str, Callable[[], float]] = {
        k: (lambda b=b: rate(b.sample, secs)) for k, b in full.items()
    }
    samples["bare copy"] = lambda: rate(bare.sample, secs)
    sample = rounds(samples, n_rounds)
    full.clear()
    gc.collect()

    adders: dict[str, Callable[[], float]] = {}
    for label, make in makers.items():
        if label in ("SB3", "cpprb"):
            continue
        fresh, it = make(), iter(range(10**12))
        adders[label] = lambda b=fresh, it=it: rate(lambda: b.add(rows[next(it) % CHUNK]), secs)
    singles = [tuple(a[i : i + 1] for a in arrays) for i in range(CHUNK)]
    if HAVE_SB3:
        one, it1 = SB3(size, (obs,), act, 1), iter(range(10**12))
        adders["SB3"] = lambda: rate(lambda: one.extend_np(singles[next(it1) % CHUNK]), secs)
    if HAVE_CPPRB:
        cone, it2 = Cpprb(size, (obs,), act), iter(range(10**12))
        adders["cpprb"] = lambda: rate(lambda: cone.extend_np(singles[next(it2) % CHUNK]), secs)
    add = rounds(adders, n_rounds)
    del adders
    gc.collect()
    return [
        (f"{name} extend, chunks of 1000, rows/s", extend),
        (f"{name} sample(256), batches/s", sample),
        (f"{name} add one row at a time, rows/s", add),
    ]


def prioritized(size: int, secs: float, n_rounds: int) -> tuple[str, Results]:
    chunk = ted_chunk(CHUNK, (17,), 6)
    err = torch.rand(BATCH)
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(size), sampler=PrioritizedSampler(size, alpha=0.7, beta=0.5)
    )
    for _ in range(size // CHUNK):
        rb.extend(chunk)

    def step(rb=rb):
        batch = rb.sample(BATCH)
        rb.update_priority(batch["index"], err)

    fns = {"rldata memory": lambda: rate(step, secs)}
    if HAVE_TORCHRL:
        from torchrl.data import LazyTensorStorage as TLazyTensorStorage
        from torchrl.data import PrioritizedSampler as TPrioritizedSampler
        from torchrl.data import TensorDictReplayBuffer as TRB

        try:  # needs TorchRL's compiled sum tree, missing from some wheels
            sampler = TPrioritizedSampler(size, alpha=0.7, beta=0.5)
        except (RuntimeError, ImportError) as exc:
            print(f"TorchRL PrioritizedSampler unavailable here: {exc}")
        else:
            trb = TRB(storage=TLazyTensorStorage(size), sampler=sampler)
            for _ in range(size // CHUNK):
                trb.extend(chunk)

            def tstep(trb=trb):
                batch = trb.sample(BATCH)
                trb.update_priority(batch["index"], err)

            fns["TorchRL memory"] = lambda: rate(tstep, secs)
    res = rounds(fns, n_rounds)
    gc.collect()
    return (f"prioritized sample(256) + update at {fmt(size)} rows, batches/s", res)


def slices(small: int, large: int, secs: float, n_rounds: int) -> tuple[list, list[float]]:
    bufs = {}
    for size in (small, large):
        block = ted_chunk(100_000, (3,), 1)
        rb = ReplayBuffer(storage=LazyTensorStorage(size), sampler=SliceSampler(slice_len=8))
        for _ in range(size // 100_000):
            rb.extend(block)
        bufs[size] = rb
    res = rounds(
        {s: (lambda rb=rb: rate(lambda: rb.sample(BATCH), secs)) for s, rb in bufs.items()},
        n_rounds,
    )
    bufs.clear()
    gc.collect()
    out = [
        (
            f"SliceSampler(slice_len=8) sample(256) at {fmt(s)} rows, batches/s",
            {"rldata memory": res[s]},
        )
        for s in (small, large)
    ]
    return out, per_round(res[small], res[large])


def memcpy_rate(nbytes: int = 256 << 20) -> Callable[[], float]:
    """libc memcpy bandwidth (bytes/s): the faster of ``numpy.copyto`` and ``ctypes.memmove``."""
    a = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    b = np.empty_like(a)
    b[:] = a

    def run() -> float:
        best = 0.0
        for copy in (
            lambda: np.copyto(b, a),
            lambda: ctypes.memmove(b.ctypes.data, a.ctypes.data, nbytes),
        ):
            start = time.perf_counter()
            copy()
            best = max(best, nbytes / (time.perf_counter() - start))
        return best

    return run


def pixels(size: int, secs: float, n_rounds: int, scratch: str) -> tuple[str, Results, float]:
    shape = (3, 84, 84)
    chunk = ted_chunk(CHUNK, shape, 6, pixels=True)
    row_bytes = sum(v[0].numel() * v.element_size() for v in chunk.values(True, True))
    makers: dict[str, Callable[[], object]] = {
        "rldata memory": lambda: Rldata(size, False, ""),
        "rldata memmap": lambda: Rldata(size, True, f"{scratch}/px-mm"),
    }
    if HAVE_TORCHRL:
        makers["TorchRL memory"] = lambda: TorchRL(size, False, "")
        makers["TorchRL memmap"] = lambda: TorchRL(size, True, f"{scratch}/px-trl")
    if HAVE_SB3:
        makers["SB3"] = lambda: SB3(size, shape, 6, CHUNK, pixels=True)
    if HAVE_CPPRB:
        makers["cpprb"] = lambda: Cpprb(size, shape, 6, pixels=True)
    arrays = sb3_arrays(chunk, "pixels")
    bufs: dict[str, object] = {}
    for label, make in makers.items():
        buf = make()
        for _ in range(size // CHUNK):
            if hasattr(buf, "extend_np"):
                buf.extend_np(arrays)
            else:
                buf.extend(chunk)
        bufs[label] = buf
    bufs["bare copy"] = Bare(size, chunk)
    fns: dict[str, Callable[[], float]] = {
        k: (lambda b=b: rate(b.sample, secs) * BATCH * row_bytes) for k, b in bufs.items()
    }
    fns["memcpy"] = memcpy_rate()
    res = rounds(fns, n_rounds)
    bw = res.pop("memcpy")
    bufs.clear()
    gc.collect()
    pct = {k: per_round(v, bw) for k, v in res.items()}
    what = f"pixels {fmt(size)} × [3,84,84] uint8 + next: sample(256) bandwidth, % of libc memcpy"
    return what, pct, med(bw)


# --- report ------------------------------------------------------------------------------------

COLUMNS = [
    "rldata memory",
    "rldata memmap",
    "TorchRL memory",
    "TorchRL memmap",
    "SB3",
    "cpprb",
    "bare copy",
]
RATIOS = [
    ("memory / TorchRL memory", "rldata memory", "TorchRL memory"),
    ("memmap / TorchRL memmap", "rldata memmap", "TorchRL memmap"),
    ("memory / SB3", "rldata memory", "SB3"),
    ("memory / cpprb", "rldata memory", "cpprb"),
    ("memmap / memory", "rldata memmap", "rldata memory"),
]


def fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.0f}M" if v % 1e6 == 0 else f"{v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows instead of 1M (smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per figure")
    parser.add_argument("--seconds", type=float, default=0.15, help="time per rate measurement")
    parser.add_argument("--pixel-rows", type=int, default=10_000)
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-replay.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = 100_000 if args.quick else 1_000_000
    secs, n = args.seconds, args.rounds
    px = 2_000 if args.quick else args.pixel_rows
    scratch = tempfile.mkdtemp(prefix="bench-replay-")
    t0 = time.perf_counter()
    rows: list[tuple[str, Results]] = []
    try:
        rows += transitions("Pendulum", 3, 1, size, secs, n, scratch)
        rows += transitions("HalfCheetah", 17, 6, size, secs, n, scratch)
        rows.append(prioritized(size, secs, n))
        slice_rows, slice_ratio = slices(size, 10 * size, secs, n)
        rows += slice_rows
        px_label, px_res, bw = pixels(px, secs, n, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    unit = {True: "%", False: ""}
    figures = []
    for label, res in [*rows, (px_label, px_res)]:
        cols = [spread(res.get(c), unit[label.startswith("pixels")]) for c in COLUMNS]
        figures.append([label, *cols])
    ratios = []
    for label, res in [*rows, (px_label, px_res)]:
        if label.startswith(("prioritized", "SliceSampler")):
            continue
        cells = []
        for _, a, b in RATIOS:
            ok = res.get(a) and res.get(b)
            cells.append(spread(per_round(res[a], res[b]), "x") if ok else "–")
        ratios.append([label, *cells])
    ratios.append(
        [
            f"SliceSampler time at {fmt(10 * size)} rows / at {fmt(size)} rows",
            spread(slice_ratio, "x"),
            *["–"] * (len(RATIOS) - 1),
        ]
    )
    t1 = table(["", *COLUMNS], figures)
    t2 = table(["rldata over peer, per round", *(r[0] for r in RATIOS)], ratios)
    line = (
        f"{fmt(size)} TED transitions (11 leaves per row), batch {BATCH}, "
        f"{torch.get_num_threads()} torch thread; median of {n} interleaved rounds (min–max); "
        f"libc memcpy {bw / 1e9:.1f} GB/s in this run; {time.perf_counter() - t0:.0f} s in all."
    )
    print(line, t1, t2, sep="\n\n")
    if args.write:
        cmd = f"python benchmarks/bench_replay.py --write --rounds {n} --seconds {secs}"
        body = f"{line}\n\n{t1}\n\nRatios (higher is better for rldata):\n\n{t2}"
        write_results("replay", "Replay buffers, like against like", cmd, [region("replay", body)])


if __name__ == "__main__":
    main()
