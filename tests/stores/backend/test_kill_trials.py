"""A few dozen SIGKILLs of a writer at random moments: every committed row survives, every
time (``benchmarks/soak.py`` runs hundreds)."""

from __future__ import annotations

import random

import pytest

from rldata.testing.kills import one_kill


@pytest.mark.parametrize("capacity", [None, 64], ids=["append-only", "ring"])
def test_random_kills_keep_every_commit_and_resume(tmp_path, capacity):
    rng = random.Random(7 if capacity else 8)
    failures = []
    for i in range(15):
        ok, why = one_kill(tmp_path / f"k{i}", capacity, rng)
        if not ok:
            failures.append(f"trial {i}: {why}")
    assert failures == []
