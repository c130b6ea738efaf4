"""The Trainer at small scale: offline, online, offline-to-online and async loops, every algorithm."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import rldata
from rldata.collectors.policies import load_policy
from rldata.envs import GymEnv
from rldata.trainers import ALGORITHMS, Trainer, store_stats
from tests.trainers.conftest import tiny


def rows(run, kind=None):
    with (run / "metrics.csv").open() as f:
        out = list(csv.DictReader(f))
    return [r for r in out if kind is None or r["kind"] == kind]


# the Pendulum dataset: continuous algorithms here, discrete ones in test_discrete.py
@pytest.mark.parametrize("algo", sorted(n for n, a in ALGORITHMS.items() if not a.discrete))
def test_every_algorithm_trains_offline_and_writes_a_run(algo, dataset, tmp_path):
    run = tmp_path / "run"
    summary = Trainer(tiny(algo=algo, dataset=str(dataset), steps=12, eval_every=6), run).fit()
    assert (summary.algo, summary.mode, summary.updates, summary.env_steps) == (
        algo,
        "offline",
        12,
        0,
    )
    assert summary.eval_env == "Pendulum-v1"
    assert [e["updates"] for e in summary.evaluations] == [6, 12]
    saved = json.loads((run / "summary.json").read_text())
    for key in ("algo", "env_steps", "updates", "eval_return_mean", "eval_return_std", "wall_s"):
        assert key in saved
    assert saved["versions"]["torch"] == torch.__version__
    assert json.loads((run / "config.json").read_text())["algo"] == algo
    assert [r["updates"] for r in rows(run, "eval")] == ["6", "12"]
    assert any(k.startswith("loss_") for k in rows(run, "train")[0])
    # the exported policy acts like the trained actor in evaluation
    env = GymEnv("Pendulum-v1")
    policy = load_policy(run, env=env)
    from rldata.trainers import evaluate_policy

    again = evaluate_policy(policy, env, 1, seed=0)
    assert again.mean == pytest.approx(summary.eval_return_mean, rel=1e-4, abs=1e-3)


def test_online_loop_counts_frames_and_updates_by_the_utd(tmp_path):
    cfg = tiny(
        algo="sac",
        env="Pendulum-v1",
        frames=300,
        init_random_frames=100,
        frames_per_batch=50,
        utd=0.5,
        eval_every=150,
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary.env_steps == 300 and summary.mode == "online"
    assert summary.updates == 100  # 0.5 updates per frame from frame 100 on
    assert [e["env_steps"] for e in summary.evaluations] == [150, 300]


def test_online_training_records_an_ordinary_dataset(tmp_path):
    store = tmp_path / "store"
    cfg = tiny(algo="td3", env="Pendulum-v1", frames=200, init_random_frames=100, store=str(store))
    cfg.frames_per_batch = 50
    Trainer(cfg, tmp_path / "run").fit()
    buffer = rldata.load(store)
    assert len(buffer) == 200
    with rldata.open(store) as s:
        assert s.env_id == "Pendulum-v1"
        assert s.provenance["policy"] == "rldata train --algo td3"
        assert int(s.episodes().batch_size[0]) == 1  # 200 steps: one Pendulum episode


def test_offline_to_online_mixes_and_never_writes_the_dataset(dataset, tmp_path):
    before = (dataset / "rldata.json").read_bytes()
    cfg = tiny(
        algo="iql",
        dataset=str(dataset),
        env="Pendulum-v1",
        frames=150,
        init_random_frames=0,
        frames_per_batch=50,
        utd=0.2,
        eval_every=150,
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary.mode == "offline-to-online" and summary.updates == 30
    assert (dataset / "rldata.json").read_bytes() == before


def test_async_collection_holds_the_update_to_data_ratio(tmp_path):
    cfg = tiny(
        algo="ddpg",
        env="Pendulum-v1",
        frames=300,
        init_random_frames=64,
        frames_per_batch=20,
        utd=0.5,
        collect_async=True,
        eval_every=300,
        log_every=5,
    )
    summary = Trainer(cfg, tmp_path / "run").fit()
    assert summary.env_steps == 300
    # min size 64 (>= batch), then 0.5 samples per insert, within the band of 2 batches
    assert abs(summary.updates - 0.5 * 300) <= 0.5 * 64 + 2 * 0.5 * 20
    train = rows(tmp_path / "run", "train")
    assert "insert_blocked_s" in train[0] and "sample_blocked_s" in train[0]


def test_exploration_noise_anneals_and_gradients_are_clipped(tmp_path):
    cfg = tiny(
        algo="ddpg",
        env="Pendulum-v1",
        frames=200,
        init_random_frames=100,
        frames_per_batch=50,
        grad_clip=0.5,
        sigma_init=0.5,
        sigma_end=0.1,
        eval_every=200,
    )
    Trainer(cfg, tmp_path / "run").fit()
    train = rows(tmp_path / "run", "train")
    sigmas = [float(r["sigma"]) for r in train]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] == pytest.approx(0.1)
    assert all(r["grad_norm"] != "" for r in train)


def test_without_a_run_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = Trainer(tiny(algo="sac", env="Pendulum-v1", frames=100, init_random_frames=50)).fit()
    assert summary.run_dir is None and summary.env_steps == 100
    assert list(tmp_path.iterdir()) == []


def test_normalization_statistics_match_the_rows(dataset):
    with rldata.open(dataset) as store:
        stats = store_stats(store)
        obs = store.get(torch.arange(len(store)))["observation"].double()
    entry = stats["observation"]
    assert entry["count"] == 400
    assert entry["mean"] == pytest.approx(obs.mean(0).tolist(), abs=1e-5)
    assert entry["std"] == pytest.approx(obs.std(0, unbiased=False).tolist(), abs=1e-5)
    assert entry["min"] == pytest.approx(obs.amin(0).tolist())
    assert "next.reward" in stats


def test_td3bc_acts_on_normalized_observations(dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="td3bc", dataset=str(dataset), steps=4, eval_every=4), run).fit()
    arch = torch.load(run / "policy.pt", weights_only=True)["arch"]
    norm = json.loads(arch)["obs_norm"]
    with rldata.open(dataset) as store:
        assert norm["mean"] == pytest.approx(store_stats(store)["observation"]["mean"], abs=1e-6)


def test_cpu_training_runs_on_one_thread_and_restores_the_callers_setting(dataset):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    try:
        cfg = tiny(algo="iql", dataset=str(dataset), steps=20)
        cfg.threads = None
        Trainer(cfg, progress=lambda p: seen.append(torch.get_num_threads())).fit()
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
