"""The command group: lists every command without importing it, runs each one on demand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rldata_cli.main import COMMANDS, rldata

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listed_help_is_the_first_paragraph_of_the_command_help(name: str) -> None:
    command = rldata.get_command(click.Context(rldata), name)
    assert isinstance(command, click.Command)
    first = " ".join((command.help or "").split("\n\n")[0].split())
    assert COMMANDS[name][1] == first


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["-h"]])
def test_help_and_version_import_neither_torch_nor_the_api(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from rldata_cli.main import rldata\n"
        f"try:\n    rldata.main({argv!r}, prog_name='rldata')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('torch', 'tensordict', 'rldata.api') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True, capture_output=True)


def test_help_lists_every_command_and_an_unknown_one_is_a_usage_error() -> None:
    out = CliRunner().invoke(rldata, ["--help"]).output
    assert all(f"  {name} " in out for name in COMMANDS)
    bad = CliRunner().invoke(rldata, ["colect"])
    assert bad.exit_code == 2 and "No such command 'colect'" in bad.output


@pytest.mark.parametrize(
    "code",
    [
        "import rldata_cli.main as m; assert m.COMMANDS",
        "import importlib.util as u; assert u.find_spec('cli') is None or "
        f"not u.find_spec('cli').origin.startswith({str(ROOT)!r})",
    ],
    ids=["rldata_cli imports", "no top-level cli from rldata"],
)
def test_the_cli_package_installs_as_rldata_cli(tmp_path: Path, code: str) -> None:
    """From outside the repository (no ``cli/`` folder on the path): the installed name."""
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)


def test_python_m_rldata_cli_main_runs_outside_the_repo(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rldata_cli.main", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Usage: rldata" in done.stdout
