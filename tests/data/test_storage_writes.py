"""LazyTensorStorage.extend lands each key's rows in its packed columns (numpy copies on the
CPU, torch where numpy cannot hold a leaf), after the same checks either way."""

from __future__ import annotations

import pytest
import torch

from rldata.data import LazyTensorStorage, ReplayBuffer
from rldata.errors import TedFormatError
from rldata.testing import ted_transitions


def _leaves(td) -> dict:
    return {k: v for k, v in td.items(include_nested=True, leaves_only=True)}


def test_extended_rows_read_back_equal_every_leaf() -> None:
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    rows = ted_transitions(30)
    rb.extend(rows[:10])
    rb.extend(rows[10:])
    got = rb.storage.get(torch.arange(30))
    for key, value in _leaves(rows).items():
        assert torch.equal(got.get(key), value), key


def test_a_leaf_that_needs_grad_is_stored_by_value_without_history() -> None:
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    rows = ted_transitions(8)
    rb.extend(rows)
    more = ted_transitions(8)
    obs = more.get("observation").clone().requires_grad_(True)
    more.set("observation", obs)
    rb.extend(more)
    got = rb.storage.get(torch.arange(8, 16)).get("observation")
    assert torch.equal(got, obs.detach())
    assert not got.requires_grad


def test_a_bfloat16_leaf_is_written_through_torch() -> None:
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    rows = ted_transitions(6)
    for key in ("observation", ("next", "observation")):
        rows.set(key, rows.get(key).to(torch.bfloat16))
    rb.extend(rows)
    rb.extend(rows)
    got = rb.storage.get(torch.arange(6, 12)).get("observation")
    assert torch.equal(got, rows.get("observation"))


def test_a_nan_reward_is_refused_before_any_row_lands() -> None:
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    rb.extend(ted_transitions(4))
    bad = ted_transitions(4)
    bad.get(("next", "reward"))[2] = float("nan")
    with pytest.raises(TedFormatError, match="next.reward"):
        rb.extend(bad)
    assert len(rb) == 4


def test_done_that_is_not_terminated_or_truncated_is_refused() -> None:
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    rb.extend(ted_transitions(4))
    bad = ted_transitions(4)
    bad.get("done")[1] = ~bad.get("done")[1]
    with pytest.raises(TedFormatError, match="at row 1"):
        rb.extend(bad)
    assert len(rb) == 4
