"""Killing ``rldata collect`` with SIGKILL mid-run loses nothing that was committed, for every backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rldata import api, stores
from rldata.errors import RldataError
from rldata_cli.main import rldata

ROOT = Path(__file__).resolve().parents[2]


def _committed(path):
    """(rows, episodes as (traj_id, start, length) tuples) of what a reader sees now."""
    try:
        with stores.open(path) as store:
            eps = store.episodes()
            table = list(
                zip(eps["traj_id"].tolist(), eps["start"].tolist(), eps["length"].tolist())
            )
            return len(store), table
    except RldataError:  # not created yet
        return 0, []


@pytest.mark.slow  # a subprocess start-up (imports) plus a few commits: ~10 s
@pytest.mark.parametrize("backend", api.writable_backends())
@pytest.mark.parametrize(
    "moment", [0.03, 0.2, 0.47]
)  # seconds past a commit: mid-batch, mid-commit
def test_sigkill_mid_run_then_verify_and_resume(tmp_path, backend, moment):
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "rldata_cli.main",
        "collect",
        "Pendulum-v1",
        "--frames",
        "50000000",
        "--out",
        str(out),
        "--backend",
        backend,
        "--commit-every",
        "300",
        "--quiet",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        rows, snapshot = 0, []
        while rows < 2500:  # several commits, episodes finished
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "collect never committed 2500 rows"
            time.sleep(0.05)
            rows, snapshot = _committed(out)
        time.sleep(moment)  # let it write past the snapshot
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with stores.open(out) as store:
        assert stores.first_fault(store) is None
        after_rows = len(store)
    assert after_rows >= rows
    _, after = _committed(out)
    # every episode committed before the kill is still there, unchanged (the last one may have grown)
    assert after[: len(snapshot) - 1] == snapshot[:-1]
    last_id = max(t for t, _, _ in after)
    result = CliRunner().invoke(
        rldata,
        ["collect", "Pendulum-v1", "--frames", "64", "--out", str(out), "--resume", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    with stores.open(out) as store:
        assert len(store) == after_rows + 64 and stores.first_fault(store) is None
        new_ids = store.get(slice(after_rows, after_rows + 64))["collector", "traj_ids"]
    assert new_ids.min() == last_id + 1
