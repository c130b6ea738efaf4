"""A destination the file system refuses by its name (over NAME_MAX): an RldataError.

The CLI turns such an OSError into one line (``rldata_cli._errors.environment_error``); the
Python API's destination check raises a :class:`~rldata.errors.RldataError`, as for its other
refusals of a destination, before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rldata
from rldata import api
from rldata.envs import GymEnv
from rldata.errors import RldataError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("long_names")
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    rldata.record(env, d / "store", frames=20)
    return d / "store"


@pytest.mark.parametrize("where", ["last", "middle"])
def test_convert_to_a_name_too_long_is_an_rldata_error(
    store: Path, tmp_path: Path, where: str
) -> None:
    long = "n" * 300
    dst = tmp_path / long if where == "last" else tmp_path / long / "x"
    with pytest.raises(RldataError, match="refuses this destination"):
        api.convert(store, dst)
    assert list(tmp_path.iterdir()) == []
