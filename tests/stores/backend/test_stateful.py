"""A hypothesis state machine drives a store against an in-memory model.

The model is three numbers: ``written`` (rows appended, committed or not), ``committed``
(rows the last commit lists) and ``start`` (the oldest serial not yet overwritten or
retired). Row ``s`` of :func:`ted_marked` encodes ``s`` in every entry, so each read
can be checked exactly: readers see the serials ``[start, committed)``, in order,
with no torn row, across extend / commit / reopen / crash / sample / wrap-around.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import rldata.stores as stores
from rldata.testing.ted_factory import marked_serial, ted_marked

EPISODE = 4


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.root = self.tmp / "s"
        self.w: stores.Store | None = None

    # capacities below 16 retire exactly the rows they overwrite (one-row checksum chunks)
    @initialize(capacity=st.sampled_from([None, 5, 7, 12]), every=st.sampled_from([None, 6]))
    def create(self, capacity, every):
        self.capacity = capacity
        self.w = stores.create(self.root, capacity=capacity, commit_every=every, durable=False)
        self.every = every
        self.written = self.committed = self.start = 0

    @rule(n=st.integers(1, 9))
    def extend(self, n):
        positions = self.w.append(ted_marked(self.written, n, episode_length=EPISODE))
        serials = range(self.written, self.written + n)
        want = [s % self.capacity if self.capacity else s for s in serials]
        assert positions.tolist() == want
        self.written += n
        if self.capacity:
            self.start = max(self.start, self.written - self.capacity)
        if self.every and self.written - self.committed >= self.every:
            self.committed = self.written

    @rule()
    def commit(self):
        self.w.commit()
        self.committed = self.written

    @rule()
    def reopen(self):
        self.w.close()
        self.committed = self.written
        self.w = stores.open(self.root, mode="a", durable=False)

    @rule()
    def crash(self):
        self.w._lock.release()  # what the OS does when the writer process dies
        self.w = None  # dropped without close: uncommitted rows are lost
        self.written = self.committed
        self.start = min(self.start, self.committed)  # rows the dead writer retired are gone
        self.w = stores.open(self.root, mode="a", durable=False)

    @precondition(lambda self: self.committed > self.start)
    @rule(data=st.data())
    def sample(self, data):
        r = stores.open(self.root)
        pos = r.readable()
        idx = data.draw(st.lists(st.integers(0, pos.numel() - 1), min_size=1, max_size=8))
        got = marked_serial(r.get(pos[idx]))
        assert got.tolist() == [self.start + i for i in idx]

    @invariant()
    def reader_sees_the_committed_rows(self):
        if self.w is None:
            return
        r = stores.open(self.root)
        assert len(r) == max(0, self.committed - self.start)
        if len(r):
            rows = r.get(r.readable())
            assert marked_serial(rows).tolist() == list(range(self.start, self.committed))
        eps = r.episodes()
        assert int(eps["length"].sum()) == len(r)
        first = self.start // EPISODE
        assert eps["traj_id"].tolist() == list(range(first, first + eps.batch_size[0]))
        assert r.next_traj_id() >= (self.committed + EPISODE - 1) // EPISODE

    @invariant()
    def writer_sees_its_own_rows(self):
        if self.w is not None:
            assert len(self.w) == max(0, self.written - self.start)

    def teardown(self):
        if self.w is not None:
            self.w.close()
        assert stores.verify(stores.open(self.root)) == []
        shutil.rmtree(self.tmp, ignore_errors=True)


StoreModel.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, report_multiple_bugs=False
)
TestStoreModel = StoreModel.TestCase


class ChunkedRingModel(RuleBasedStateMachine):
    """Rings with multi-row checksum chunks retire whole chunks, so the model is a bound:
    readers see a suffix ``[committed - len, committed)`` of the committed rows, in order,
    every checksum and TED invariant holds after every step, and a ring never holds more
    than ``capacity`` rows nor drops more than one chunk below it (without a crash)."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp())
        self.root = self.tmp / "s"
        self.w: stores.Store | None = None

    @initialize(capacity=st.sampled_from([37, 64]), every=st.sampled_from([None, 17]))
    def create(self, capacity, every):
        self.capacity, self.every = capacity, every
        self.w = stores.create(self.root, capacity=capacity, commit_every=every, durable=False)
        self.written = self.committed = 0
        self.crashed = False

    @rule(n=st.integers(1, 45))
    def extend(self, n):
        self.w.append(ted_marked(self.written, n))
        self.written += n
        self.committed = max(self.committed, self.w.manifest["written"])  # auto commits

    @rule()
    def commit(self):
        self.w.commit()
        self.committed = self.written

    @rule()
    def crash(self):
        self.w._lock.release()
        self.w = None
        self.written = self.committed
        self.crashed = True
        self.w = stores.open(self.root, mode="a", durable=False)

    @invariant()
    def readers_see_a_sound_suffix(self):
        if self.w is None:
            return
        r = stores.open(self.root)
        assert r.manifest["written"] == self.committed
        assert len(r) <= min(self.committed, self.capacity)
        if not self.crashed and self.committed == self.written:
            assert len(r) >= min(self.committed, self.capacity) - (r.chunk_rows or 0)
        if len(r):
            got = marked_serial(r.get(r.readable())).tolist()
            assert got == list(range(self.committed - len(r), self.committed))
        assert stores.first_fault(r) is None

    def teardown(self):
        if self.w is not None:
            self.w.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


ChunkedRingModel.TestCase.settings = settings(
    max_examples=20, stateful_step_count=40, deadline=None, report_multiple_bugs=False
)
TestChunkedRingModel = ChunkedRingModel.TestCase
