"""``rldata info`` (the dataset card) and ``rldata verify`` (exit non-zero naming the first fault)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rldata_cli.main import rldata


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect") / "ds"
    args = [
        "collect",
        "Pendulum-v1",
        "--frames",
        "300",
        "--out",
        str(out),
        "--seed",
        "3",
        "--quiet",
    ]
    result = CliRunner().invoke(rldata, args)
    assert result.exit_code == 0, result.output
    return out


def test_info_json_is_a_dataset_card(store_path):
    result = CliRunner().invoke(rldata, ["info", str(store_path), "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["backend"] == "memmap" and card["transitions"] == 300
    assert card["episodes"] == 2 and card["finished_episodes"] == 1
    assert card["return"]["min"] <= card["return"]["mean"] <= card["return"]["max"]
    assert card["schema"]["observation"] == {"shape": [3], "dtype": "float32"}
    assert card["env"]["id"] == "Pendulum-v1" and card["provenance"]["seed"] == 3
    assert card["content_digest"].startswith("sha256:")
    assert card["specs"] is not None


def test_info_text_names_the_essentials(store_path):
    result = CliRunner().invoke(rldata, ["info", str(store_path)])
    assert result.exit_code == 0
    for word in (
        "memmap",
        "transitions",
        "300",
        "return",
        "observation",
        "digest",
        "gymnasium_version",
    ):
        assert word in result.output


def test_verify_a_sound_store(store_path):
    result = CliRunner().invoke(rldata, ["verify", str(store_path)])
    assert result.exit_code == 0 and result.output.startswith("ok:")


def test_verify_names_the_first_fault(store_path, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(store_path, broken)
    obs_file = next(
        p
        for p in broken.rglob("*")
        if p.is_file() and "observation" in p.name and "next" not in p.name
    )
    data = np.fromfile(obs_file, dtype=np.uint8)
    data[8] ^= 0xFF
    data.tofile(obs_file)
    result = CliRunner().invoke(rldata, ["verify", str(broken)])
    assert result.exit_code != 0
    line = result.output.strip()
    assert line.startswith("Error:") and len(line.splitlines()) == 1 and "observation" in line, line


def test_info_on_a_missing_store_is_one_line(tmp_path):
    result = CliRunner().invoke(rldata, ["info", str(tmp_path / "nothing")])
    assert result.exit_code != 0 and "no rldata store" in result.output
    assert "Traceback" not in result.output
