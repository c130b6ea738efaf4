"""``collect --env-kwargs JSON`` (passed to gymnasium.make, recorded in the manifest) and the
default ``--out`` (``datasets/<env id>``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rldata import stores
from rldata_cli.collect import default_out
from rldata_cli.main import rldata as cli


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


KWARGS = [
    ("Pendulum-v1", {"g": 3.5}),
    ("Pendulum-v1", {"g": 12.0}),
    ("MountainCarContinuous-v0", {"goal_velocity": 0.05}),
    ("CartPole-v1", {"sutton_barto_reward": True}),
]


@pytest.mark.parametrize(("env_id", "kwargs"), KWARGS)
def test_env_kwargs_reach_the_env_and_the_manifest(
    tmp_path: Path, env_id: str, kwargs: dict
) -> None:
    out = tmp_path / "ds"
    args = ["collect", env_id, "--frames", 40, "--seed", 3, "--quiet"]
    result = run(*args, "--out", out, "--env-kwargs", json.dumps(kwargs))
    assert result.exit_code == 0, result.output
    with stores.open(out) as store:
        assert store.manifest["env"] == {"id": env_id, "kwargs": kwargs}
        assert store.provenance["env_kwargs"] == kwargs
    card = run("info", out)
    assert card.exit_code == 0 and f"{env_id} {kwargs}" in card.output


def test_env_kwargs_change_the_dynamics(tmp_path: Path) -> None:
    rows = {}
    for g in (1.0, 15.0):
        out = tmp_path / f"g{g}"
        args = ["collect", "Pendulum-v1", "--frames", 30, "--seed", 0, "--quiet", "--out", out]
        assert run(*args, "--env-kwargs", json.dumps({"g": g})).exit_code == 0
        with stores.open(out) as store:
            rows[g] = store.get(store.readable()).get(("next", "observation"))
    assert not torch.equal(rows[1.0], rows[15.0])  # same seed, same actions, other gravity


BAD = ["{", "[1]", "3", '"g"', "null", "{'g': 1}", "g=9.81"]


@pytest.mark.parametrize("text", BAD)
def test_env_kwargs_not_a_json_object_is_one_line(tmp_path: Path, text: str) -> None:
    out = tmp_path / "ds"
    result = run("collect", "Pendulum-v1", "--frames", 5, "--out", out, "--env-kwargs", text)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --env-kwargs: "), result.output
    assert repr(text) in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("key", ["nope", "gravity", "render"])
def test_a_kwarg_the_env_does_not_take_is_one_line(tmp_path: Path, key: str) -> None:
    out = tmp_path / "ds"
    args = ["collect", "Pendulum-v1", "--frames", 5, "--out", out, "--quiet"]
    result = run(*args, "--env-kwargs", json.dumps({key: 1}))
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --env-kwargs ") and key in lines[0]
    assert not out.exists()


IDS = ["Pendulum-v1", "ALE/Pong-v5", "my_module:MyEnv-v0", "../up-v0", "a b/c:d-v1", "..."]


@pytest.mark.parametrize("env_id", IDS)
def test_default_out_is_one_directory_under_datasets(env_id: str) -> None:
    out = default_out(env_id)
    head, name = os.path.split(out)
    assert head == "datasets" and name not in ("", ".", "..")
    assert all(c.isalnum() or c in "._-" for c in name) and not name.startswith(".")


def test_collect_writes_to_datasets_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("collect", "Pendulum-v1", "--frames", 20, "--quiet")
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "datasets" / "Pendulum-v1") in result.output
    with stores.open(tmp_path / "datasets" / "Pendulum-v1") as store:
        assert len(store) == 20
