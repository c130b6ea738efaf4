"""Crash and concurrent-read safety: rldata's memmap store beside TorchRL's memmap buffer.

Two measurements, the same for both libraries (TorchRL only when installed, the
``bench`` extra):

1. kill -9 a writer WHILE it writes, at a random moment (uniform in 0.1-1 s after its
   first row, then at the next moment it is inside a write call), ``--trials`` times per
   library, then reopen the directory each time: does it
   open, how many rows does it claim, how many of those are exactly the rows written, and
   how many are torn? The writer appends 100-row chunks of 64-wide rows without pause
   (rldata commits every 300 rows, durable); a shared flag says whether it was inside an
   append / extend / commit call when the signal was sent.
2. a writer process overwrites a 256-row ring of wide rows (obs 4096 float64) while this
   process samples 16 rows at a time from the same directory for 2 seconds: how many
   sampled rows are torn (entries from two different writes)?

Rows come from ``rldata.testing.ted_marked``: every entry encodes the row's serial, so a
torn or stale row is detected exactly.

Run: ``python benchmarks/bench_store_crash.py [--trials 20] [--write]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch
from tensordict import TensorDict

import rldata.stores as stores
from rldata.errors import RowIndexError
from rldata.testing.ted_factory import ted_marked

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import region, table, write_results  # noqa: E402

RING, OBS, SECONDS = 256, 4096, 2.0
CRASH_CAPACITY, CRASH_OBS, CHUNK, COMMIT_EVERY = 50_000, 64, 100, 300


def torn(td: TensorDict) -> int:
    """Rows whose entries disagree with their observation (a torn or half-written row)."""
    obs = td["observation"]
    s = obs[:, :1]
    ok = (obs == s).all(-1) & (td["next", "observation"] == s + 1).all(-1)
    ok &= (td["next", "reward"].double() == s).all(-1)
    return int((~ok).sum())


# --- writers (child processes) ------------------------------------------------------------
def torchrl_writer(path: str, capacity: int, rows: int | None, obs: int, conn) -> None:
    from torchrl.data import LazyMemmapStorage, ReplayBuffer

    rb = ReplayBuffer(storage=LazyMemmapStorage(capacity, scratch_dir=path, existsok=True))
    s = 0
    while rows is None or s < rows:
        rb.extend(ted_marked(s, 100 if rows else 8, obs_dim=obs))
        s += 100 if rows else 8
        if rows or s == capacity:  # a ring reports once it is full
            conn.send(s)
    time.sleep(600)


def rldata_writer(path: str, capacity: int, rows: int | None, obs: int, conn) -> None:
    # the ring run skips fsync (durable=False): it measures concurrency, not power loss,
    # and an fsync per commit would only slow the writer down and hide tearing
    w = stores.create(path, capacity=capacity, durable=rows is not None)
    s = 0
    while rows is None or s < rows:
        w.append(ted_marked(s, 100 if rows else 8, obs_dim=obs))
        s += 100 if rows else 8
        if rows or s % 24 == 0:
            w.commit()
            conn.send(s)
    time.sleep(600)


def start(target, *args):
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()


# --- 1. kill -9 while writing, reopen -----------------------------------------------------
def torchrl_crash_writer(path: str, busy, started) -> None:
    from torchrl.data import LazyMemmapStorage, ReplayBuffer

    rb = ReplayBuffer(storage=LazyMemmapStorage(CRASH_CAPACITY, scratch_dir=path, existsok=True))
    s = 0
    while s + CHUNK <= CRASH_CAPACITY:
        rows = ted_marked(s, CHUNK, obs_dim=CRASH_OBS)
        busy.value = 1
        rb.extend(rows)
        busy.value = 0
        s += CHUNK
        started.set()
    time.sleep(600)


def rldata_crash_writer(path: str, busy, started) -> None:
    w = stores.create(path, capacity=CRASH_CAPACITY)
    s = 0
    while s + CHUNK <= CRASH_CAPACITY:
        rows = ted_marked(s, CHUNK, obs_dim=CRASH_OBS)
        busy.value = 1
        w.append(rows)
        if (s + CHUNK) % COMMIT_EVERY == 0:
            w.commit()
        busy.value = 0
        s += CHUNK
        started.set()
    time.sleep(600)


def valid_rows(td: TensorDict, positions: torch.Tensor) -> int:
    """Rows equal to what was written at their position (serial == position, not torn)."""
    if len(td) == 0:
        return 0
    s = td["observation"][:, 0].round().long()
    good = (s == positions) & (td["observation"] == td["observation"][:, :1]).all(-1)
    good &= (td["next", "observation"] == td["observation"] + 1).all(-1)
    return int(good.sum())


def reopen_torchrl(path: Path) -> tuple[int, int]:
    td = TensorDict.load_memmap(path)  # what reopening the directory gives
    return len(td), valid_rows(td, torch.arange(len(td)))


def reopen_rldata(path: Path) -> tuple[int, int]:
    r = stores.open(path)
    pos = r.readable()
    return len(r), valid_rows(r.get(pos), pos)


def _context():
    """A forkserver that imported torch and rldata once: each writer starts in milliseconds
    (a spawned one re-imports torch, seconds on a loaded machine), without forking a parent
    that has run torch ops."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "tensordict", "rldata.stores", "rldata.testing"])
    return ctx


