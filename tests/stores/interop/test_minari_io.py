"""Minari interop with real Minari: rldata opens what Minari's DataCollector writes, and
``minari.load_dataset`` opens what rldata exports, final observations exact both ways."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch

import rldata.stores as stores
from rldata.errors import ConfigError, StoreExistsError
from rldata.stores.interop.convert import convert
from rldata.testing.ted_factory import ted_batch, ted_rollout


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _collect_with_minari(dataset_id: str, steps: int = 57) -> None:
    env = minari.DataCollector(gym.make("Pendulum-v1", max_episode_steps=20), record_infos=False)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.create_dataset(
        dataset_id=dataset_id,
        algorithm_name="random",
        code_permalink="x",
        author="t",
        author_email="t@x",
    )
    env.close()


def test_import_a_dataset_written_by_minaris_data_collector(tmp_path):
    _collect_with_minari("test/pendulum-v0")
    summary = convert("minari:test/pendulum-v0", tmp_path / "s", backend="zarr")
    theirs = minari.load_dataset("test/pendulum-v0")
    s = stores.open(tmp_path / "s")
    assert summary.rows == len(s) == theirs.total_steps == 57
    assert s.episodes()["length"].tolist() == [20, 20, 17]
    assert stores.verify(s) == []
    for i, ep in enumerate(theirs.iterate_episodes()):
        rows = s.episode(i)
        t = len(ep.rewards)
        assert torch.equal(rows["observation"], torch.from_numpy(ep.observations[:t]))
        # the final observation (after the truncation) is the next observation of the last row
        assert torch.equal(rows["next", "observation"], torch.from_numpy(ep.observations[1:]))
        assert torch.equal(rows["action"], torch.from_numpy(ep.actions))
        assert torch.equal(
            rows["next", "reward"].reshape(-1), torch.from_numpy(ep.rewards.astype(np.float32))
        )
        assert rows["next", "truncated"].reshape(-1).tolist() == ep.truncations.tolist()
        assert rows["next", "terminated"].reshape(-1).tolist() == ep.terminations.tolist()
        assert set(rows["collector", "traj_ids"].tolist()) == {i}
    assert s.env_id == "Pendulum-v1"
    assert s.provenance["minari_dataset_id"] == "test/pendulum-v0"


def test_minari_load_dataset_opens_an_rldata_export(tmp_path, minari_root):
    roll = ted_rollout(num_envs=2, steps=9, episode_length=4).reshape(-1)  # interleaved episodes
    with stores.create(tmp_path / "s", env_id="Pendulum-v1") as w:
        w.append(roll)
    convert(tmp_path / "s", "minari:rldata/roll-v1")
    assert (minari_root / "rldata" / "namespace_metadata.json").exists()
    ds = minari.load_dataset("rldata/roll-v1")
    s = stores.open(tmp_path / "s")
    assert ds.total_steps == len(s) == 18
    assert ds.total_episodes == s.episodes().batch_size[0]
    for i, ep in enumerate(ds.iterate_episodes()):
        rows = s.episode(i)
        t = len(rows)
        assert ep.observations.shape[0] == t + 1
        assert np.array_equal(ep.observations[:t], rows["observation"].numpy())
        assert np.array_equal(ep.observations[t], rows["next", "observation"][-1].numpy())
        assert np.array_equal(ep.actions, rows["action"].numpy())
        assert np.array_equal(ep.rewards, rows["next", "reward"].reshape(-1).numpy())
        assert ep.terminations.tolist() == rows["next", "terminated"].reshape(-1).tolist()
        # an episode the recording left open ends truncated, as Minari's collector ends it
        trunc = rows["next", "truncated"].reshape(-1).clone()
        trunc[-1] |= not bool(rows["next", "done"][-1])
        assert ep.truncations.tolist() == trunc.tolist()


def test_round_trip_through_minari_is_lossless(tmp_path):
    data = ted_batch([6, 2, 5], start_traj_id=40, truncated=True, extra=True)
    with stores.create(tmp_path / "a", env_id="Pendulum-v1", provenance={"seed": 3}) as w:
        w.append(data)
    convert(tmp_path / "a", "minari:rldata/lossless-v0")
    convert("minari:rldata/lossless-v0", tmp_path / "b", backend="parquet")
    a, b = stores.open(tmp_path / "a"), stores.open(tmp_path / "b")
    assert b.schema == a.schema
    assert stores.content_digest(a) == stores.content_digest(b)  # traj ids, flags, extras
    assert b.provenance["seed"] == 3 and len(b.provenance["conversions"]) == 2


def test_existing_minari_dataset_is_refused(tmp_path):
    with stores.create(tmp_path / "a") as w:
        w.append(ted_batch([3]))
    convert(tmp_path / "a", "minari:rldata/once-v0")
    with pytest.raises(StoreExistsError, match="already exists"):
        convert(tmp_path / "a", "minari:rldata/once-v0")
    with pytest.raises(ConfigError, match="NAMESPACE/NAME-vN"):
        convert(tmp_path / "a", "minari:../escape")
