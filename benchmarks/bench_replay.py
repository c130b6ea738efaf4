"""Replay-buffer speed: rldata side by side with TorchRL, Stable-Baselines3 and a bare gather.

Run:  python benchmarks/bench_replay.py            (about 2-3 minutes on 2 cores)
      python benchmarks/bench_replay.py --quick    (smaller buffers, a smoke run)

For 1M TED transitions of Pendulum shape (obs 3, act 1) and HalfCheetah shape (obs 17,
act 6) it measures extend throughput (chunks of 1000 rows), one-row add throughput and
sample(256) batches/s of rldata's memory and memmap buffers, TorchRL's
TensorDictReplayBuffer on LazyMemmapStorage, SB3's ReplayBuffer, and a bare per-key
``torch.index_select`` over preallocated tensors (the floor any buffer pays). Then
prioritized sample + priority update at 1M rows, SliceSampler at 1M vs 10M rows, and
pixels (100k rows of [3, 84, 84] uint8 with next pixels) against memcpy bandwidth
measured in the same run. Peers are skipped (n/a) when the ``bench`` extra is missing.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict

from rldata.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    PrioritizedSampler,
    ReplayBuffer,
    SliceSampler,
    TensorDictReplayBuffer,
)

HAVE_TORCHRL = importlib.util.find_spec("torchrl") is not None
HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None
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


def best_rate(fn: Callable[[], object], seconds: float, tries: int = 6) -> float:
    """The best of ``tries`` short :func:`rate` runs (noise on a shared machine only slows)."""
    return max(rate(fn, seconds / tries) for _ in range(tries))


def fill_rate(extend: Callable[[], object], chunks: int, rows: int = CHUNK) -> float:
    start = time.perf_counter()
    for _ in range(chunks):
        extend()
    return chunks * rows / (time.perf_counter() - start)


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
    def __init__(self, capacity: int, scratch: str) -> None:
        from torchrl.data import LazyMemmapStorage as TLazyMemmapStorage
        from torchrl.data import TensorDictReplayBuffer as TRB

        self.rb = TRB(storage=TLazyMemmapStorage(capacity, scratch_dir=scratch))

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

    def sample(self):
        idx = torch.randint(self.capacity, (BATCH,))
        return [t.index_select(0, idx) for _, t in self.leaves]


# --- sections --------------------------------------------------------------------------------


def interleaved(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Best of ``rounds`` measurements per contender, taken in turn (fair under shared load)."""
    best = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for label, fn in fns.items():
            best[label] = max(best[label], fn())
    return best


