"""Offline to online learns from the dataset from the first step: no uniformly random warm-up
(pure online keeps it; a value the user gives is kept either way)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from rldata.trainers import ALGORITHMS
from rldata.trainers.algorithms import resolve
from rldata.trainers.config import GENERAL_DEFAULTS, TrainConfig
from rldata_cli.main import rldata as cli

MODES = {"online": (None, "Pendulum-v1"), "offline_to_online": ("ds", "Pendulum-v1")}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
@pytest.mark.parametrize("given", [None, 0, 37])
def test_warm_up_by_mode(algo: str, mode: str, given: int | None) -> None:
    dataset, env = MODES[mode]
    cfg = resolve(TrainConfig(algo=algo, dataset=dataset, env=env, init_random_frames=given))
    algo_default = ALGORITHMS[algo].defaults.get(
        "init_random_frames", GENERAL_DEFAULTS["init_random_frames"]
    )
    expected = given if given is not None else (0 if dataset else algo_default)
    assert cfg.init_random_frames == expected
    assert cfg.learning_starts == expected


def test_offline_to_online_updates_from_the_first_frames(dataset, tmp_path):
    torch.set_num_threads(1)
    args = ["train", "--algo", "sac", "--dataset", dataset, "--env", "Pendulum-v1"]
    args += ["--frames", 60, "--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1"]
    result = CliRunner().invoke(cli, [str(a) for a in [*args, "--out", tmp_path / "r", "--quiet"]])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["env_steps"] == 60 and summary["updates"] == 60  # utd 1 from frame one
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["init_random_frames"] == 0 and config["learning_starts"] == 0
