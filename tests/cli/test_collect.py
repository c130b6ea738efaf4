"""``rldata collect``: in-process with CliRunner (tiny budgets), bad input is one line, nothing written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rldata import api, stores
from rldata.collectors.policies import mlp_policy, save_policy
from rldata.envs import GymEnv
from rldata_cli.main import rldata


def run(*args):
    result = CliRunner().invoke(rldata, [str(a) for a in args])
    return result


def _ids(path):
    with stores.open(path) as store:
        return store.get(slice(0, len(store)))["collector", "traj_ids"]


def test_collect_writes_a_store(tmp_path):
    out = tmp_path / "ds"
    result = run("collect", "Pendulum-v1", "--frames", 64, "--out", out, "--seed", 0, "--quiet")
    assert result.exit_code == 0, result.output
    assert "recorded 64 frames" in result.output
    assert len(_ids(out)) == 64


@pytest.mark.parametrize("backend", api.writable_backends())
def test_every_registered_backend_is_accepted(tmp_path, backend):
    result = run(
        "collect",
        "CartPole-v1",
        "--frames",
        64,
        "--out",
        tmp_path / "ds",
        "--backend",
        backend,
        "--quiet",
    )
    assert result.exit_code == 0, result.output


def test_resume_continues_ids_and_force_replaces(tmp_path):
    out = tmp_path / "ds"
    run("collect", "CartPole-v1", "--frames", 64, "--out", out, "--quiet")
    before = _ids(out)
    result = run("collect", "CartPole-v1", "--frames", 64, "--out", out, "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    after = _ids(out)
    assert len(after) == 128 and after[64:].min() == before.max() + 1
    result = run("collect", "CartPole-v1", "--frames", 32, "--out", out, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(_ids(out)) == 32


def _cartpole_policy(tmp_path):
    env = GymEnv("CartPole-v1")
    save_policy(mlp_policy(env.observation_spec, env.action_spec), tmp_path / "cartpole.pt")
    return tmp_path / "cartpole.pt"


BAD = {
    # name: (extra args, words the one-line error must contain)
    "unknown env id": (["NoSuchEnv-v0", "--frames", 64], "NoSuchEnv-v0"),
    "zero frames": (["Pendulum-v1", "--frames", 0], "frames"),
    "negative frames": (["Pendulum-v1", "--frames", -64], "frames"),
    "unknown backend": (["Pendulum-v1", "--frames", 64, "--backend", "nope"], "nope"),
    "mismatched policy": (
        ["Pendulum-v1", "--frames", 64, "--policy", "<cartpole>"],
        "observation shape",
    ),
    "missing policy file": (
        ["Pendulum-v1", "--frames", 64, "--policy", "/no/such/policy.pt"],
        "not found",
    ),
    "resume without a store": (["Pendulum-v1", "--frames", 64, "--resume"], "no rldata store"),
    "resume and force": (["Pendulum-v1", "--frames", 64, "--resume", "--force"], "--resume"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    args, words = BAD[case]
    args = [str(_cartpole_policy(tmp_path)) if a == "<cartpole>" else a for a in args]
    out = tmp_path / "ds"
    result = run("collect", *args, "--out", out, "--quiet")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and words in lines[0], result.output
    assert not out.exists()


def test_existing_store_without_resume_is_refused_untouched(tmp_path):
    out = tmp_path / "ds"
    run("collect", "Pendulum-v1", "--frames", 64, "--out", out, "--quiet")
    with stores.open(out) as store:
        digest = stores.content_digest(store)
    result = run("collect", "Pendulum-v1", "--frames", 64, "--out", out, "--quiet")
    assert result.exit_code != 0 and "--resume" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with stores.open(out) as store:
        assert stores.content_digest(store) == digest


def test_batched_and_multi_worker_collection(tmp_path):
    out = tmp_path / "ds"
    result = run(
        "collect",
        "Pendulum-v1",
        "--frames",
        64,
        "--out",
        out,
        "--num-envs",
        2,
        "--workers",
        2,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    with stores.open(out) as store:
        assert len(store) == 64 and stores.first_fault(store) is None


def test_progress_bar_shows_rate_episodes_and_mean_return(tmp_path):
    args = ["collect", "Pendulum-v1", "--frames", 400, "--out", tmp_path / "ds"]
    result = run(*args, "--seed", 0)
    assert result.exit_code == 0, result.output
    for words in ("frames/s", "episodes", "mean return", "400/400"):
        assert words in result.output, result.output
