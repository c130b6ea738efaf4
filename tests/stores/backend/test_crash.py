"""A writer process killed with SIGKILL: the store opens with every committed row.

The writer appends :func:`ted_marked` rows (each encodes its serial) and reports each
commit on stdout; the test kills it at an arbitrary moment, between or during writes.
Also: a reader sampling while a ring writer overwrites never gets a torn row.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

import rldata.stores as stores
from rldata.errors import RowIndexError
from rldata.testing.ted_factory import marked_serial, ted_marked
from rldata.testing.writers import marked_writer


class Writer:
    """A writer process and its reports.

    Started from a forkserver that preloads rldata once: a clean process (no inherited
    thread pools, unlike a plain fork of the test process) without paying torch's import
    for every writer.
    """

    def __init__(self, root, capacity, obs_dim=3, durable=True) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["rldata.testing.writers"])
        self.conn, child = ctx.Pipe(duplex=False)
        args = (str(root), capacity, obs_dim, durable, child)
        self.proc = ctx.Process(target=marked_writer, args=args, daemon=True)
        self.proc.start()
        child.close()  # so a dead child shows up as EOFError, not a hang
        assert self.conn.recv() == "ready"

    def wait_for(self, rows: int) -> int:
        """Block until the writer reports a commit of at least ``rows`` rows; return the last report."""
        reported = 0
        while reported < rows:
            reported = self.conn.recv()
        return reported

    def drain(self, reported: int) -> int:
        """The last report still in the pipe (the pipe reads EOF once the child is dead)."""
        while self.conn.poll():
            try:
                reported = self.conn.recv()
            except EOFError:
                break
        return reported

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join()
        assert self.proc.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("capacity", [None, 40], ids=["append-only", "ring"])
def test_sigkill_keeps_every_committed_row(tmp_path, capacity):
    root = tmp_path / "s"
    writer = Writer(root, capacity)
    try:
        reported = writer.wait_for(105)  # a few commits (and 2.5 laps of the ring)
    finally:
        writer.kill()
    reported = writer.drain(reported)  # everything announced before the kill counts
    r = stores.open(root)
    written = r.manifest["written"]
    assert written >= reported  # every commit it announced is there
    serials = marked_serial(r.get(r.readable()))
    low = 0 if capacity is None else written - capacity
    assert serials.tolist()[-1] == written - 1
    assert serials.tolist() == list(range(max(low, written - len(r)), written))
    if capacity is None:
        assert len(r) == written
    assert stores.verify(r) == []
    with stores.open(root, mode="a") as w:  # the dead writer's lock is gone; resume
        w.append(ted_marked(written, 5))
    assert stores.open(root).manifest["written"] == written + 5


def test_reader_never_sees_a_torn_row_while_a_ring_is_overwritten(tmp_path):
    root = tmp_path / "s"
    # wide rows, so a torn write would show; no fsync: this is about concurrency, not power loss
    writer = Writer(root, 64, obs_dim=4096, durable=False)
    reads = refused = 0
    try:
        writer.wait_for(64 * 2)
        r = stores.open(root)
        t0 = time.monotonic()
        # at least 0.5 s and 20 reads; the cap only stops a hung reader (a loaded CI machine
        # gave 9 reads in 10 s once)
        while (reads < 20 or time.monotonic() < t0 + 0.5) and time.monotonic() < t0 + 120:
            r.refresh()
            pos = r.readable()
            pick = pos[torch.randint(0, pos.numel(), (16,))]
            try:
                rows = r.get(pick)
            except RowIndexError:  # the writer retired them meanwhile: refused, not torn
                refused += 1
                continue
            serials = marked_serial(rows)  # raises on any torn row
            assert torch.equal(serials % 64, pick)
            reads += 1
    finally:
        writer.kill()
    assert reads > 10
