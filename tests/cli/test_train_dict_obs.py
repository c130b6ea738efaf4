"""``rldata train`` on a Dict observation: default form under a terminal, and ``--quiet``.

A user with their own env (``tests.trainers.dict_env``: ``{"goal", "observation": {"pos",
"vel"}}``) collects a store, trains on it, resumes, evaluates and collects with the
trained policy; an observation the trainers cannot concatenate is one line, no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import rldata
from rldata.envs import GymEnv
from rldata_cli.main import rldata as cli
from tests.cli.test_default_form import run_in_pty

MODULE = "tests.trainers.dict_env"
BOX = f"{MODULE}:RldataDictLine-v0"
DISCRETE = f"{MODULE}:RldataDictLineDiscrete-v0"
IMAGE = f"{MODULE}:RldataDictImage-v0"
TINY = ["--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1"]


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 random rows of the Dict env, collected as a user would."""
    path = tmp_path_factory.mktemp("dict_cli") / "line"
    result = run("collect", BOX, "--frames", 300, "--out", path, "--quiet")
    assert result.exit_code == 0, result.output
    return path


def test_train_in_its_default_form_on_a_dict_observation_store(store, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--algo", "td3bc", "--dataset", store, "--eval-env", BOX,
            "--steps", 200, "--out", out, *TINY]  # fmt: skip
    rc, output = run_in_pty([str(a) for a in args], cwd=Path(__file__).resolve().parents[2])
    assert rc == 0, output
    assert "Traceback" not in output
    assert "td3bc (offline): 0 env steps, 200 updates" in output
    env = GymEnv(BOX)
    policy = rldata.load_policy(out, env=env)
    assert env.rollout(20, policy)["action"].shape == (20, 1)


def test_train_quiet_resume_eval_and_collect_with_the_trained_policy(store, tmp_path):
    out = tmp_path / "run"
    first = run("train", "--algo", "iql", "--dataset", store, "--eval-env", BOX,
                "--steps", 100, "--out", out, "--quiet", *TINY)  # fmt: skip
    assert first.exit_code == 0, first.output
    assert first.output.strip().startswith("iql (offline): 0 env steps, 100 updates")
    more = run("train", "--resume", "--out", out, "--eval-env", BOX, "--steps", 200, "--quiet")
    assert more.exit_code == 0, more.output
    assert json.loads((out / "summary.json").read_text())["updates"] == 200
    evaluated = run("eval", out, "--env", BOX, "--episodes", 2)
    assert evaluated.exit_code == 0 and "over 2 episodes" in evaluated.output, evaluated.output
    recorded = run("collect", BOX, "--policy", out, "--frames", 40, "--out", tmp_path / "again",
                   "--quiet")  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    with rldata.open(tmp_path / "again") as again:
        assert again.get(torch.arange(2))["observation", "pos"].shape == (2, 2)


def test_dqn_online_on_a_dict_observation_env_quietly(tmp_path):
    out = tmp_path / "run"
    result = run("train", "--algo", "dqn", "--env", DISCRETE, "--frames", 300,
                 "--init-random-frames", 50, "--learning-starts", 50, "--frames-per-batch", 50,
                 "--out", out, "--quiet", *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "dqn (online): 300 env steps" in result.output
    env = GymEnv(DISCRETE)
    actions = env.rollout(20, rldata.load_policy(out, env=env))["action"]
    assert bool((actions.sum(-1) == 1).all())


def test_an_image_leaf_is_refused_in_one_line(tmp_path):
    result = run("train", "--algo", "sac", "--env", IMAGE, "--frames", 10, "--out", tmp_path / "r")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        f"Error: env {IMAGE!r}: observation key 'pixels' cannot be concatenated: expected a "
        "numeric vector (rank <= 2, not an image), got shape (8, 8, 3) torch.uint8"
    ]
    assert not (tmp_path / "r").exists()
