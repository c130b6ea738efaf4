"""A hypothesis state machine: a ring buffer against a plain list model.

Rules mix one-row adds (staged), batch extends, samples and reads; the invariants are
the row count, the cursor, and that every position holds exactly the row the model says.
"""

from __future__ import annotations

import tempfile

import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rldata.data import LazyMemmapStorage, LazyTensorStorage, ReplayBuffer
from rldata.testing import ted_transitions

CAPACITY = 13


class RingMachine(RuleBasedStateMachine):
    memmap = False
    capacity: int | None = CAPACITY

    def __init__(self) -> None:
        super().__init__()
        if self.memmap:
            self._dir = tempfile.TemporaryDirectory()
            storage = LazyMemmapStorage(self.capacity, scratch_dir=f"{self._dir.name}/s")
        else:
            storage = LazyTensorStorage(self.capacity)
        self.buffer = ReplayBuffer(storage=storage)
        # observation[0] of each position
        self.model: list[float | None] = [None] * (self.capacity or 0)
        self.cursor = 0
        self.count = 0
        self.next_id = 0

    def _rows(self, n: int):
        rows = ted_transitions(n, episode_length=4, start_traj_id=self.next_id)
        self.next_id += -(-n // 4)
        return rows

    def _record(self, rows) -> list[int]:
        positions = []
        for value in rows["observation"][:, 0].tolist():
            if self.capacity is None:
                self.model.append(value)
            else:
                self.model[self.cursor] = value
            positions.append(self.cursor)
            self.cursor = self.cursor + 1 if self.capacity is None else (self.cursor + 1) % CAPACITY
            self.count += 1
        return positions

    @rule(n=st.integers(1, 400))
    def extend(self, n):
        rows = self._rows(n)
        index = self.buffer.extend(rows)
        expected = self._record(rows)
        assert index.tolist() == (expected if self.capacity is None else expected[-CAPACITY:])

    @rule(n=st.integers(1, 6))
    def add(self, n):
        rows = self._rows(n)
        for i in range(n):
            assert self.buffer.add(rows[i]) == self.cursor
            self._record(rows[i : i + 1])

    @rule(adds=st.integers(1, 6), n=st.integers(1, 20))
    def add_then_extend(self, adds, n):
        # staged rows must land before the batch, with no read in between
        self.add(adds)
        self.extend(n)

    @precondition(lambda self: self.count > 0)
    @rule(batch=st.integers(1, 20))
    def sample(self, batch):
        got = self.buffer.sample(batch)["observation"][:, 0].tolist()
        held = {v for v in self.model if v is not None}
        assert set(got) <= held

    @invariant()
    def rows_match_the_model(self):
        n = self.count if self.capacity is None else min(self.count, CAPACITY)
        assert len(self.buffer) == n
        assert self.buffer.storage.cursor == self.cursor
        if n:
            got = self.buffer.storage.get(torch.arange(n))["observation"][:, 0].tolist()
            assert got == self.model[:n]

    def teardown(self) -> None:
        if self.memmap:
            self.buffer.storage.close()
            self._dir.cleanup()


class MemmapRingMachine(RingMachine):
    memmap = True


class GrowingMachine(RingMachine):
    """capacity None: an append-only storage that grows past its first allocation."""

    capacity = None


TestMemoryRing = RingMachine.TestCase
TestMemoryRing.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestMemmapRing = MemmapRingMachine.TestCase
TestMemmapRing.settings = settings(max_examples=15, stateful_step_count=15, deadline=None)
TestGrowing = GrowingMachine.TestCase
TestGrowing.settings = settings(max_examples=10, stateful_step_count=15, deadline=None)
