"""Ctrl-C (SIGINT) at seeded random moments of each writing command, as a user types it
(stdout and stderr a terminal, progress bars drawn).

``tests/cli/test_kill_commands.py`` sends SIGKILL; nothing sent SIGINT, which runs Python's
unwinding (``finally`` blocks, context managers, click's ``Aborted!``) instead of stopping
dead. Each case checks: no traceback, the command ends within a minute of the signal, the
source is byte for byte as it was, no hidden staging is left beside the destination, and the
destination either does not exist or is a store that verifies; an interrupted push or pull
completes when run again (they are resumable).

Found by a fresh probe: Ctrl-C while a command module imported torch (the first second or
so) was a traceback (``ImportError: cannot load module more than once per process``, numpy
half-initialised) or a SIGABRT; the CLI now holds SIGINT back during that import.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_probe_families import tree_state

import rldata.stores as stores
from rldata.testing.ted_factory import ted_marked
from rldata_cli.main import rldata as cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sigint") / "src"
    with stores.create(root) as w:
        for k in range(0, 60_000, 5000):
            w.append(ted_marked(k, 5000))
            w.commit()
    return root


CASES: dict[str, Callable[[Path, Path], list[str]]] = {
    "collect": lambda s, d: ["collect", "Pendulum-v1", "--frames", "3000", "--out", str(d)],
    "convert": lambda s, d: ["convert", str(s), str(d)],
    "convert-zarr": lambda s, d: ["convert", str(s), str(d), "--backend", "zarr"],
    "merge": lambda s, d: ["merge", str(s), str(s), "--out", str(d)],
    "push": lambda s, d: ["push", str(s), d.as_uri()],
    "pull": lambda s, d: ["pull", s.as_uri(), str(d)],
}


def interrupt(args: list[str], after_s: float) -> tuple[int, str]:
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "rldata_cli.main", *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    signal_at = time.monotonic() + after_s
    deadline = signal_at + 60
    sent = False
    try:
        while time.monotonic() < deadline:
            if not sent and time.monotonic() >= signal_at and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                sent = True
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"rldata {args[0]} still ran 60 s after SIGINT")
        rc = proc.wait(timeout=60)
    finally:
        os.close(master)
    return rc, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(CASES))
def test_sigint_leaves_sources_and_destinations_whole(
    src: Path, tmp_path: Path, name: str, seed: int
) -> None:
    dst = tmp_path / "dst"
    before = tree_state(src)
    rc, out = interrupt(CASES[name](src, dst), random.Random(f"{name}{seed}").uniform(0.3, 4.0))
    assert "Traceback" not in out, out
    assert tree_state(src) == before
    assert [p.name for p in tmp_path.iterdir() if p.name != "dst"] == []  # no staging left
    if name in ("push", "pull") and rc != 0:  # resumable: run it again to the end
        again = CliRunner().invoke(cli, [*CASES[name](src, dst), "--quiet"])
        assert again.exit_code == 0, again.output
    if dst.exists():
        result = CliRunner().invoke(cli, ["verify", str(dst)])
        assert result.exit_code == 0, (rc, out, result.output)


@pytest.mark.parametrize("after_s", [0.4, 0.9])
def test_sigint_while_a_command_imports_is_aborted_in_one_line(
    src: Path, tmp_path: Path, after_s: float
) -> None:
    rc, out = interrupt(["verify", str(src)], after_s)
    assert "Traceback" not in out, out
    assert rc in (0, 1), (rc, out)  # 1 and "Aborted!", or done before the signal
