"""``rldata train | eval | plot`` and ``collect --policy RUN``: in-process, tiny budgets.

Bad input is one line on stderr, exit 1, no traceback, and nothing written.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

import rldata
from rldata import api
from rldata.envs import GymEnv
from rldata_cli.main import rldata as cli

TINY = ["--hidden", "32,32", "--batch-size", "32", "--eval-episodes", "1", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ds"
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, path, frames=300)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "iql"
    result = run(
        "train", "--algo", "iql", "--dataset", dataset, "--steps", 10, "--eval-every", 5,
        "--out", out, *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_offline_writes_the_run(trained):
    out, output = trained
    assert "iql (offline): 0 env steps, 10 updates" in output
    summary = json.loads((out / "summary.json").read_text())
    assert {"algo", "env_steps", "updates", "eval_return_mean", "eval_return_std", "wall_s"} <= set(
        summary
    )
    assert {"rldata", "torch", "gymnasium"} <= set(summary["versions"])
    for name in ("metrics.csv", "config.json", "policy.pt", "checkpoint/state.pt"):
        assert (out / name).is_file(), name


def test_train_online_records_into_a_store(tmp_path):
    store = tmp_path / "store"
    result = run(
        "train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", 200,
        "--init-random-frames", 100, "--frames-per-batch", 50, "--store", store,
        "--out", tmp_path / "run", *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sac (online): 200 env steps, 100 updates" in result.output
    assert len(rldata.load(store)) == 200


def test_eval_reports_the_runs_return(trained):
    out, _ = trained
    summary = json.loads((out / "summary.json").read_text())
    result = run("eval", out, "--episodes", 1)
    assert result.exit_code == 0, result.output
    assert f"return {summary['eval_return_mean']:.1f}" in result.output


def test_plot_overlays_runs(trained, tmp_path):
    out, _ = trained
    png = tmp_path / "curves.png"
    result = run("plot", out, out, "--out", png)
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_records_with_a_trained_policy(trained, tmp_path):
    out, _ = trained
    ds = tmp_path / "expert"
    result = run("collect", "Pendulum-v1", "--frames", 64, "--policy", out, "--out", ds, "--quiet")
    assert result.exit_code == 0, result.output
    with rldata.open(ds) as store:
        assert len(store) == 64 and store.provenance["policy"] == str(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algo", "nope", "--env", "Pendulum-v1", "--frames", 10], "unknown algorithm 'nope'"),
        (["--algo", "sac", "--env", "CartPole-v1", "--frames", 10], "continuous (Box) action"),
        (["--algo", "sac", "--dataset", "{tmp}/missing", "--steps", 10], "no rldata store"),
        (["--algo", "iql", "--dataset", "{ds}", "--eval-env", "MountainCarContinuous-v0",
          "--steps", 10], "observation shape (3,)"),
        (["--algo", "sac", "--env", "Pendulum-v1", "--frames", 10, "--device", "cuda:7"],
         "cuda:7"),
        (["--algo", "sac", "--frames", 10], "--env ENV_ID"),
        (["--algo", "td3", "--env", "Pendulum-v1"], "--frames N"),
    ],
    ids=["unknown-algo", "discrete-env", "missing-dataset", "spec-mismatch", "no-such-device",
         "no-source", "no-budget"],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(args, message, dataset, tmp_path):
    if "cuda:7" in args and torch.cuda.device_count() > 7:
        pytest.fail("this machine has a cuda:7; the case needs a device that is not there")
    args = [a.format(tmp=tmp_path, ds=dataset) if isinstance(a, str) else a for a in args]
    out = tmp_path / "run"
    result = run("train", *args, "--out", out, "--quiet")
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_an_existing_run_is_not_overwritten(trained):
    out, _ = trained
    before = (out / "summary.json").read_bytes()
    result = run("train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", 10, "--out", out)
    assert result.exit_code == 1 and "--resume" in result.output
    assert (out / "summary.json").read_bytes() == before


def test_eval_of_a_missing_run_is_one_line(tmp_path):
    result = run("eval", tmp_path / "nothing")
    assert result.exit_code == 1 and "no training run" in result.output


def _online(store, out, frames, *extra):
    return run(
        "train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", frames,
        "--init-random-frames", 50, "--frames-per-batch", 50, "--store", store,
        "--out", out, *TINY, *extra,
    )  # fmt: skip


def _staging_left(parent):
    return [p.name for p in parent.iterdir() if ".rldata-staging-" in p.name]


def test_force_replaces_a_run_and_its_store_when_the_run_succeeds(tmp_path):
    store, out = tmp_path / "store", tmp_path / "run"
    assert _online(store, out, 100).exit_code == 0
    result = _online(store, out, 150, "--force")
    assert result.exit_code == 0, result.output
    assert len(rldata.load(store)) == 150
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] == 150 and summary["run_dir"] == str(out)
    assert _staging_left(tmp_path) == []


def test_force_refuses_a_directory_that_is_not_a_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    result = _online(tmp_path / "store", out, 60, "--force")
    assert result.exit_code == 1 and "notes.txt" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert not (tmp_path / "store").exists()


def test_a_failed_forced_run_leaves_the_old_run_and_store_as_they_were(tmp_path):
    store, out = tmp_path / "store", tmp_path / "run"
    assert _online(store, out, 100).exit_code == 0
    summary = (out / "summary.json").read_bytes()

    def crash(progress):
        if progress.env_steps >= 100:
            raise RuntimeError("killed mid-run")

    with pytest.raises(RuntimeError, match="killed mid-run"):
        api.train(
            algo="sac", env="Pendulum-v1", frames=200, init_random_frames=50,
            frames_per_batch=50, store=str(store), hidden=[32, 32], batch_size=32,
            eval_episodes=1, out=out, force=True, progress=crash,
        )  # fmt: skip
    assert (out / "summary.json").read_bytes() == summary
    assert len(rldata.load(store)) == 100
    assert _staging_left(tmp_path) == []


def test_eval_of_several_runs_prints_a_results_table(trained, tmp_path):
    out, _ = trained
    online = tmp_path / "sac"
    assert _online(tmp_path / "store", online, 100).exit_code == 0
    result = run("eval", out, online, "--episodes", 1)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith(f"| {tmp_path}")]
    assert len(rows) == 1 and "| sac | online | 100 | 50 |" in rows[0]
    iql = [line for line in result.output.splitlines() if line.startswith(f"| {out}")]
    assert len(iql) == 1 and "| iql | offline | 0 | 10 |" in iql[0]
