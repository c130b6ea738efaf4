"""``--help`` teaches: an example ending every command's help; ``train --help`` in sections
(the TrainConfig comment groups) with defaults and the algorithm choices; ``train --config``."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import rldata
from rldata.envs import GymEnv
from rldata.trainers import ALGORITHMS, TrainConfig
from rldata_cli._help import EXAMPLES
from rldata_cli.main import COMMANDS
from rldata_cli.main import rldata as cli


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], terminal_width=200)


def test_every_command_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_ends_with_an_example(name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0, result.output
    tail = result.output.rstrip().splitlines()
    examples = EXAMPLES[name]
    assert [line.strip() for line in tail[-len(examples) :]] == examples
    assert all(e.startswith(f"rldata {name} ") for e in examples)


def _sections(text: str) -> dict[str, list[str]]:
    """``{heading: [option names]}`` of a help page."""
    out: dict[str, list[str]] = {}
    heading = None
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][^:]*:", line):
            heading = line[:-1]
            out[heading] = []
        elif heading and (m := re.match(r"  (--[a-z-]+)", line)):
            out[heading].append(m.group(1))
    return out


def test_train_help_sections_follow_the_config_groups() -> None:
    text = run("train", "--help").output
    sections = _sections(text)
    groups = TrainConfig.field_groups()
    for f in dataclasses.fields(TrainConfig):
        heading = groups[f.name][:1].upper() + groups[f.name][1:]
        assert "--" + f.name.replace("_", "-") in sections[heading], (f.name, heading)
    assert sections["Run"] == ["--out", "--config", "--resume", "--force", "--quiet"]
    assert "``" not in text and ":class:" not in text


@pytest.mark.parametrize(
    "field",
    [f for f in dataclasses.fields(TrainConfig) if f.default not in (None, dataclasses.MISSING)],
    ids=lambda f: f.name,
)
def test_train_help_shows_each_default(field: dataclasses.Field) -> None:
    text = run("train", "--help").output
    value = str(field.default).lower() if isinstance(field.default, bool) else str(field.default)
    flag = "--" + field.name.replace("_", "-")
    start = re.search(r"\n  " + re.escape(flag) + r"[ /\n]", text)
    assert start, flag
    entry = " ".join(re.split(r"\n  --", text[start.end() :])[0].split())  # its help only
    assert f"[default: {value}]" in entry, entry


def test_train_help_lists_the_algorithms() -> None:
    text = run("train", "--help").output
    assert "[" + "|".join(sorted(ALGORITHMS)) + "]" in text


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("help") / "ds"
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, path, frames=200)
    return path


def _toml(values: dict) -> str:
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + "\n"


FILE = {"algo": "iql", "steps": 6, "eval_every": 3, "batch_size": 16, "hidden": [16, 16],
        "eval_episodes": 1, "seed": 4, "log_every": 3}  # fmt: skip
FLAGS = [[], ["--seed", "9"], ["--batch-size", "8", "--steps", "4"], ["--hidden", "8"]]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: " ".join(f) or "none")
def test_config_file_with_flags_over_it_lands_in_config_json(
    tmp_path: Path, dataset: Path, flags: list[str]
) -> None:
    torch.set_num_threads(1)
    path = tmp_path / "run.toml"
    path.write_text(_toml({**FILE, "dataset": str(dataset)}))
    out = tmp_path / "run"
    result = run("train", "--config", path, "--out", out, "--quiet", *flags)
    assert result.exit_code == 0, result.output
    expected = {**FILE, "dataset": str(dataset)}
    for flag, value in zip(flags[::2], flags[1::2]):
        key = flag[2:].replace("-", "_")
        expected[key] = [int(value)] if key == "hidden" else int(value)
    saved = json.loads((out / "config.json").read_text())
    assert {k: saved[k] for k in expected} == expected


BAD_FILES = {
    "unknown key": ("batchsize = 3\n", ["unknown key 'batchsize'", "batch_size"]),
    "dashed key": ("batch-size = 3\n", ["unknown key 'batch-size'", "batch_size"]),
    "not toml": ("algo = \n", ["not valid TOML"]),
    "bad value": ('batch_size = "many"\n', ["batch_size"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_config_file_is_one_line(tmp_path: Path, case: str) -> None:
    text, words = BAD_FILES[case]
    path = tmp_path / "run.toml"
    path.write_text(text)
    result = run("train", "--config", path, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in result.output
    for w in words:
        assert w in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = run("train", "--config", tmp_path / "nope.toml", "--out", tmp_path / "run")
    assert result.exit_code != 0 and "nope.toml" in result.output
    assert "Traceback" not in result.output
