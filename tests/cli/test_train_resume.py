"""``train --resume`` refuses every flag that contradicts the run's config.json (one line naming
the flag, the run's value and the given one); the same flags, or a longer schedule, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import rldata
from rldata import api
from rldata.envs import GymEnv
from rldata.errors import ConfigError
from rldata.trainers import TrainConfig
from rldata.trainers.trainer import FREE_ON_RESUME
from rldata_cli.main import rldata as cli

TINY = ["--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1", "--quiet"]


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("resume")
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, d / "ds", frames=200)
    args = ["train", "--algo", "iql", "--dataset", d / "ds", "--steps", 10, "--eval-every", 5]
    result = run(*args, "--out", d / "run", *TINY)
    assert result.exit_code == 0, result.output
    return d / "run"


def _contradiction(name: str, saved: Any) -> tuple[list[str], Any]:
    """A flag (and the value it parses to) that differs from the run's ``saved`` value."""
    flag = "--" + name.replace("_", "-")
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    kind = str(f.type)
    if kind.startswith("bool"):
        return ([f"--no-{name.replace('_', '-')}"] if saved else [flag]), not saved
    if kind.startswith("int"):
        value = (saved or 0) + 3
        return [flag, str(value)], value
    if kind.startswith("float"):
        value = (saved or 0.0) * 2 + 0.25
        return [flag, repr(value)], value
    value = f"{saved}-other" if saved else "other"
    return [flag, value], value


FIELDS = [
    f.name
    for f in dataclasses.fields(TrainConfig)
    if f.name not in {"hidden", *FREE_ON_RESUME, "dataset", "env"}
]


@pytest.mark.parametrize("name", FIELDS)
def test_a_contradicting_flag_is_refused(trained: Path, name: str) -> None:
    saved = json.loads((trained / "config.json").read_text())
    before = {p: p.read_bytes() for p in sorted(trained.rglob("*")) if p.is_file()}
    args, value = _contradiction(name, saved[name])
    result = run("train", "--out", trained, "--resume", *args, "--quiet")
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    flag = "--" + name.replace("_", "-")
    assert lines[0].startswith(f"Error: {flag}: ") and repr(saved[name]) in lines[0], lines[0]
    assert repr(value) in lines[0], lines[0]
    assert {p: p.read_bytes() for p in sorted(trained.rglob("*")) if p.is_file()} == before


def test_the_runs_own_values_and_a_longer_schedule_resume(trained: Path) -> None:
    saved = json.loads((trained / "config.json").read_text())
    args = ["--algo", saved["algo"], "--seed", saved["seed"], "--steps", 14, "--hidden", "16,16"]
    result = run("train", "--out", trained, "--resume", *args, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((trained / "summary.json").read_text())["updates"] == 14


def test_the_python_api_refuses_too(trained: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--algo: .*'iql', given 'td3bc'"):
        api.train(algo="td3bc", out=trained, resume=True)
