"""One progress convention: stderr only, a bar on a terminal, whole plain lines in logs,
nothing with ``--quiet`` (which every command takes); results stay on stdout."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import rldata
from rldata._progress import PLAIN_STEPS, Bar
from rldata.envs import GymEnv
from rldata_cli.main import COMMANDS
from rldata_cli.main import rldata as cli
from tests.sharing.conftest import make_store


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_takes_quiet(name: str) -> None:
    result = run(name, "--help")
    assert result.exit_code == 0, result.output
    assert "--quiet" in result.output


LABELS = ["x", "sac tinyenv:Line1DEnv-v0 " + "a" * 150, "label with [bold]markup[/bold]"]
TOTALS = [1, 7, 10, 1234]


@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("total", TOTALS)
def test_plain_lines_when_not_a_terminal(label: str, total: int) -> None:
    out = io.StringIO()
    with Bar(label, total=total, unit="frames", stream=out) as bar:
        for done in range(1, total + 1):
            bar.update(done, extra=[f"{done} episodes"])
    lines = out.getvalue().splitlines()
    # a line when it starts and each time another tenth is done, never more; the last says total
    assert 1 <= len(lines) <= PLAIN_STEPS + 1
    assert all(line.startswith(f"{label}: ") for line in lines)  # whole, never cut
    assert lines[-1].startswith(f"{label}: {total:,}/{total:,} frames, {total} episodes, ")
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize("total", TOTALS)
def test_quiet_prints_nothing(total: int) -> None:
    out = io.StringIO()
    with Bar("x", total=total, unit="rows", enabled=False, stream=out) as bar:
        for done in range(total + 1):
            bar.update(done)
    assert out.getvalue() == ""


def test_a_bar_on_a_terminal() -> None:
    out = _Tty()
    with Bar("copy", total=100, unit="rows", stream=out) as bar:
        bar.update(100)
    assert "100/100 rows" in out.getvalue() and "━" in out.getvalue()


def test_bytes_print_as_sizes() -> None:
    out = io.StringIO()
    with Bar("push", total=2_500_000, unit="bytes", stream=out) as bar:
        bar.advance(2_500_000)
    assert "push: 2.5 MB/2.5 MB" in out.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "ds"
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, path, frames=200)
    return path


def _only_result_on_stdout(result, pattern: str) -> None:
    assert result.exit_code == 0, result.output
    assert re.fullmatch(pattern, result.stdout.strip()), result.stdout


def test_collect_progress_on_stderr(tmp_path: Path) -> None:
    args = ["collect", "Pendulum-v1", "--frames", 300, "--out", tmp_path / "ds", "--seed", 1]
    loud = run(*args)
    _only_result_on_stdout(loud, r"recorded 300 frames .*")
    assert "Pendulum-v1: 300/300 frames" in loud.stderr and "frames/s" in loud.stderr
    quiet = run(*args[:-4], "--out", tmp_path / "q", "--seed", 1, "--quiet")
    _only_result_on_stdout(quiet, r"recorded 300 frames .*")
    assert quiet.stderr == ""


def test_train_progress_on_stderr_with_full_loss_keys(tmp_path: Path, dataset: Path) -> None:
    args = ["train", "--algo", "iql", "--dataset", dataset, "--steps", 20, "--eval-every", 10]
    args += ["--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1"]
    loud = run(*args, "--out", tmp_path / "r1")
    _only_result_on_stdout(loud, r"iql \(offline\): .*")
    assert "20/20 updates" in loud.stderr
    keys = re.findall(r"(loss_\w+) ", loud.stderr)
    assert keys, loud.stderr  # each loss under its own key, e.g. loss_value, not "value"
    quiet = run(*args, "--out", tmp_path / "r2", "--quiet")
    _only_result_on_stdout(quiet, r"iql \(offline\): .*")
    assert quiet.stderr == ""


def test_sac_bar_says_loss_alpha(tmp_path: Path) -> None:
    args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", 300]
    args += ["--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1"]
    result = run(*args, "--out", tmp_path / "sac", "--init-random-frames", 100)
    assert result.exit_code == 0, result.output
    assert "loss_alpha" in result.stderr, result.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_push_pull_progress_on_stderr(tmp_path: Path, quiet: bool) -> None:
    a = make_store(tmp_path / "a", [10, 12])
    flag = ["--quiet"] if quiet else []
    url = f"file://{tmp_path / 'remote'}"
    pushed = run("push", a, url, *flag)
    _only_result_on_stdout(pushed, r"pushed .*")
    pulled = run("pull", url, tmp_path / "back", *flag)
    _only_result_on_stdout(pulled, r"pulled .*")
    for r in (pushed, pulled):
        assert (r.stderr == "") == quiet, r.stderr
        assert "\x1b" not in r.stderr
