"""The README's main job, as written, at a tiny budget: record, train online into a store,
train offline from it, evaluate both into a table, plot the curves.

The command is read from the README, so the two cannot drift; only the budgets shrink.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SMALLER = {"--frames": "200", "--steps": "20", "--episodes": "1"}


def main_job() -> list[list[str]]:
    text = README.read_text()
    block = text.split("**Run the main job**", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(c) for c in block.replace("\\\n", " ").split("&&")]
    return [c for c in commands if c and c[0] == "rldata"]


def shrink(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in SMALLER:
            out[i + 1] = SMALLER[arg]
    return out


def test_the_readme_main_job_tells_the_whole_story():
    verbs = [c[1] for c in main_job()]
    assert verbs == ["collect", "info", "verify", "train", "train", "eval", "plot"]


def test_the_readme_main_job_runs_end_to_end(tmp_path):
    cli = [sys.executable, "-c", "from rldata_cli.main import main; main()"]
    outputs = []
    for argv in main_job():
        done = subprocess.run(
            [*cli, *shrink(argv)[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        outputs.append(done.stdout)
    table = outputs[-2]
    assert re.search(r"\| runs/sac \| sac \| online \| 200 \|", table), table
    assert re.search(r"\| runs/iql \| iql \| offline \| 0 \| 20 \|", table), table
    png = tmp_path / "runs" / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
