"""Multi-process and Ray collectors: one worker class, one work split, one set of worker rules."""

from __future__ import annotations

import functools

import pytest
import torch
from counting_env import CountingEnv

from rldata.collectors import (
    MultiaSyncDataCollector,
    MultiSyncDataCollector,
    RayCollector,
)
from rldata.collectors._workers import CollectorWorker, WorkerCollector
from rldata.envs import GymEnv
from rldata.envs._pool import WorkerError
from rldata.errors import EnvNotFoundError


def test_every_multi_worker_collector_shares_the_split_and_the_worker():
    for cls in (MultiSyncDataCollector, MultiaSyncDataCollector, RayCollector):
        assert issubclass(cls, WorkerCollector)
    with MultiSyncDataCollector(
        functools.partial(CountingEnv, ()), None, frames_per_batch=4, num_workers=2
    ) as c:
        assert c.worker_kwargs(1, {}, 10) == {
            "frames_per_batch": 2,
            "total_frames": -1,
            "traj_id_start": 10,
            "traj_id_stride": 2,
            "traj_id_offset": 1,
        }
        assert c.set_seed(3) == 3 + 1 + 1  # one env per worker: each returns seed + 1


def test_worker_errors_reach_the_parent_with_their_class():
    with pytest.raises(EnvNotFoundError, match="Pendulm-v1") as info:
        MultiSyncDataCollector(
            functools.partial(GymEnv, "Pendulm-v1"), None, frames_per_batch=4, num_workers=2
        )
    assert isinstance(info.value.__cause__, WorkerError)


def worker_threads(collector) -> int:
    return torch.get_num_threads()


@pytest.mark.slow  # starting Ray and its actors takes ~10-20 s here
def test_ray_actors_run_the_collector_worker_under_the_pool_rules(local_ray):
    make = functools.partial(CountingEnv, ())
    with RayCollector(make, None, frames_per_batch=4, num_workers=2) as c:
        assert c.run_on_workers(worker_threads) == [1, 1]  # worker_init ran in each actor
        assert c.set_seed(3) == 5
    assert CollectorWorker.__init__.__module__ == "rldata.collectors._workers"
