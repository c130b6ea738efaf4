"""CI runs what the README tells a contributor to run, in an environment it builds itself."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_calls_the_readme_test_command_verbatim() -> None:
    test_command = _bash_blocks((ROOT / "README.md").read_text())[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci, f"{test_command!r} is not a line of .ci/run"


def test_ci_builds_a_fresh_virtual_environment_before_installing() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    made, activated = ci.find("-m venv"), ci.find("/bin/activate")
    install = ci.find("pip install -e")
    assert 0 <= made < activated < install, "the venv must be made and activated before install"
