"""Every command on the smallest stores a user can hold: 0 rows (made by ``rldata.create``
and committed empty), 1 row and 2 rows (``collect --frames 1``), in every backend.

Found by a fresh probe: ``train --dataset`` of an empty store was ``KeyError('observation')``
(the observation statistics it normalizes by do not exist). The rule checked for each case:
exit 0 (1 for a ``diff`` that differs), or one ``Error`` line and a non-zero exit; never a
traceback; the store read is byte for byte as it was.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import rldata.stores as stores
from rldata_cli.main import rldata as cli

sys.path.insert(0, str(Path(__file__).parent))
from test_probe_families import tree_state  # noqa: E402

BACKENDS = ["memmap", "zarr", "parquet"]
SIZES = [0, 1, 2]
TRAIN = ["--hidden", "8,8", "--batch-size", "4", "--eval-episodes", "1", "--quiet"]


def invoke(*args: object) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    exc = None if isinstance(result.exception, (SystemExit, type(None))) else result.exception
    return result.exit_code, result.output, exc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], Path]:
    d = tmp_path_factory.mktemp("tiny")
    made = {}
    for backend in BACKENDS:
        empty = d / f"{backend}-0"
        with stores.create(empty, backend=backend, env_id="Pendulum-v1", durable=False) as w:
            w.commit()
        made[backend, 0] = empty
        for rows in (1, 2):
            path = d / f"{backend}-{rows}"
            code, out, exc = invoke(
                "collect", "Pendulum-v1", "--frames", rows, "--out", path,
                "--backend", backend, "--seed", 1, "--quiet",
            )  # fmt: skip
            assert code == 0 and exc is None, out
            made[backend, rows] = path
    made["other", 1] = made["memmap", 2]
    return made


COMMANDS: dict[str, Callable[[Path, Path, Path], list[object]]] = {
    "info": lambda s, o, d: ["info", s],
    "verify": lambda s, o, d: ["verify", s],
    "convert": lambda s, o, d: ["convert", s, d / "c", "--quiet"],
    "convert-parquet": lambda s, o, d: ["convert", s, d / "c", "--backend", "parquet", "--quiet"],
    "push": lambda s, o, d: ["push", s, f"file://{d / 'remote'}", "--quiet"],
    "diff-self": lambda s, o, d: ["diff", s, s],
    "diff-other": lambda s, o, d: ["diff", s, o],
    "merge": lambda s, o, d: ["merge", s, o, "--out", d / "m", "--quiet"],
    "merge-self": lambda s, o, d: ["merge", s, s, "--out", d / "m", "--quiet"],
    "report": lambda s, o, d: ["report", s, "--out", d / "r.html"],
    "train-offline": lambda s, o, d: [
        "train",
        "--algo",
        "iql",
        "--dataset",
        s,
        "--steps",
        2,
        "--out",
        d / "run",
        *TRAIN,
    ],  # fmt: skip
    "train-offline-to-online": lambda s, o, d: [
        "train",
        "--algo",
        "sac",
        "--dataset",
        s,
        "--env",
        "Pendulum-v1",
        "--frames",
        4,
        "--steps",
        2,
        "--out",
        d / "run",
        "--store",
        d / "st",
        *TRAIN,
    ],  # fmt: skip
}


def check(tiny: dict, tmp_path: Path, backend: str, rows: int, command: str) -> None:
    store = tiny[backend, rows]
    before = tree_state(store)
    code, out, exc = invoke(*COMMANDS[command](store, tiny["other", 1], tmp_path))
    assert exc is None, repr(exc)
    assert "Traceback" not in out, out
    assert tree_state(store) == before, "the store read was changed"
    if code == 0 or (command == "diff-other" and code == 1):
        return
    errors = [line for line in out.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, out


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("rows", SIZES)
def test_every_command_on_a_tiny_memmap_store(
    tiny: dict, tmp_path: Path, rows: int, command: str
) -> None:
    check(tiny, tmp_path, "memmap", rows, command)


def test_offline_training_on_an_empty_store_is_one_line_naming_it(
    tiny: dict, tmp_path: Path
) -> None:
    code, out, exc = invoke(
        *COMMANDS["train-offline"](tiny["memmap", 0], tiny["other", 1], tmp_path)
    )
    assert exc is None and code == 1, out
    assert "holds 0 rows" in out and str(tiny["memmap", 0]) in out
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("rows", SIZES)
@pytest.mark.parametrize("backend", ["zarr", "parquet"])
def test_every_command_on_a_tiny_store_of_each_backend(
    tiny: dict, tmp_path: Path, backend: str, rows: int, command: str
) -> None:
    check(tiny, tmp_path, backend, rows, command)
