"""Backend registry, argument checks and path handling of create/open."""

from __future__ import annotations

import pytest

import rldata
import rldata.stores as stores
from rldata.errors import (
    ConfigError,
    MissingDependencyError,
    StoreError,
    UnknownBackendError,
)
from rldata.stores.backend import registry
from rldata.stores.location.places import local_dir


def test_backends_lists_memmap():
    assert "memmap" in stores.backends()


def test_unknown_backend_lists_the_valid_names(tmp_path):
    with pytest.raises(UnknownBackendError, match=r"'feather'.*\['memmap'"):
        stores.create(tmp_path / "s", backend="feather")
    assert not (tmp_path / "s").exists()  # nothing created for a refused call


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        registry._BACKENDS, "fake", registry.BackendEntry("tests_fake_pkg_zz.mod", "X", "fake")
    )

    def boom(name):
        raise ModuleNotFoundError("No module named 'fakelib'", name="fakelib")

    monkeypatch.setattr(registry.importlib, "import_module", boom)
    with pytest.raises(MissingDependencyError, match=r"fakelib.*rldata\[fake\]"):
        registry.load("fake")


BAD_ARGS = [
    ("capacity zero", {"capacity": 0}, "capacity"),
    ("capacity float", {"capacity": 2.5}, "capacity"),
    ("commit_every negative", {"commit_every": -1}, "commit_every"),
]


@pytest.mark.parametrize("name,kwargs,word", BAD_ARGS, ids=[b[0] for b in BAD_ARGS])
def test_bad_create_arguments(tmp_path, name, kwargs, word):
    with pytest.raises(ConfigError, match=word):
        stores.create(tmp_path / "s", **kwargs)


def test_bad_open_mode(tmp_path):
    stores.create(tmp_path / "s").close()
    with pytest.raises(ConfigError, match="'w'"):
        stores.open(tmp_path / "s", mode="w")


def test_paths_and_file_urls_name_the_same_store(tmp_path):
    assert local_dir(f"file://{tmp_path}/s") == local_dir(tmp_path / "s")
    with pytest.raises(StoreError, match="s3"):
        local_dir("s3://bucket/ds")


def test_top_level_entry_points(tmp_path):
    with rldata.create(tmp_path / "s") as w:
        assert w.writable
    assert rldata.open(tmp_path / "s").backend == "memmap"