def crash_trials(writer, reopen, tmp: Path, trials: int, rng: random.Random) -> dict:
    ctx = _context()
    out = {"opened": 0, "claimed": [], "valid": [], "mid_write": 0, "errors": []}
    for i in range(trials):
        path = tmp / f"crash-{i}"
        busy, started = ctx.Value("i", 0, lock=False), ctx.Event()
        proc = ctx.Process(target=writer, args=(str(path), busy, started), daemon=True)
        proc.start()
        started.wait(120)
        time.sleep(rng.uniform(0.1, 1.0))
        deadline = time.monotonic() + 1.0
        while not busy.value and time.monotonic() < deadline:
            pass  # spin until the writer is inside a write call
        out["mid_write"] += busy.value
        kill(proc)
        try:
            claimed, valid = reopen(path)
        except Exception as exc:  # noqa: BLE001 - a store that does not open is the finding
            out["errors"].append(f"{type(exc).__name__}: {str(exc)[:80]}")
        else:
            out["opened"] += 1
            out["claimed"].append(claimed)
            out["valid"].append(valid)
        shutil.rmtree(path, ignore_errors=True)
    return out


# --- 2. concurrent reader of an overwritten ring ---------------------------------------
def read_torchrl(tmp: Path) -> tuple[int, int, int]:
    path = tmp / "torchrl-ring"
    proc, conn = start(torchrl_writer, str(path), RING, None, OBS)
    conn.recv()
    td = TensorDict.load_memmap(path)
    sampled = bad = 0
    t0 = time.monotonic()
    while time.monotonic() < t0 + SECONDS:
        rows = td[torch.randint(0, RING, (16,))]
        sampled += 16
        bad += torn(rows)
    kill(proc)
    return sampled, bad, 0


def read_rldata(tmp: Path) -> tuple[int, int, int]:
    path = tmp / "rldata-ring"
    proc, conn = start(rldata_writer, str(path), RING, None, OBS)
    while conn.recv() < RING:
        pass
    r = stores.open(path)
    sampled = bad = refused = 0
    t0 = time.monotonic()
    while time.monotonic() < t0 + SECONDS:
        r.refresh()
        pos = r.readable()
        try:
            rows = r.get(pos[torch.randint(0, pos.numel(), (16,))])
        except RowIndexError:
            refused += 16
            continue
        sampled += 16
        bad += torn(rows)
    kill(proc)
    return sampled, bad, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="kills per library")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random kill moments")
    parser.add_argument("--write", action="store_true", help="write RESULTS-store-crash.md")
    args = parser.parse_args()
    try:
        import torchrl  # noqa: F401

        have_torchrl = True
    except ImportError:
        have_torchrl = False
    libs = [("rldata memmap store", rldata_crash_writer, reopen_rldata, read_rldata)]
    if have_torchrl:
        libs.insert(
            0, ("TorchRL LazyMemmapStorage", torchrl_crash_writer, reopen_torchrl, read_torchrl)
        )
    crash_rows, ring_rows, notes = [], [], []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, writer, reopen, reader in libs:
            res = crash_trials(writer, reopen, tmp, args.trials, random.Random(args.seed))
            claimed, valid = sum(res["claimed"]), sum(res["valid"])
            crash_rows.append(
                [
                    name,
                    str(args.trials),
                    str(res["mid_write"]),
                    f"{res['opened']} / {args.trials}",
                    f"{claimed:,}",
                    f"{valid:,}",
                    f"{claimed - valid:,}",
                ]
            )
            notes += [f"{name}: reopen failed: {e}" for e in sorted(set(res["errors"]))]
            print(" | ".join(crash_rows[-1]), flush=True)
            s, b, f = reader(tmp)
            ring_rows.append([name, f"{s:,}", f"{b:,}", f"{f:,}" if f else "–"])
    t1 = table(
        [
            "library",
            "kills",
            "inside a write call",
            "reopened",
            "rows claimed (all kills)",
            "rows exactly as written",
            "claimed but not as written",
        ],
        crash_rows,
    )
    t2 = table(["library", "rows read", "torn rows", "reads refused with an error"], ring_rows)
    line1 = (
        f"1. Writer killed (SIGKILL) while appending 100-row chunks of {CRASH_OBS}-wide rows, "
        f"at a random moment 0.1–1 s after its first row (then as soon as it is inside an "
        f"append / extend / commit call), {args.trials} times per library "
        f"(seed {args.seed}); rldata commits every {COMMIT_EVERY} rows. Counts summed over "
        "all kills."
    )
    line2 = (
        f"2. A reader samples 16 rows at a time for {SECONDS:.0f} s from a {RING}-row ring that "
        f"a writer process overwrites ({OBS}-wide rows)."
    )
    print(line1, t1, line2, t2, *notes, sep="\n\n")
    if args.write:
        body = "\n\n".join([line1, t1, line2, t2, *(f"- {n}" for n in notes)])
        write_results(
            "store-crash",
            "Store safety: kills while writing, torn reads",
            f"python benchmarks/bench_store_crash.py --write --trials {args.trials}",
            [region("store-crash", body)],
        )


if __name__ == "__main__":
    main()
