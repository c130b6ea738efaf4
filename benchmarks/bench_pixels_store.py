"""Pixel rows stored once: bytes on disk and sample(256) rates, rldata memmap beside TorchRL.

N rows (default 100,000) of ``[3, 84, 84]`` uint8 pixels plus ``next`` pixels, in
200-step trajectories whose frames chain (``next.pixels`` of row t is row t + 1's
``pixels``, as an env produces them), written to:

- rldata memmap, append-only: each observation stored once (the default for datasets);
- rldata memmap keeping both copies (``MemmapStore.next_stored_once = False``: the layout
  of every store before format 1.2, and of rings);
- TorchRL's ``LazyMemmapStorage`` of the same rows (``TensorDictReplayBuffer.extend``).

Each side gets the same rows in blocks of 1,000 (rldata commits every 10,000 rows, as
``rldata collect`` does); bytes are allocated blocks on disk.
sample(256) batches/s come from each side's own replay buffer (``rldata.load`` and
TorchRL's ``TensorDictReplayBuffer.sample``), interleaved rounds, median (min–max),
once the files are in the page cache (one warm-up pass of each). Frames are random
bytes (they do not compress; no side compresses).

Run:  python benchmarks/bench_pixels_store.py [--rows 100000] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from tensordict import TensorDict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

import rldata  # noqa: E402
import rldata.stores as stores  # noqa: E402
from rldata.stores.backend._memmap import MemmapStore  # noqa: E402

SHAPE = (3, 84, 84)
EPISODE = 200
BLOCK = 1000
BATCH = 256
COMMIT_EVERY = 10_000  # rldata collect's default
HAVE_TORCHRL = importlib.util.find_spec("torchrl") is not None


def block(a: int, b: int, seed: int = 0) -> TensorDict:
    """Rows ``[a, b)``: frames chain inside each 200-step trajectory."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + a)
    n = b - a
    traj = torch.arange(a, b) // EPISODE
    step = torch.arange(a, b) % EPISODE
    # one frame per row plus the row's next frame where its trajectory ends in this block
    frames = torch.randint(0, 256, (n + 1, *SHAPE), generator=g, dtype=torch.uint8)
    pixels = frames[:n]
    nxt = frames[1 : n + 1].clone()
    last = step == EPISODE - 1
    if bool(last.any()):  # a trajectory's final next frame is its own, not the next reset
        nxt[last] = torch.randint(0, 256, (int(last.sum()), *SHAPE), generator=g, dtype=torch.uint8)
    trunc = last.unsqueeze(-1)
    false = torch.zeros(n, 1, dtype=torch.bool)
    return TensorDict(
        {
            "pixels": pixels,
            "action": torch.zeros(n, 1),
            "done": false,
            "terminated": false,
            "truncated": false,
            "next": {
                "pixels": nxt,
                "reward": torch.ones(n, 1),
                "done": trunc,
                "terminated": false,
                "truncated": trunc,
            },
            "collector": {"traj_ids": traj},
        },
        batch_size=[n],
    )


def chained(rows: int) -> list[TensorDict]:
    """Blocks whose boundary rows chain too: block k's last next frame is block k+1's first."""
    out = [block(a, min(rows, a + BLOCK)) for a in range(0, rows, BLOCK)]
    for prev, cur in zip(out, out[1:]):
        if not bool(prev["next", "truncated"][-1]):
            prev["next", "pixels"][-1] = cur["pixels"][0]
    return out


def write_rldata(path: Path, blocks: list[TensorDict], once: bool) -> float:
    t0 = time.perf_counter()
    with mock.patch.object(MemmapStore, "next_stored_once", once), stores.create(path) as w:
        for b in blocks:
            w.append(b)
            if len(w) % COMMIT_EVERY == 0:
                w.commit()  # as ``rldata collect`` does
    return time.perf_counter() - t0


def write_torchrl(path: Path, blocks: list[TensorDict], rows: int):
    from torchrl.data import LazyMemmapStorage, TensorDictReplayBuffer

    t0 = time.perf_counter()
    rb = TensorDictReplayBuffer(
        storage=LazyMemmapStorage(rows, scratch_dir=str(path)), batch_size=BATCH
    )
    for b in blocks:
        rb.extend(b)
    return time.perf_counter() - t0, rb


