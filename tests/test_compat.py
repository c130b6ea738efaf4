"""rldata._compat: internals pass their self-test here, and the public fallbacks give equal results."""

from __future__ import annotations

import torch

from rldata import _compat
from rldata.collectors import SyncDataCollector
from rldata.data import LazyTensorStorage, ReplayBuffer
from rldata.envs import GymEnv, SerialEnv
from rldata.testing import ted_transitions


def test_every_internal_passes_its_self_test_on_the_pinned_versions():
    assert all(_compat.FAST.values()), _compat.FAST


def _work() -> dict[str, torch.Tensor]:
    """Buffer adds, extends and samples; an env rollout; a collected batch."""
    torch.manual_seed(0)
    rb = ReplayBuffer(storage=LazyTensorStorage(64))
    data = ted_transitions(40)
    rb.extend(data[:20])
    for i in range(20, 40):
        rb.add(data[i])
    sample = rb.sample(16)
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rollout = env.rollout(5, break_when_any_done=False)
    serial = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    serial.set_seed(0)
    stacked = serial.rollout(3, break_when_any_done=False)
    collector = SyncDataCollector(GymEnv("Pendulum-v1"), None, frames_per_batch=8, fast=False)
    collector.set_seed(0)
    batch = collector.next()
    return {
        "stored": rb[:]["observation"],
        "sample": sample["observation"],
        "rollout": rollout["next", "observation"],
        "serial": stacked["next", "reward"],
        "collected": batch["next", "observation"],
    }


def test_fallbacks_give_the_same_results_as_the_internals():
    fast = _work()
    with _compat.use_fallbacks():
        assert not any(_compat.FAST.values())
        assert _compat.new_td is _compat._new_td_public
        slow = _work()
    assert all(_compat.FAST.values())
    assert fast.keys() == slow.keys()
    for key in fast:
        assert torch.equal(fast[key], slow[key]), key


def test_an_internal_that_fails_its_self_test_is_replaced_by_the_fallback():
    def broken(entries, batch, device):
        raise AttributeError("_new_unsafe is gone")

    def wrong(entries, batch, device):
        return _compat._new_td_public({}, batch, device)

    chosen, ok = _compat._choose(_compat._check_new_td, (broken, wrong), _compat._new_td_public)
    assert chosen is _compat._new_td_public and ok is False
    chosen, ok = _compat._choose(
        _compat._check_new_td, (broken, _compat._new_td_unsafe), _compat._new_td_public
    )
    assert chosen is _compat._new_td_unsafe and ok is True
