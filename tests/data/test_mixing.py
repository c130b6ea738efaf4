"""MixingBuffer: exact offline/online split per batch, the dataset never written to."""

from __future__ import annotations

import pytest
import torch

import rldata
from rldata.data import LazyTensorStorage, MixingBuffer, ReplayBuffer
from rldata.errors import ConfigError, EmptyBufferError, TedFormatError
from rldata.testing import ted_transitions


def marked(n: int, reward: float, extra_key: bool = False):
    td = ted_transitions(n)
    td["next", "reward"] = torch.full_like(td["next", "reward"], reward)
    if extra_key:
        td["loc"] = torch.zeros(n, 1)
    return td


def memory(rows) -> ReplayBuffer:
    buffer = ReplayBuffer(storage=LazyTensorStorage(10_000))
    if rows is not None:
        buffer.extend(rows)
    return buffer


@pytest.mark.parametrize(
    "ratio, batch, offline_rows",
    [(0.5, 256, 128), (0.25, 100, 25), (0.0, 64, 0), (1.0, 64, 64), (0.5, 7, 4)],
)
def test_each_batch_holds_exactly_the_set_share_of_dataset_rows(ratio, batch, offline_rows):
    mixed = MixingBuffer(memory(marked(500, 1.0)), memory(marked(50, -1.0)), ratio)
    for _ in range(5):
        rewards = mixed.sample(batch)["next", "reward"].squeeze(-1)
        assert int((rewards == 1.0).sum()) == offline_rows
        assert int((rewards == -1.0).sum()) == batch - offline_rows


def test_default_is_symmetric_50_50():
    mixed = MixingBuffer(memory(marked(1000, 1.0)), memory(marked(10, -1.0)), batch_size=256)
    rewards = mixed.sample()["next", "reward"]
    assert int((rewards == 1.0).sum()) == 128  # the small online buffer is not drowned


def test_batches_come_from_the_dataset_until_online_rows_exist():
    mixed = MixingBuffer(memory(marked(100, 1.0)), memory(None), 0.5, batch_size=32)
    assert bool((mixed.sample()["next", "reward"] == 1.0).all())
    mixed.extend(marked(10, -1.0))
    assert int((mixed.sample()["next", "reward"] == -1.0).sum()) == 16


def test_the_dataset_store_is_never_written(tmp_path):
    path = tmp_path / "ds"
    with rldata.create(path, env_id="Pendulum-v1") as store:
        store.append(marked(200, 1.0))
    before = (path / "rldata.json").read_bytes()
    offline = rldata.load(path)
    mixed = MixingBuffer(offline, memory(None), 0.5, batch_size=16)
    mixed.extend(marked(40, -1.0))
    mixed.sample()
    assert len(offline) == 200 and len(mixed.online) == 40 and len(mixed) == 240
    assert (path / "rldata.json").read_bytes() == before
    with rldata.open(path) as store:
        assert len(store) == 200


def test_only_shared_keys_are_mixed_and_a_shape_clash_names_the_key():
    mixed = MixingBuffer(memory(marked(50, 1.0)), memory(marked(50, -1.0, True)), 0.5)
    assert "loc" not in mixed.sample(8).keys(True, True)
    bad = ted_transitions(50, obs_shape=(4,))
    with pytest.raises(TedFormatError, match="'observation'"):
        MixingBuffer(memory(marked(50, 1.0)), memory(bad), 0.5).sample(8)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="offline_ratio"):
        MixingBuffer(memory(None), memory(None), 1.5)
    buffer = memory(None)
    with pytest.raises(ConfigError, match="different buffers"):
        MixingBuffer(buffer, buffer)
    with pytest.raises(EmptyBufferError, match="offline dataset holds no rows"):
        MixingBuffer(memory(None), memory(marked(5, 1.0)), 0.5).sample(4)
