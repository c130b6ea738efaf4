"""Sharded stores (rldata/stores/backend/_sharded.py): shards listed in a parent manifest read as one store."""

from __future__ import annotations

import pytest
import torch

from rldata import api, stores
from rldata.errors import ConfigError
from rldata.stores.backend import _sharded as _shards
from rldata.testing import ted_batch


def _sharded(tmp_path, shard_episodes, start_ids):
    root = tmp_path / "ds"
    root.mkdir()
    names = []
    for k, (lengths, start) in enumerate(zip(shard_episodes, start_ids)):
        name = _shards.shard_name(k)
        with stores.create(root / name) as shard:
            shard.append(ted_batch(lengths, start_traj_id=start))
        names.append(name)
    _shards.write_parent(root, names, env_id="Test-v0")
    return root


def test_rows_read_shard_after_shard(tmp_path):
    root = _sharded(tmp_path, [[3, 2], [4]], [0, 10])
    with stores.open(root) as store:
        assert len(store) == 9 and store.backend == "sharded" and store.env_id == "Test-v0"
        ids = store.get(slice(0, 9))["collector", "traj_ids"]
        assert ids.tolist() == [0, 0, 0, 1, 1, 10, 10, 10, 10]
        picked = store.get(torch.tensor([8, 0, 5, 4]))["collector", "traj_ids"]
        assert picked.tolist() == [10, 0, 10, 1]  # any order, across shards
        eps = store.episodes()
        assert eps["traj_id"].tolist() == [0, 1, 10]
        assert eps["start"].tolist() == [0, 3, 5] and eps["length"].tolist() == [3, 2, 4]
        assert store.episode(2).batch_size == torch.Size([4])
        assert store.next_traj_id() == 11
    assert api.verify(str(root)) == []


def test_a_traj_id_in_two_shards_is_a_fault(tmp_path):
    root = _sharded(tmp_path, [[3], [2]], [5, 5])
    faults = api.verify(str(root))
    assert len(faults) == 1 and "traj id 5 appears in shards 0 and 1" in faults[0]


def test_the_parent_is_read_only(tmp_path):
    root = _sharded(tmp_path, [[3]], [0])
    with pytest.raises(ConfigError, match="sharded store"):
        stores.open(root, mode="a")
    with stores.open(root) as store, pytest.raises(ConfigError):
        store.append(ted_batch([2]))


def test_dataset_card_lists_the_shards(tmp_path):
    root = _sharded(tmp_path, [[3, 2], [4]], [0, 10])
    card = api.dataset_card(str(root))
    assert card["transitions"] == 9 and card["episodes"] == 3 and len(card["shards"]) == 2
    assert card["content_digest"].startswith("sha256:")


def test_rldata_stores_open_reads_a_sharded_parent(tmp_path):
    assert "sharded" in stores.backends()
    assert "sharded" not in api.writable_backends()
    root = _sharded(tmp_path, [[3], [2]], [0, 1])
    with stores.open(root) as store:
        assert isinstance(store, _shards.ShardedStore) and len(store) == 5


def test_episodes_are_indexed_across_shards_and_out_of_range_names_the_index(tmp_path):
    root = _sharded(tmp_path, [[3, 2], [4]], [0, 10])
    with stores.open(root) as store:
        assert len(store.episode(2)) == 4  # the first episode of shard 1
        assert len(store.episode(-1)) == 4 and len(store.episode(-3)) == 3
        for bad in (3, -4):
            with pytest.raises(IndexError, match=f"episode {bad} out of range; it holds 3"):
                store.episode(bad)
