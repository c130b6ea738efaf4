"""RayCollector: two local actors, traj ids unique across them, episode boundaries kept."""

from __future__ import annotations

import functools

import pytest
import torch
from counting_env import CountingEnv
from ted_checks import assert_ted_trajectories, per_env_streams

from rldata.collectors import RayCollector

SLOW = pytest.mark.slow  # starting Ray and its actors takes ~10-20 s here


@SLOW
def test_sync_ray_collector_keeps_trajectories(local_ray):
    make = functools.partial(CountingEnv, ())
    with RayCollector(make, None, frames_per_batch=12, total_frames=48, num_workers=2) as c:
        batches = list(c)
    assert all(b.batch_size == torch.Size([2, 6]) for b in batches)
    assert_ted_trajectories(per_env_streams(batches))
    ids = torch.cat([b["collector", "traj_ids"].reshape(-1) for b in batches])
    assert set((ids % 2).tolist()) == {0, 1}


@SLOW
def test_async_ray_collector_and_state(local_ray):
    make = functools.partial(CountingEnv, ())
    with RayCollector(
        make, None, frames_per_batch=6, total_frames=24, num_workers=2, sync=False
    ) as c:
        batches = list(c)
        state = c.state_dict()
    assert sum(b.numel() for b in batches) == 24
    streams = [
        torch.cat([b for b in batches if int(b["collector", "worker"][0]) == w], 0) for w in (0, 1)
    ]
    assert_ted_trajectories(streams)
    assert state["frames"] == 24 and len(state["workers"]) == 2


class Const(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.zeros(1))

    def forward(self, obs):
        return self.value.expand(*obs.shape[:-1], 1)


@SLOW
def test_update_policy_weights_reaches_actors(local_ray):
    from tensordict.nn import TensorDictModule

    policy = TensorDictModule(Const(), in_keys=["observation"], out_keys=["action"])
    make = functools.partial(CountingEnv, ())
    with RayCollector(make, policy, frames_per_batch=4, num_workers=2) as c:
        assert torch.all(c.next()["action"] == 0)
        with torch.no_grad():
            policy.module.value.fill_(0.5)
        c.update_policy_weights_()
        assert torch.all(c.next()["action"] == 0.5)


def test_missing_ray_names_the_extra(monkeypatch):
    import sys

    from rldata.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependencyError, match=r"rldata\[ray\]"):
        RayCollector(functools.partial(CountingEnv, ()), None, frames_per_batch=4, num_workers=2)
