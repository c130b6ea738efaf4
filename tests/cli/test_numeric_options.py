"""Every numeric option of ``rldata collect``, ``train`` and ``eval`` has a range, checked
where the value is parsed: a value outside it (huge, negative, zero where a count must be
positive, NaN or an infinity for a float) is one line on stderr naming the flag, the
allowed range and the value given, exit 1, no traceback, nothing written.

The cases are drawn by hypothesis over every numeric option the commands declare (a new
option without a range here fails :func:`test_every_numeric_option_has_a_range_here`).
"""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path

import click
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rldata.trainers.config import FIELD_RULES
from rldata_cli.main import rldata as cli

HUGE = 2**70
#: ``rldata collect``'s counts and seed: the ranges the user is promised (README, --help).
COLLECT = {
    "frames": (1, 2**48),
    "num_envs": (1, 4096),
    "workers": (1, 256),
    "seed": (0, 2**32 - 1),
    "commit_every": (1, 2**48),
}
EVAL = {"episodes": (1, 100_000), "seed": (0, 2**62)}


def _numeric(command: str) -> dict[str, str]:
    """The numeric options ``command`` declares: field name -> click type name."""
    cmd = cli.get_command(click.Context(cli), command)
    assert cmd is not None
    return {
        p.name: p.type.name
        for p in cmd.params
        if isinstance(p.type, (click.types.IntParamType, click.types.FloatParamType))
    }


def test_every_numeric_option_has_a_range_here() -> None:
    assert set(_numeric("collect")) == set(COLLECT)
    assert set(_numeric("eval")) == set(EVAL)
    assert set(_numeric("train")) <= set(FIELD_RULES)


def _int_outside(low: float | None, high: float | None, open_low: bool = False) -> list[int]:
    bad = [HUGE, -HUGE, 2**63, -(2**63)]
    if low is not None:
        bad += [int(low) - 1, int(low) - 1000] + ([int(low)] if open_low else [])
    if high is not None:
        bad += [int(high) + 1, int(high) * 2 + 1]
    return bad


def _float_outside(rule) -> list[float]:  # noqa: ANN001 - a config.Rule
    bad = [math.nan, math.inf, -math.inf, 1e300, -1e300]
    if rule.low is not None:
        bad += [rule.low] if rule.open_low else [math.nextafter(rule.low, -math.inf)]
    if rule.high is not None:
        bad += [rule.high] if rule.open_high else [math.nextafter(rule.high, math.inf)]
    return bad


def _train_cases() -> list[tuple[str, object]]:
    cases = []
    for name, kind in _numeric("train").items():
        rule = FIELD_RULES[name]
        if kind == "integer":
            cases += [(name, v) for v in _int_outside(rule.low, rule.high, rule.open_low)]
        else:
            cases += [(name, v) for v in _float_outside(rule)]
    return cases


def _cases(table: dict[str, tuple[int, int]]) -> list[tuple[str, object]]:
    return [(name, v) for name, (lo, hi) in table.items() for v in _int_outside(lo, hi)]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check(args: list[str], name: str, value: object, out: Path) -> None:
    result = CliRunner().invoke(cli, [*args, _flag(name), str(value), "--quiet"])
    assert result.exit_code == 1, (name, value, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (name, value, result.stderr)
    line = lines[0]
    assert line.startswith(f"Error: {_flag(name)} must be "), line  # the flag
    assert re.search(r"in [\[(]\S+, \S+[\])]", line), line  # the allowed range
    shown = repr(value) if isinstance(value, float) else str(value)
    assert f"got {shown}" in line, line  # the value given
    assert not out.exists()  # checked before anything is written


@settings(max_examples=120, deadline=None)
@given(case=st.sampled_from(_train_cases()))
def test_train_refuses_a_number_outside_its_range_in_one_line(case) -> None:
    name, value = case
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--out", str(out)]
        _check(args, name, value, out)


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(_cases(COLLECT)))
def test_collect_refuses_a_number_outside_its_range_in_one_line(case) -> None:
    name, value = case
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        frames = [] if name == "frames" else ["--frames", "10"]
        _check(["collect", "CartPole-v1", *frames, "--out", str(out)], name, value, out)


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(_cases(EVAL)))
def test_eval_refuses_a_number_outside_its_range_in_one_line(case) -> None:
    name, value = case
    with tempfile.TemporaryDirectory() as tmp:
        _check(["eval", str(Path(tmp) / "run")], name, value, Path(tmp) / "run")


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(COLLECT)), data=st.data())
def test_collect_takes_every_number_inside_its_range(name, data) -> None:
    """The bound is the range, not a narrower one: values inside it pass the check (the run
    itself is not made: a missing policy file stops it after the checks)."""
    lo, hi = COLLECT[name]
    value = data.draw(st.integers(lo, hi))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        args = ["collect", "CartPole-v1", "--out", str(out), "--policy", str(Path(tmp) / "nope")]
        args += [] if name == "frames" else ["--frames", "10"]
        result = CliRunner().invoke(cli, [*args, _flag(name), str(value), "--quiet"])
        assert result.exit_code == 1 and "must be" not in result.output, result.output
