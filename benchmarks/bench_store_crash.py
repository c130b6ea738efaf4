"""Crash and concurrent-read safety: rldata's memmap store beside TorchRL's memmap buffer.

Two measurements, the same for both libraries (TorchRL only when installed, the
``bench`` extra):

1. kill -9 a writer that has extended 3 x 100 rows into a 1000-row buffer, then reopen the
   directory: how many rows does it claim, and are they the rows that were written?
2. a writer process overwrites a 256-row ring of wide rows (obs 4096 float64) while this
   process samples 16 rows at a time from the same directory for 2 seconds: how many
   sampled rows are torn (entries from two different writes)?

Rows come from ``rldata.testing.ted_marked``: every entry encodes the row's serial, so a
torn or stale row is detected exactly.

Run: ``python benchmarks/bench_store_crash.py``
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from pathlib import Path

import torch
from tensordict import TensorDict

import rldata.stores as stores
from rldata.errors import RowIndexError
from rldata.testing.ted_factory import ted_marked

CAPACITY, WRITTEN, RING, OBS, SECONDS = 1000, 300, 256, 4096, 2.0


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
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    child.close()
    return proc, parent


def kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()


# --- 1. kill -9, reopen ---------------------------------------------------------------------
def crash_torchrl(tmp: Path) -> tuple[int, int]:
    path = tmp / "torchrl"
    proc, conn = start(torchrl_writer, str(path), CAPACITY, WRITTEN, 3)
    while conn.recv() < WRITTEN:
        pass
    kill(proc)
    td = TensorDict.load_memmap(path)  # what reopening the directory gives
    s = td["observation"][:, 0].round().long()
    valid = int((s == torch.arange(len(td))).sum())
    return len(td), valid


def crash_rldata(tmp: Path) -> tuple[int, int]:
    path = tmp / "rldata"
    proc, conn = start(rldata_writer, str(path), CAPACITY, WRITTEN, 3)
    while conn.recv() < WRITTEN:
        pass
    kill(proc)
    r = stores.open(path)
    rows = r.get(r.readable())
    valid = int((rows["observation"][:, 0].round().long() == r.readable()).sum())
    return len(r), valid


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
    try:
        import torchrl  # noqa: F401

        have_torchrl = True
    except ImportError:
        have_torchrl = False
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"1. writer killed (SIGKILL) after {WRITTEN} rows into capacity {CAPACITY}")
        print(f"{'library':<28}{'rows claimed':>14}{'rows valid':>12}")
        if have_torchrl:
            n, v = crash_torchrl(tmp)
            print(f"{'TorchRL LazyMemmapStorage':<28}{n:>14}{v:>12}")
        n, v = crash_rldata(tmp)
        print(f"{'rldata memmap store':<28}{n:>14}{v:>12}")
        print()
        print(
            f"2. reader sampling a {RING}-row ring being overwritten ({OBS}-wide rows, {SECONDS}s)"
        )
        print(f"{'library':<28}{'rows read':>12}{'torn':>8}{'refused':>10}")
        if have_torchrl:
            s, b, _ = read_torchrl(tmp)
            print(f"{'TorchRL LazyMemmapStorage':<28}{s:>12}{b:>8}{'-':>10}")
        s, b, f = read_rldata(tmp)
        print(f"{'rldata memmap store':<28}{s:>12}{b:>8}{f:>10}")


if __name__ == "__main__":
    main()
