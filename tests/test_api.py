"""rldata.api: record() joins a collector to a store; collect() builds it all from plain values."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from rldata import api, stores
from rldata.collectors import SyncDataCollector
from rldata.collectors.policies import mlp_policy, save_policy
from rldata.envs import GymEnv
from rldata.errors import (
    ConfigError,
    EnvNotFoundError,
    SpecError,
    StoreExistsError,
    UnknownBackendError,
)


def _rows(path):
    with stores.open(path) as store:
        return store.get(slice(0, len(store))), stores.first_fault(store), store.next_traj_id()


def _assert_trajectories(rows):
    """Rows grouped by traj id are contiguous in time: next obs of t == obs of t+1; dones end them."""
    ids = rows["collector", "traj_ids"]
    for i in ids.unique().tolist():
        ep = rows[ids == i]
        assert torch.equal(ep["next", "observation"][:-1], ep["observation"][1:])
        assert not ep["next", "done"][:-1].any()


def test_record_an_env_into_a_new_store(tmp_path):
    summary = api.record(
        GymEnv("Pendulum-v1", max_episode_steps=30), tmp_path / "ds", frames=100, commit_every=40
    )
    rows, fault, next_id = _rows(tmp_path / "ds")
    assert fault is None
    assert len(rows) == summary.store_rows == summary.frames == 100
    assert summary.episodes == 3 and next_id == 4  # 3 finished + the cut 4th
    _assert_trajectories(rows)


def test_record_batched_env_keeps_each_trajectory_in_time_order(tmp_path):
    env = GymEnv("Pendulum-v1", num_envs=3, max_episode_steps=7)
    summary = api.record(env, tmp_path / "ds", frames=100, commit_every=30)
    rows, fault, _ = _rows(tmp_path / "ds")
    assert fault is None and len(rows) == summary.frames == 100  # exact, not rounded to 3 envs
    assert summary.commits == 4  # at 30, 60, 90 frames and at the end
    _assert_trajectories(rows)


def test_record_resume_continues_trajectory_ids(tmp_path):
    path = tmp_path / "ds"
    api.record(GymEnv("CartPole-v1"), path, frames=50)
    _, _, first_next = _rows(path)
    summary = api.record(GymEnv("CartPole-v1"), path, frames=30, resume=True)
    rows, fault, _ = _rows(path)
    assert fault is None and len(rows) == 80
    assert summary.first_traj_id == first_next
    assert rows["collector", "traj_ids"][50:].min() == first_next


def test_record_a_collector(tmp_path):
    collector = SyncDataCollector(GymEnv("Pendulum-v1"), None, frames_per_batch=16)
    summary = api.record(collector, tmp_path / "ds", frames=40)
    assert summary.frames == 40 and _rows(tmp_path / "ds")[0].batch_size == torch.Size([40])


def test_existing_store_needs_resume_or_force(tmp_path):
    path = tmp_path / "ds"
    api.record(GymEnv("Pendulum-v1"), path, frames=20)
    with pytest.raises(StoreExistsError, match="--resume"):
        api.record(GymEnv("Pendulum-v1"), path, frames=20)
    assert len(_rows(path)[0]) == 20
    api.record(GymEnv("Pendulum-v1"), path, frames=10, force=True)
    assert len(_rows(path)[0]) == 10


BAD = {
    "zero frames": (dict(frames=0), ConfigError),
    "negative frames": (dict(frames=-3), ConfigError),
    "unknown backend": (dict(frames=10, backend="nope"), UnknownBackendError),
    "unknown env id": (dict(frames=10, env_id="NoSuchEnv-v0"), EnvNotFoundError),
    "resume and force": (dict(frames=10, resume=True, force=True), ConfigError),
    "zero workers": (dict(frames=10, workers=0), ConfigError),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_collect_bad_input_writes_nothing(tmp_path, case):
    kwargs, error = BAD[case]
    kwargs = dict(kwargs)
    env_id = kwargs.pop("env_id", "Pendulum-v1")
    with pytest.raises(error):
        api.collect(env_id, out=str(tmp_path / "ds"), **kwargs)
    assert not (tmp_path / "ds").exists()


def test_collect_with_a_policy_checkpoint_and_provenance(tmp_path):
    env = GymEnv("Pendulum-v1")
    save_policy(
        mlp_policy(env.observation_spec, env.action_spec, num_cells=[16]), tmp_path / "pi.pt"
    )
    summary = api.collect(
        "Pendulum-v1", frames=64, out=str(tmp_path / "ds"), policy=str(tmp_path / "pi.pt"), seed=1
    )
    assert summary.frames == 64
    with stores.open(tmp_path / "ds") as store:
        prov = store.provenance
    assert prov["policy"] == str(tmp_path / "pi.pt") and prov["seed"] == 1
    assert prov["env_id"] == "Pendulum-v1" and prov["gymnasium_version"] and prov["rldata_version"]


def test_collect_refuses_a_policy_for_another_env(tmp_path):
    env = GymEnv("CartPole-v1")
    save_policy(mlp_policy(env.observation_spec, env.action_spec), tmp_path / "pi.pt")
    with pytest.raises(SpecError, match="observation shape"):
        api.collect(
            "Pendulum-v1", frames=64, out=str(tmp_path / "ds"), policy=str(tmp_path / "pi.pt")
        )
    assert not (tmp_path / "ds").exists()


def test_collect_with_two_worker_processes(tmp_path):
    summary = api.collect(
        "Pendulum-v1",
        frames=200,
        out=str(tmp_path / "ds"),
        workers=2,
        num_envs=2,
        env_kwargs={"max_episode_steps": 20},
        seed=0,
    )
    rows, fault, _ = _rows(tmp_path / "ds")
    assert fault is None and len(rows) == summary.frames == 200
    _assert_trajectories(rows)
    assert summary.episodes == 8


@pytest.fixture
def local_ray():
    """A local Ray with 2 CPUs (workers import rldata from this checkout); shut down after."""
    import os
    from pathlib import Path

    ray = pytest.importorskip("ray")
    root = str(Path(__file__).resolve().parents[1])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": root}})
    yield ray
    ray.shutdown()
    assert os.environ.get("RAY_ADDRESS") is None


@pytest.mark.slow  # Ray start-up and two actors: ~20 s here
def test_ray_actors_record_shards_that_read_back_as_one_store(tmp_path, local_ray):
    out = str(tmp_path / "ds")
    kwargs = {"max_episode_steps": 25}
    summary = api.collect(
        "Pendulum-v1", frames=300, out=out, workers=2, ray=True, seed=0, env_kwargs=kwargs
    )
    assert summary.frames == 300 and len(summary.shards) == 2
    assert api.verify(out) == []
    with stores.open(out) as store:
        assert len(store) == 300
        assert [len(s) for s in store.shards] == [150, 150]
        rows = store.get(slice(0, len(store)))
        first_next = store.next_traj_id()
    _assert_trajectories(rows)
    per_shard = [
        set(rows["collector", "traj_ids"][a:b].tolist()) for a, b in ((0, 150), (150, 300))
    ]
    assert not per_shard[0] & per_shard[1]  # unique across workers
    # resume: both actors append to their shard, ids continue after every id stored
    api.collect(
        "Pendulum-v1", frames=100, out=out, workers=2, ray=True, resume=True, env_kwargs=kwargs
    )
    assert api.verify(out) == []
    with stores.open(out) as store:
        assert len(store) == 400
        ids = store.get(slice(0, 400))["collector", "traj_ids"]
    assert ids[150:200].min() >= first_next and ids[350:].min() >= first_next
    card = api.dataset_card(out)
    assert card["transitions"] == 400 and len(card["shards"]) == 2 and card["backend"] == "sharded"


def test_a_write_error_in_the_writer_thread_reaches_the_caller(tmp_path):
    from rldata.errors import SchemaMismatchError

    api.record(GymEnv("CartPole-v1"), tmp_path / "ds", frames=30)
    store = stores.open(tmp_path / "ds", mode="a")
    try:
        with pytest.raises(SchemaMismatchError):
            api.record(GymEnv("Pendulum-v1"), store, frames=3000)
    finally:
        store.close()
    rows, fault, _ = _rows(tmp_path / "ds")
    assert fault is None and len(rows) == 30


def test_progress_reports_frames_episodes_and_mean_return(tmp_path):
    seen = []
    env = GymEnv("Pendulum-v1", max_episode_steps=25)
    api.record(
        env,
        tmp_path / "ds",
        frames=100,
        frames_per_batch=20,
        progress=lambda s: seen.append((s.frames, s.episodes, s.mean_return)),
    )
    frames = [f for f, _, _ in seen]
    assert frames == sorted(frames) and frames[-1] == 100
    assert seen[-1][1] == 4 and seen[-1][2] is not None and seen[0][2] is None
    with stores.open(tmp_path / "ds") as store:
        eps = store.episodes()
    assert abs(float(eps["return"].mean()) - seen[-1][2]) < 1e-3


def test_a_directory_that_is_not_a_store_is_never_written_or_deleted(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    for kwargs in ({}, {"force": True}):
        with pytest.raises(StoreExistsError, match="not an rldata store"):
            api.record(GymEnv("Pendulum-v1"), tmp_path / "ds", frames=10, **kwargs)
    assert (tmp_path / "ds" / "notes.txt").read_text() == "mine"


def test_loading_a_store_does_not_import_training():
    """``rldata.load`` streams from object storage: its first batch should not wait for the
    trainers, the objectives and the env wrappers to import."""
    code = "import sys, rldata.api; print('rldata.trainers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
