"""The one worker pool: start-method rule, errors raised with their own class, shared by all users."""

from __future__ import annotations

import functools
import os
import sys

import pytest
import torch

from rldata.envs._pool import WorkerError, WorkerPool, chain_seeds, start_method
from rldata.errors import ConfigError, SpecError


class Echo:
    """A handler for tests: echoes, fails on request, dies on request."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def echo(self, x):
        return (self.tag, x, torch.get_num_threads())

    def refuse(self):
        raise SpecError("key 'action': expected values in [-2, 2], got 9")

    def die(self):
        os._exit(3)  # a crash: no answer, the process is gone

    def close(self) -> None:
        pass


def bad_build(tag: str) -> Echo:
    raise ValueError(f"cannot build {tag}")


def test_start_method_rule():
    expected = "fork" if sys.platform.startswith("linux") else "spawn"
    assert start_method() == expected  # CUDA is not initialised in these tests
    assert start_method("spawn") == "spawn"
    with pytest.raises(ConfigError, match="mp_start_method must be one of"):
        start_method("thread")


def test_pool_serves_each_worker_with_one_thread_and_closes():
    pool = WorkerPool("test", Echo, [("a",), ("b",)])
    try:
        assert pool.start_method == start_method()
        assert pool.call_all("echo", 7) == [("a", 7, 1), ("b", 7, 1)]
        assert pool.call(1, "echo", 8) == ("b", 8, 1)
    finally:
        pool.close()
    assert pool.closed and not any(p.is_alive() for p in pool.procs)


def test_worker_errors_keep_their_class_and_the_worker_survives():
    pool = WorkerPool("test", Echo, [("a",)])
    try:
        with pytest.raises(SpecError, match="expected values") as info:
            pool.call(0, "refuse")
        assert isinstance(info.value.__cause__, WorkerError)
        assert "Traceback" in str(info.value.__cause__)
        assert pool.call(0, "echo", 1) == ("a", 1, 1)
        with pytest.raises(WorkerError, match=r"test worker 0 died \(exit code 3\)"):
            pool.call(0, "die")
    finally:
        pool.close()


def test_a_failing_build_is_raised_and_no_worker_is_left():
    with pytest.raises(ValueError, match="cannot build b"):
        WorkerPool("test", bad_build, [("b",)])


def test_chain_seeds_hands_each_worker_the_previous_ones_next_seed():
    seen = []

    def seed_one(w, s):
        seen.append((w, s))
        return s * 10

    assert chain_seeds(seed_one, 3, 1, static=False) == 1000
    assert seen == [(0, 1), (1, 10), (2, 100)]
    seen.clear()
    assert chain_seeds(seed_one, 2, 5, static=True) == 5
    assert seen == [(0, 5), (1, 5)]


def test_parallel_env_and_multi_collectors_use_the_one_pool():
    """ParallelEnv and both multi-process collectors run on a WorkerPool with the same rule."""
    from rldata.collectors import MultiaSyncDataCollector, MultiSyncDataCollector
    from rldata.envs import GymEnv, ParallelEnv

    make = functools.partial(GymEnv, "Pendulum-v1")
    env = ParallelEnv(2, make)
    sync = MultiSyncDataCollector(make, None, frames_per_batch=4, num_workers=2)
    async_ = MultiaSyncDataCollector(make, None, frames_per_batch=4, num_workers=2)
    try:
        for owner in (env, sync, async_):
            assert isinstance(owner._pool, WorkerPool)
            assert owner._pool.start_method == start_method()
    finally:
        env.close()
        sync.shutdown()
        async_.shutdown()
