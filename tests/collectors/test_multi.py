"""Multi-process collectors: traj ids unique across workers, episode boundaries, weight sync."""

from __future__ import annotations

import functools

import pytest
import torch
from counting_env import CountingEnv
from ted_checks import assert_ted_trajectories, per_env_streams
from tensordict.nn import TensorDictModule

from rldata.collectors import MultiaSyncDataCollector, MultiSyncDataCollector
from rldata.errors import ConfigError

CASES = {
    # name: (env batch per worker, workers, frames_per_batch)
    "2 workers, single envs": ((), 2, 8),
    "2 workers, batched envs": ((2,), 2, 12),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_multisync_keeps_trajectories_across_workers(case):
    batch, workers, fpb = CASES[case]
    make = functools.partial(CountingEnv, batch)
    with MultiSyncDataCollector(
        make, None, frames_per_batch=fpb, total_frames=fpb * 4, num_workers=workers
    ) as c:
        batches = list(c)
    rows = workers * (batch[0] if batch else 1)
    assert all(tuple(b.batch_size) == (rows, fpb // rows) for b in batches)
    assert_ted_trajectories(per_env_streams(batches))
    ids = torch.cat([b["collector", "traj_ids"].reshape(-1) for b in batches])
    assert set(range(int(ids.max()) + 1)) >= set(ids.tolist())
    # worker w hands out ids w, w + W, ...: both residues appear
    assert set((ids % workers).tolist()) == set(range(workers))


def test_multiasync_yields_worker_batches_with_unique_ids():
    make = functools.partial(CountingEnv, ())
    with MultiaSyncDataCollector(
        make, None, frames_per_batch=6, total_frames=36, num_workers=2
    ) as c:
        batches = list(c)
    assert sum(b.numel() for b in batches) == 36
    by_worker = {0: [], 1: []}
    for b in batches:
        by_worker[int(b["collector", "worker"][0])].append(b)
    assert all(by_worker.values())
    streams = [torch.cat(v, 0) for v in by_worker.values()]
    assert_ted_trajectories(streams)


class Const(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.zeros(1))

    def forward(self, obs):
        return self.value.expand(*obs.shape[:-1], 1)


def test_update_policy_weights_reaches_workers():
    policy = TensorDictModule(Const(), in_keys=["observation"], out_keys=["action"])
    make = functools.partial(CountingEnv, ())
    with MultiSyncDataCollector(
        make, policy, frames_per_batch=4, total_frames=-1, num_workers=2
    ) as c:
        assert torch.all(c.next()["action"] == 0)
        with torch.no_grad():
            policy.module.value.fill_(0.25)
        c.update_policy_weights_()
        assert torch.all(c.next()["action"] == 0.25)


def test_worker_count_must_divide_frames():
    with pytest.raises(ConfigError):
        MultiSyncDataCollector(CountingEnv, None, frames_per_batch=5, num_workers=2)


@pytest.mark.parametrize("num_envs", [None, 2], ids=["single envs", "vector envs"])
def test_multisync_over_gym_envs(num_envs):
    from rldata.envs import GymEnv

    make = functools.partial(GymEnv, "Pendulum-v1", num_envs=num_envs, max_episode_steps=7)
    rows = 2 * (num_envs or 1)
    with MultiSyncDataCollector(
        make, None, frames_per_batch=rows * 10, total_frames=rows * 30, num_workers=2
    ) as c:
        c.set_seed(0)
        batches = list(c)
    assert all(b.batch_size == torch.Size([rows, 10]) for b in batches)
    assert_ted_trajectories(per_env_streams(batches))
