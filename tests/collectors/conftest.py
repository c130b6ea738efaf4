"""Fixtures for collector tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs whose workers can import rldata and these tests' helpers; shut down after."""
    ray = pytest.importorskip("ray")
    here = str(Path(__file__).parent)
    path = os.pathsep.join([str(ROOT), here, os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()