def transitions(name: str, obs: int, act: int, size: int, secs: float, scratch: str) -> list[tuple]:
    chunk = ted_chunk(CHUNK, (obs,), act)
    rows = [chunk[i] for i in range(CHUNK)]
    makers: dict[str, Callable[[str], object]] = {
        "rldata memory": lambda tag: Rldata(size, False, ""),
        "rldata memmap": lambda tag: Rldata(size, True, f"{scratch}/{name}-mm-{tag}"),
    }
    if HAVE_TORCHRL:
        makers["TorchRL memmap"] = lambda tag: TorchRL(size, f"{scratch}/{name}-trl-{tag}")
    bufs = {label: make("fill") for label, make in makers.items()}
    extends = {label: (lambda b=b: b.extend(chunk)) for label, b in bufs.items()}
    samples = {label: b.sample for label, b in bufs.items()}
    adders: dict[str, Callable[[], object]] = {}
    for label, make in makers.items():
        fresh, it = make("add"), iter(range(10**12))
        adders[label] = lambda b=fresh, it=it: b.add(rows[next(it) % CHUNK])
    if HAVE_SB3:
        arrays = sb3_arrays(chunk)
        sb = SB3(size, (obs,), act, CHUNK)
        one = SB3(size, (obs,), act, 1)
        singles = [tuple(a[i : i + 1] for a in arrays) for i in range(CHUNK)]
        it = iter(range(10**12))
        extends["SB3"] = lambda: sb.extend_np(arrays)
        samples["SB3"] = sb.sample
        adders["SB3"] = lambda: one.extend_np(singles[next(it) % CHUNK])
    samples["bare index_select"] = Bare(size, chunk).sample

    # fill every buffer to `size` rows in turns of 100 chunks; the best turn is the rate
    turns = max(1, size // CHUNK // 100)
    extend = interleaved(
        {k: (lambda f=f: fill_rate(f, size // CHUNK // turns)) for k, f in extends.items()}, turns
    )
    rounds = 8
    sample = interleaved(
        {k: (lambda f=f: rate(f, secs / rounds)) for k, f in samples.items()}, rounds
    )
    add = interleaved(
        {k: (lambda f=f: rate(f, secs / rounds / 2)) for k, f in adders.items()}, rounds
    )
    del bufs, extends, samples, adders
    gc.collect()
    return [
        (f"{name} extend, chunks of 1000 (rows/s)", extend),
        (f"{name} add, one row at a time (rows/s)", add),
        (f"{name} sample(256) (batches/s)", sample),
    ]


def prioritized(size: int, secs: float) -> tuple:
    chunk = ted_chunk(CHUNK, (17,), 6)
    err = torch.rand(BATCH)
    res = {}
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(size), sampler=PrioritizedSampler(size, alpha=0.7, beta=0.5)
    )
    for _ in range(size // CHUNK):
        rb.extend(chunk)

    def step(rb=rb):
        batch = rb.sample(BATCH)
        rb.update_priority(batch["index"], err)

    res["rldata memory"] = best_rate(step, secs)
    del rb, step
    if HAVE_TORCHRL:
        from torchrl.data import LazyTensorStorage as TLazyTensorStorage
        from torchrl.data import PrioritizedSampler as TPrioritizedSampler
        from torchrl.data import TensorDictReplayBuffer as TRB

        try:  # needs TorchRL's compiled sum tree, missing from some wheels
            sampler = TPrioritizedSampler(size, alpha=0.7, beta=0.5)
        except RuntimeError as exc:
            print(f"TorchRL PrioritizedSampler unavailable here: {exc}")
        else:
            trb = TRB(storage=TLazyTensorStorage(size), sampler=sampler)
            for _ in range(size // CHUNK):
                trb.extend(chunk)

            def tstep(trb=trb):
                batch = trb.sample(BATCH)
                trb.update_priority(batch["index"], err)

            res["TorchRL memmap"] = best_rate(
                tstep, secs
            )  # TorchRL's prioritized run keeps rows in RAM
            del trb, tstep
    gc.collect()
    return (f"prioritized sample+update, {fmt(size)} rows (batches/s)", res)


def slices(small: int, large: int, secs: float) -> list[tuple]:
    out = []
    rates = {}
    for size in (small, large):
        block = ted_chunk(100_000, (3,), 1)
        rb = ReplayBuffer(storage=LazyTensorStorage(size), sampler=SliceSampler(slice_len=8))
        for _ in range(size // 100_000):
            rb.extend(block)
        rates[size] = best_rate(lambda rb=rb: rb.sample(BATCH), secs)
        label = f"SliceSampler(slice_len=8) at {fmt(size)} rows (batches/s)"
        out.append((label, {"rldata memory": rates[size]}))
        del rb, block
        gc.collect()
    return out, rates[small] / rates[large]


def memcpy_bandwidth(nbytes: int = 256 << 20, tries: int = 5) -> tuple[float, float]:
    """Best of ``tries`` large copies, bytes/s: (torch ``copy_``, libc memcpy via numpy)."""
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8)
    dst = torch.empty_like(src)
    dst.copy_(src)
    a, b = src.numpy(), dst.numpy()
    best = [0.0, 0.0]
    for _ in range(tries):
        for i, copy in enumerate((lambda: dst.copy_(src), lambda: np.copyto(b, a))):
            start = time.perf_counter()
            copy()
            best[i] = max(best[i], nbytes / (time.perf_counter() - start))
    return best[0], best[1]


def pixels(size: int, secs: float, scratch: str) -> list[tuple]:
    shape = (3, 84, 84)
    chunk = ted_chunk(CHUNK, shape, 6, pixels=True)
    row_bytes = sum(v[0].numel() * v.element_size() for v in chunk.values(True, True))
    before = memcpy_bandwidth()
    rates = {}
    makers = {
        "rldata memory": lambda: Rldata(size, False, ""),
        "rldata memmap": lambda: Rldata(size, True, f"{scratch}/px-mm"),
    }
    if HAVE_TORCHRL:
        makers["TorchRL memmap"] = lambda: TorchRL(size, f"{scratch}/px-trl")
    for label, make in makers.items():
        buf = make()
        for _ in range(size // CHUNK):
            buf.extend(chunk)
        rates[label] = best_rate(buf.sample, secs)
        del buf
        gc.collect()
    if HAVE_SB3:
        sb = SB3(size, shape, 6, CHUNK, pixels=True)
        arrays = sb3_arrays(chunk, "pixels")
        for _ in range(size // CHUNK):
            sb.extend_np(arrays)
        rates["SB3"] = best_rate(sb.sample, secs)
        del sb
        gc.collect()
    bare = Bare(size, chunk)
    rates["bare index_select"] = best_rate(bare.sample, secs)
    del bare
    gc.collect()
    after = memcpy_bandwidth()
    torch_bw, libc_bw = max(before[0], after[0]), max(before[1], after[1])
    gathered = {k: v * BATCH * row_bytes for k, v in rates.items()}
    what = f"pixels {fmt(size)} x [3,84,84] uint8 + next, sample(256) bandwidth"
    return [
        (
            f"{what} (% of torch copy_ {torch_bw / 1e9:.1f} GB/s)",
            {k: v / torch_bw for k, v in gathered.items()},
        ),
        (
            f"{what} (% of libc memcpy {libc_bw / 1e9:.1f} GB/s)",
            {k: v / libc_bw for k, v in gathered.items()},
        ),
    ]


# --- report ------------------------------------------------------------------------------------

COLUMNS = ["rldata memory", "rldata memmap", "TorchRL memmap", "SB3", "bare index_select"]


def fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    if pct:
        return f"{100 * v:.0f}%"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows instead of 1M (smoke run)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per sample measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for every contender (1: stable timings on a shared machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = 100_000 if args.quick else 1_000_000
    secs = args.seconds
    scratch = tempfile.mkdtemp(prefix="bench-replay-")
    t0 = time.perf_counter()
    rows: list[tuple] = []
    try:
        rows += transitions("Pendulum", 3, 1, size, secs, scratch)
        rows += transitions("HalfCheetah", 17, 6, size, secs, scratch)
        rows.append(prioritized(size, secs))
        slice_rows, slice_ratio = slices(size, 10 * size, secs)
        rows += slice_rows
        rows += pixels(size // 10, secs, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}; "
        f"TorchRL {'yes' if HAVE_TORCHRL else 'n/a'}, SB3 {'yes' if HAVE_SB3 else 'n/a'}"
    )
    head = ["benchmark", *COLUMNS, "mem / TorchRL", "mem / SB3", "memmap / TorchRL"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, res in rows:
        pct = label.startswith("pixels")
        cells = [fmt(res.get(c), pct) for c in COLUMNS]
        mem, mm, trl, sb3 = (res.get(c) for c in COLUMNS[:4])
        print(
            "| "
            + " | ".join([label, *cells, ratio(mem, trl), ratio(mem, sb3), ratio(mm, trl)])
            + " |"
        )
    print(f"\nSliceSampler time at {fmt(10 * size)} rows / at {fmt(size)} rows: {slice_ratio:.2f}x")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
