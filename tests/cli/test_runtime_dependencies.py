"""Every command with the runtime dependencies only (``pip install rldata``, no extra).

The development environment has every extra installed, so a module-level import of an
optional library on a common path passes every other test; a user's plain install then
fails (``rldata collect`` and a memmap-to-memmap ``convert`` both said "HDF5 files
(Minari, D4RL) need 'h5py'"). Here one child process blocks each extra's import (as if it
were not installed) and runs each command of a table in turn: a command that needs no
extra works; one that needs an extra exits non-zero with one line naming what to install,
and writes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = [
    "h5py",
    "zarr",
    "pyarrow",
    "matplotlib",
    "pygame",
    "ray",
    "s3fs",
    "minari",
    "jax",
    "duckdb",
    "mujoco",
    "imageio",
    "pandas",
    "polars",
    "torchrl",
]
TRAIN = ["--hidden", "8,8", "--batch-size", "8", "--eval-episodes", "1", "--quiet"]

# name: (argv, expected exit code, what a non-zero exit must name, path that must not appear)
NEEDS_NOTHING: dict[str, tuple[list[str], int]] = {
    "collect": (["collect", "Pendulum-v1", "--frames", "40", "--out", "a", "--seed", "0"], 0),
    "collect discrete": (["collect", "CartPole-v1", "--frames", "40", "--out", "c"], 0),
    "collect b": (["collect", "Pendulum-v1", "--frames", "40", "--out", "b", "--seed", "1"], 0),
    "info": (["info", "a"], 0),
    "verify": (["verify", "a"], 0),
    "diff": (["diff", "a", "b"], 1),
    "merge": (["merge", "a", "b", "--out", "m"], 0),
    "convert memmap": (["convert", "a", "conv"], 0),
    "push": (["push", "a", "file://{d}/remote"], 0),
    "pull": (["pull", "file://{d}/remote", "pulled"], 0),
    "train": (
        [
            "train",
            "--algo",
            "iql",
            "--dataset",
            "a",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--out",
            "run",
            *TRAIN,
        ],
        0,
    ),  # fmt: skip
    "eval": (["eval", "run", "--episodes", "1"], 0),
}
NEEDS_AN_EXTRA: dict[str, tuple[list[str], str, str]] = {
    "report": (["report", "a", "--out", "r.html"], "rldata[report]", "r.html"),
    "plot": (["plot", "run", "--out", "c.png"], "matplotlib", "c.png"),
    "convert zarr": (["convert", "a", "z", "--backend", "zarr"], "rldata[zarr]", "z"),
    "convert parquet": (["convert", "a", "p", "--backend", "parquet"], "rldata[parquet]", "p"),
    "collect zarr": (
        ["collect", "Pendulum-v1", "--frames", "8", "--out", "cz", "--backend", "zarr"],
        "rldata[zarr]",
        "cz",
    ),
    "convert to minari": (["convert", "a", "minari:rldata/p-v0"], "rldata[hdf5]", "minari"),
    "collect pixels": (
        ["collect", "CartPole-v1", "--frames", "8", "--out", "px", "--from-pixels"],
        "rldata[pixels]",
        "px",
    ),
}

CHILD = textwrap.dedent(
    """
    import importlib.machinery, json, sys
    from click.testing import CliRunner

    class NotInstalled(importlib.machinery.PathFinder):
        # the path finder, blind to the extras: as if they were not installed

        @classmethod
        def find_spec(cls, name, path=None, target=None):
            if name.split(".")[0] in EXTRAS:
                return None
            return super().find_spec(name, path, target)

    i = sys.meta_path.index(importlib.machinery.PathFinder)
    sys.meta_path[i] = NotInstalled
    from rldata_cli.main import rldata

    results = {}
    for name, argv in CASES:
        r = CliRunner().invoke(rldata, argv)
        results[name] = {
            "code": r.exit_code,
            "output": r.output,
            "exception": None if isinstance(r.exception, SystemExit) or r.exception is None
            else f"{type(r.exception).__name__}: {r.exception}",
        }
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS)
    print(json.dumps({"results": results, "leaked": leaked}))
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Every case, in table order, in one child process with every extra blocked."""
    d = tmp_path_factory.mktemp("runtime_only")
    cases = [
        (name, [a.format(d=d) for a in argv])
        for name, argv in [
            *((n, v[0]) for n, v in NEEDS_NOTHING.items()),
            *((n, v[0]) for n, v in NEEDS_AN_EXTRA.items()),
        ]
    ]
    code = f"EXTRAS = {EXTRAS!r}\nCASES = {cases!r}\n" + CHILD
    env = {**os.environ, "MINARI_DATASETS_PATH": str(d / "minari"), "RLDATA_CACHE": str(d / "c")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=d, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["leaked"] == [], out["leaked"]  # the block held: nothing optional was imported
    return d, out["results"]


@pytest.mark.parametrize("name", list(NEEDS_NOTHING))
def test_a_command_that_needs_no_extra_works_with_none_installed(
    name: str, runs: tuple[Path, dict]
) -> None:
    r = runs[1][name]
    assert r["exception"] is None, r
    assert r["code"] == NEEDS_NOTHING[name][1], r["output"]


@pytest.mark.parametrize("name", list(NEEDS_AN_EXTRA))
def test_a_command_that_needs_an_extra_names_it_in_one_line_and_writes_nothing(
    name: str, runs: tuple[Path, dict]
) -> None:
    d, results = runs
    r = results[name]
    _, install, written = NEEDS_AN_EXTRA[name]
    assert r["exception"] is None, r
    assert r["code"] != 0, r["output"]
    lines = r["output"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and install in lines[0], lines
    assert not (d / written).exists(), sorted(p.name for p in d.iterdir())
    assert not [p.name for p in d.iterdir() if "staging" in p.name]