def rate(sample, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        sample()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="timing window per round")
    p.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-pixels-store.md")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="bench-pixels-"))
    try:
        blocks = chained(rows)
        once, both, trl = tmp / "once", tmp / "both", tmp / "torchrl"
        writes = {
            "once": write_rldata(once, blocks, True),
            "both": write_rldata(both, blocks, False),
        }
        trl_rb = None
        if HAVE_TORCHRL:
            writes["torchrl"], trl_rb = write_torchrl(trl, blocks, rows)
        del blocks
        sizes = {"once": rep.disk_bytes(once), "both": rep.disk_bytes(both)}
        if trl_rb is not None:
            sizes["torchrl"] = rep.disk_bytes(trl)
        assert stores.verify(stores.open(once)) == []
        # the stored-once store gives back exactly the rows of the both-copies store
        a, b = stores.open(once), stores.open(both)
        idx = torch.randint(0, rows, (512,))
        assert (a.get(idx) == b.get(idx)).all()

        torch.manual_seed(0)
        buffers = {
            "once": rldata.load(once, batch_size=BATCH).sample,
            "both": rldata.load(both, batch_size=BATCH).sample,
        }
        if trl_rb is not None:
            buffers["torchrl"] = trl_rb.sample
        for fn in buffers.values():  # warm: every file in the page cache
            for _ in range(2 * rows // BATCH):
                fn()
        res = rep.rounds(
            {k: (lambda f=f: rate(f, args.seconds)) for k, f in buffers.items()}, args.rounds
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mb = {k: v / 1e6 for k, v in sizes.items()}
    label = f"{rows:,} rows of [3,84,84] uint8 + next"
    head = [
        label,
        "rldata memmap, stored once",
        "rldata memmap, both copies",
        "TorchRL LazyMemmapStorage",
    ]
    trl_cell = (lambda s: s) if HAVE_TORCHRL else (lambda s: "– (torchrl not installed)")
    table = rep.table(
        head,
        [
            [
                "size on disk, MB",
                f"{mb['once']:,.0f}",
                f"{mb['both']:,.0f}",
                trl_cell(f"{mb.get('torchrl', 0):,.0f}"),
            ],
            [
                "write (blocks of 1,000), rows/s",
                rep.num(rows / writes["once"]),
                rep.num(rows / writes["both"]),
                trl_cell(rep.num(rows / writes.get("torchrl", 1))),
            ],
            [
                "sample(256), batches/s",
                rep.spread(res["once"]),
                rep.spread(res["both"]),
                trl_cell(rep.spread(res.get("torchrl"))),
            ],
        ],
    )
    ratios = [
        ["bytes: stored once / both copies", f"{sizes['once'] / sizes['both']:.3f}x"],
        [
            "sample(256): stored once / both copies, per round",
            rep.spread(rep.per_round(res["once"], res["both"]), "x"),
        ],
    ]
    if HAVE_TORCHRL:
        ratios += [
            [
                "bytes: stored once / TorchRL LazyMemmapStorage (target <= 0.55x)",
                f"{sizes['once'] / sizes['torchrl']:.3f}x",
            ],
            [
                "sample(256): stored once / TorchRL, per round",
                rep.spread(rep.per_round(res["once"], res["torchrl"]), "x"),
            ],
        ]
    body = (
        f"{label}, 200-step trajectories; batch {BATCH}, 1 torch thread; median of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s (min–max), page cache warm.\n\n"
        + table
        + "\n\n"
        + rep.table(["ratio", "value"], ratios)
    )
    print(body, flush=True)
    if args.write:
        command = (
            f"python benchmarks/bench_pixels_store.py --rows {rows} --rounds {args.rounds} "
            f"--seconds {args.seconds} --write"
        )
        rep.write_results(
            "pixels-store",
            "Pixel rows stored once: rldata memmap beside TorchRL's LazyMemmapStorage",
            command,
            [rep.region("pixels-store", body)],
        )


if __name__ == "__main__":
    main()
