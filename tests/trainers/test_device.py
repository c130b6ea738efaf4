"""Devices: a missing device is one clear error; the GPU path (marked gpu) pins, prefetches, trains."""

from __future__ import annotations

import pytest
import torch

from rldata.data import LazyTensorStorage, ReplayBuffer
from rldata.errors import ConfigError
from rldata.testing import ted_transitions
from rldata.trainers import BatchStream, Trainer, resolve_device
from tests.trainers.conftest import tiny


def test_cpu_resolves_and_a_device_that_is_not_here_is_one_clear_error():
    assert resolve_device("cpu") == torch.device("cpu")
    missing = f"cuda:{torch.cuda.device_count() + 7}"
    with pytest.raises(ConfigError, match=missing) as err:
        resolve_device(missing)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not a device name"):
        resolve_device("gpu-please")


def test_batch_stream_samples_ahead_in_a_thread_on_the_cpu():
    buffer = ReplayBuffer(storage=LazyTensorStorage(1000), batch_size=16)
    buffer.extend(ted_transitions(100))
    stream = BatchStream(buffer.sample, torch.device("cpu"), depth=2)
    try:
        batches = [stream.next() for _ in range(5)]
    finally:
        stream.close()
    assert all(b.batch_size == torch.Size([16]) for b in batches)


def test_batch_stream_hands_a_sampling_error_to_the_caller():
    buffer = ReplayBuffer(storage=LazyTensorStorage(1000), batch_size=16)  # empty
    stream = BatchStream(buffer.sample, torch.device("cpu"))
    with pytest.raises(Exception, match="(?i)empty|no rows|too few"):
        stream.next()
    stream.close()


@pytest.mark.gpu
def test_gpu_batches_arrive_pinned_and_on_the_device():
    buffer = ReplayBuffer(storage=LazyTensorStorage(1000), batch_size=64)
    buffer.extend(ted_transitions(500))
    device = resolve_device("cuda")
    stream = BatchStream(buffer.sample, device, depth=2)
    try:
        batch = stream.next()
        assert batch.device.type == "cuda" and batch.batch_size == torch.Size([64])
        nxt = stream._next  # the following batch's copy is already issued
        assert nxt is not None and nxt.device.type == "cuda"
        pinned = buffer.sample().pin_memory()  # what the thread hands over
        assert all(v.is_pinned() for v in pinned.values(True, True))
    finally:
        stream.close()


@pytest.mark.gpu
@pytest.mark.parametrize("algo", ["sac", "redq", "iql"])
def test_offline_training_on_the_gpu(algo, dataset, tmp_path):
    summary = Trainer(
        tiny(algo=algo, dataset=str(dataset), steps=20, eval_every=20, device="cuda"),
        tmp_path / "run",
    ).fit()
    assert summary.device.startswith("cuda") and summary.updates == 20


@pytest.mark.gpu
@pytest.mark.parametrize("replay_device", ["cpu", "cuda"])
def test_online_training_on_the_gpu(replay_device, tmp_path):
    summary = Trainer(
        tiny(
            algo="ddpg",
            env="Pendulum-v1",
            frames=200,
            init_random_frames=50,
            frames_per_batch=50,
            eval_every=200,
            device="cuda",
            replay_device=replay_device,
        ),
        tmp_path / "run",
    ).fit()
    assert summary.env_steps == 200 and summary.updates == 150
