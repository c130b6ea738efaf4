"""SIGKILL at random moments during the commands that write stores: convert, merge and
train --store. After every kill the sources are byte-for-byte unchanged, and the
destination either does not exist (convert and merge build beside and rename) or is a
store that opens and verifies; a store recorded by ``train --store`` keeps its commits.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rldata.stores as stores
from rldata.testing.tamper import snapshot
from rldata.testing.ted_factory import ted_marked

ROOT = Path(__file__).resolve().parents[2]


def _source(root: Path, rows: int, start: int = 0) -> Path:
    with stores.create(root) as w:
        for k in range(0, rows, 5000):
            w.append(ted_marked(start + k, min(5000, rows - k)))
            w.commit()
    return root


def _kill_at_random(args: list[str], rng: random.Random, tmp: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rldata_cli.main", *args],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(2.0, 6.0))  # imports take about 2 s: kill while working
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _destination_is_absent_or_sound(dst: Path) -> None:
    if not (dst / "rldata.json").exists():
        return
    with stores.open(dst) as s:
        assert stores.verify(s) == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
def test_killed_convert_leaves_the_source_and_no_half_store(tmp_path, backend):
    src = _source(tmp_path / "src", 60_000)
    before = snapshot(src)
    rng = random.Random(hash(backend) % 1000)
    for trial in range(2):
        dst = tmp_path / f"dst-{trial}"
        _kill_at_random(["convert", str(src), str(dst), "--backend", backend], rng, tmp_path)
        assert snapshot(src) == before
        _destination_is_absent_or_sound(dst)


@pytest.mark.slow
def test_killed_merge_leaves_the_sources_and_no_half_store(tmp_path):
    a = _source(tmp_path / "a", 60_000)
    b = _source(tmp_path / "b", 60_000, start=10**6)
    before = (snapshot(a), snapshot(b))
    rng = random.Random(3)
    for trial in range(2):
        dst = tmp_path / f"ab-{trial}"
        _kill_at_random(["merge", str(a), str(b), "--out", str(dst)], rng, tmp_path)
        assert (snapshot(a), snapshot(b)) == before
        _destination_is_absent_or_sound(dst)


@pytest.mark.slow
def test_killed_train_keeps_the_recorded_store_sound(tmp_path):
    rng = random.Random(4)
    for trial in range(2):
        store = tmp_path / f"replay-{trial}"
        args = ["train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", "100000"]
        args += ["--out", str(tmp_path / f"run-{trial}"), "--store", str(store), "--quiet"]
        _kill_at_random(args, rng, tmp_path)
        _destination_is_absent_or_sound(store)
