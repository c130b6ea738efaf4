"""SIGKILL at fixed points of the destination policy, for every command that builds and swaps.

The command runs in a child process that kills itself (SIGKILL: no cleanup runs) at one of

- ``building``: as soon as its staging sibling holds a file;
- ``before_swap``: the result is complete in the staging sibling, not yet swapped in;
- ``after_swap``: swapped in, the replaced content not yet removed;

with an existing destination of the same kind (``--force``) or none. After the kill every
source is byte for byte as it was, and the destination is what it was (or absent) or the
complete, verified result. A rerun in-process then succeeds and leaves no staging sibling
and no lock beside the destination.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rldata
from rldata import stores
from rldata.stores.location.provable import RUN_MARKER
from rldata.testing import ted_batch
from tests.stores.location.test_destinations import TINY, _cli, leftovers, tree

ROOT = Path(__file__).resolve().parents[3]
POINTS = ("building", "before_swap", "after_swap")

_DRIVER = r"""
import os, signal, sys, threading, time
from pathlib import Path

point, parent, *argv = sys.argv[1:]
from rldata.stores.location import destination as d


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "before_swap":
    d.swap_in = lambda stage, root: die()
elif point == "after_swap":
    swap = d.swap_in

    def swap_then_die(stage, root):
        swap(stage, root)
        die()

    d.swap_in = swap_then_die
elif point == "building":
    def watch():
        while True:
            for p in Path(parent).iterdir():
                if ".rldata-staging-" in p.name and (p.is_file() or any(p.rglob("*"))):
                    die()
            time.sleep(0.001)

    threading.Thread(target=watch, daemon=True).start()
from rldata_cli.main import rldata

rldata.main(argv, prog_name="rldata")
"""


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kills") / "ds"
    env = rldata.envs.GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, path, frames=240)
    env.close()
    return path


@dataclass(frozen=True)
class Trial:
    name: str
    kind: str  # "store" | "run"
    argv: Callable[[Path, Path], list[object]]  # (source, destination) -> argv
    rows: int = 0  # rows of the finished store

    def __str__(self) -> str:
        return self.name


TRIALS = [
    Trial("merge", "store", lambda s, d: ["merge", s, s, "--out", d], rows=480),
    Trial("pull", "store", lambda s, d: ["pull", f"file://{s}", d], rows=240),
    Trial("push", "store", lambda s, d: ["push", s, f"file://{d}"], rows=240),
    Trial(
        "convert-zarr",
        "store",
        lambda s, d: ["convert", s, d, "--backend", "zarr", "--quiet"],
        rows=240,
    ),
    Trial("convert-memmap", "store", lambda s, d: ["convert", s, d, "--quiet"], rows=240),
    Trial(
        "collect",
        "store",
        lambda s, d: ["collect", "Pendulum-v1", "--frames", 30, "--out", d, "--quiet"],
        rows=30,
    ),
    Trial(
        "train",
        "run",
        lambda s, d: [
            "train",
            "--algo",
            "iql",
            "--dataset",
            s,
            "--steps",
            2,
            "--eval-every",
            2,
            "--out",
            d,
            *TINY,
        ],  # fmt: skip
    ),
]


def _old(trial: Trial, dest: Path, ds: Path) -> None:
    """An existing destination of the trial's kind, made by rldata."""
    if trial.kind == "store":
        with stores.create(dest, capacity=None) as w:
            w.append(ted_batch([7]))
    else:
        result = _cli(*trial.argv(ds, dest))
        assert result.exit_code == 0, result.output
        (dest / "summary.json").write_text(json.dumps({"old": True}))


def _finished(trial: Trial, dest: Path) -> bool:
    """Whether ``dest`` is the trial's complete, verified result."""
    if trial.kind == "store":
        with stores.open(dest) as s:
            assert stores.verify(s) == []
            return len(s) == trial.rows
    summary = json.loads((dest / "summary.json").read_text())
    return summary.get("updates") == 2 and (dest / RUN_MARKER).is_file()


def _kill(point: str, parent: Path, argv: list[object]) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, point, str(parent), *[str(a) for a in argv]],
        cwd=parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=300,
    )
    return proc.returncode


def _one_trial(tmp_path: Path, ds: Path, trial: Trial, point: str, existing: bool) -> None:
    src = tmp_path / "src"
    shutil.copytree(ds, src)
    parent = tmp_path / "out"
    parent.mkdir()
    dest = parent / "dest"
    if existing:
        _old(trial, dest, src)
    before_src, before_dest = tree(src), tree(dest) if dest.exists() else None
    argv = trial.argv(src, dest) + (["--force"] if existing else [])
    assert _kill(point, parent, argv) == -signal.SIGKILL
    assert tree(src) == before_src  # the source is untouched
    if point == "after_swap":
        assert _finished(trial, dest)  # swapped in: the complete, verified result
    elif existing:
        assert tree(dest) == before_dest  # not swapped in: exactly what was there
    else:
        assert not dest.exists()  # not swapped in: nothing at the destination
    rerun = trial.argv(src, dest) + (["--force"] if dest.exists() else [])
    result = _cli(*rerun)
    assert result.exit_code == 0, result.output
    assert _finished(trial, dest)
    assert leftovers(parent) == []  # the killed run's staging sibling is gone
    assert tree(src) == before_src


def _params(trials: list[Trial], points: tuple[str, ...], existing: tuple[bool, ...]) -> list[Any]:
    """Every trial x point x (replacing, new); a new run directory and a new collect store
    are written in place (a kill leaves their commits, continued with --resume), so only
    their --force form is staged."""
    return [
        pytest.param(t, p, e, id=f"{t}-{p}-{'force' if e else 'new'}")
        for t in trials
        for p in points
        for e in existing
        if e or t.name not in ("train", "collect")
    ]


FAST = [("merge", "building", False)]  # the rest: the slow sweep below


@pytest.mark.parametrize(
    ("trial", "point", "existing"),
    [
        pytest.param(t, p, e, id=f"{t}-{p}-{'force' if e else 'new'}")
        for t in TRIALS
        for (name, p, e) in FAST
        if t.name == name
    ],
)
def test_kill_leaves_the_destination_absent_or_complete(tmp_path, ds, trial, point, existing):
    _one_trial(tmp_path, ds, trial, point, existing)


@pytest.mark.slow
@pytest.mark.parametrize(("trial", "point", "existing"), _params(TRIALS, POINTS, (True, False)))
def test_kill_sweep(tmp_path, ds, trial, point, existing):
    _one_trial(tmp_path, ds, trial, point, existing)
