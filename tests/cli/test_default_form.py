"""Every ``rldata`` command in its default (interactive) form, under a pseudo-terminal.

CliRunner tests pass ``--quiet`` or run without a terminal, so progress bars never draw;
this suite runs each command as a user types it (no ``--quiet``, ``TERM=xterm``, stdout a
tty) with tiny budgets and asserts it exits 0 without a traceback. A command added to
``rldata_cli.main.COMMANDS`` without a case here fails :func:`test_every_command_has_a_case`.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rldata_cli.main import COMMANDS
from rldata_cli.main import rldata as cli

TIMEOUT_S = 240


def run_in_pty(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``python -m rldata_cli.main ARGS`` with stdin/stdout/stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "LINES": "40"}
    env.pop("NO_COLOR", None)
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "rldata_cli.main", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"rldata {' '.join(args)} did not finish in {TIMEOUT_S} s")
        rc = proc.wait(timeout=60)
    finally:
        os.close(master)
    return rc, b"".join(chunks).decode("utf-8", "replace")


def quiet(*args: object) -> None:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


TRAIN = ["--hidden", "16,16", "--batch-size", "16", "--eval-episodes", "1"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small stores, a published copy and a trained run, made quietly once."""
    d = tmp_path_factory.mktemp("default_form")
    for name, seed in (("a", 1), ("b", 2)):
        quiet(
            "collect", "Pendulum-v1", "--frames", 200, "--out", d / name, "--seed", seed, "--quiet"
        )
    quiet("push", d / "a", f"file://{d / 'remote'}")
    quiet(
        "train", "--algo", "iql", "--dataset", d / "a", "--steps", 10, "--eval-every", 5,
        "--out", d / "run", *TRAIN, "--quiet",
    )  # fmt: skip
    return d


# each command as typed; OUT in a path it writes becomes "default" or "quiet" (one per form)
CASES: dict[str, object] = {
    "collect": lambda d: [
        "collect",
        "Pendulum-v1",
        "--frames",
        "100",
        "--out",
        d / "newOUT",
        "--seed",
        "4",
    ],
    "convert": lambda d: ["convert", d / "a", d / "convertedOUT"],
    "info": lambda d: ["info", d / "a"],
    "verify": lambda d: ["verify", d / "a"],
    "push": lambda d: ["push", d / "a", f"file://{d / 'remote2OUT'}"],
    "pull": lambda d: ["pull", f"file://{d / 'remote'}", d / "pulledOUT"],
    "diff": lambda d: ["diff", d / "a", d / "b"],
    "merge": lambda d: ["merge", d / "a", d / "b", "--out", d / "mergedOUT"],
    "report": lambda d: ["report", d / "a", "--out", d / "reportOUT.html"],
    "train": lambda d: [
        "train",
        "--algo",
        "iql",
        "--dataset",
        d / "a",
        "--steps",
        "10",
        "--eval-every",
        "5",
        "--out",
        d / "run2OUT",
        *TRAIN,
    ],  # fmt: skip
    "eval": lambda d: ["eval", d / "run", "--episodes", "1"],
    "plot": lambda d: ["plot", d / "run", "--out", d / "curvesOUT.png"],
}


EXIT_CODE = {"diff": 1}  # stores a and b differ: diff exits 1, as diff(1) does


def test_every_command_has_a_case() -> None:
    assert sorted(CASES) == sorted(COMMANDS)


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "quiet"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_default_form_under_a_terminal(name: str, quiet: bool, work: Path) -> None:
    form = "quiet" if quiet else "default"  # each form writes its own outputs
    args = [str(a).replace("OUT", form) for a in CASES[name](work)]  # type: ignore[operator]
    if quiet:
        args.append("--quiet")
    rc, output = run_in_pty(args, cwd=work)
    assert "Traceback" not in output, output
    assert rc == EXIT_CODE.get(name, 0), output
    if quiet:
        assert "━" not in output, output  # no bar drawn
