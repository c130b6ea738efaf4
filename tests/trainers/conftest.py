"""Shared fixtures: one small Pendulum dataset, tiny networks, one CPU thread."""

from __future__ import annotations

import pytest
import torch

import rldata
from rldata.envs import GymEnv
from rldata.trainers import TrainConfig

TINY = {"hidden": [32, 32], "batch_size": 32, "eval_episodes": 1, "log_every": 10}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a shared CPU run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """400 random Pendulum transitions in a memmap store."""
    path = tmp_path_factory.mktemp("data") / "pendulum"
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, path, frames=400)
    return path


def tiny(**fields) -> TrainConfig:
    return TrainConfig(**{**TINY, **fields})
