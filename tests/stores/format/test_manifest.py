"""The manifest: its fields, the format version rule, and how unreadable manifests fail."""

from __future__ import annotations

import json

import pytest

import rldata.stores as stores
from rldata.errors import CorruptStoreError, FormatVersionError, StoreNotFoundError
from rldata.stores.format import manifest as mf
from rldata.stores.format.commit import atomic_write
from rldata.testing.tamper import edit_manifest
from rldata.testing.ted_factory import ted_marked

REQUIRED_FIELDS = {
    "format",
    "format_version",
    "backend",
    "generation",
    "schema",
    "specs",
    "env",
    "capacity",
    "written",
    "length",
    "cursor",
    "max_traj_id",
    "commit_every",
    "allow_nonfinite",
    "payload",
    "checksums",
    "episodes",
    "provenance",
}

VERSIONS = [  # (found, accepted)
    ("1.0.0", True),
    ("1.7.3", True),  # newer minor: readable, unknown fields are ignored
    ("0.9.0", True),
    ("2.0.0", False),
    ("10.1.0", False),
]


@pytest.mark.parametrize("found,accepted", VERSIONS, ids=[v for v, _ in VERSIONS])
def test_format_major_version_rule(tmp_path, found, accepted):
    if accepted:
        mf.check_version(found, tmp_path)
    else:
        with pytest.raises(FormatVersionError, match=f"{found}.*upgrade rldata"):
            mf.check_version(found, tmp_path)


def test_malformed_version_is_corrupt(tmp_path):
    with pytest.raises(CorruptStoreError, match="MAJOR.MINOR.PATCH"):
        mf.check_version("one", tmp_path)


def test_manifest_lists_every_field(tmp_path):
    with stores.create(tmp_path / "s", capacity=20, env_id="Pendulum-v1") as w:
        w.append(ted_marked(0, 26))  # laps the ring; position 6 starts a checksum chunk
    m = json.loads((tmp_path / "s" / "rldata.json").read_text())
    assert set(m) >= REQUIRED_FIELDS
    assert (m["format"], m["format_version"], m["backend"]) == (
        "rldata",
        mf.FORMAT_VERSION,
        "memmap",
    )
    assert (m["capacity"], m["written"], m["length"], m["cursor"]) == (20, 26, 20, 6)
    assert m["env"] == {"id": "Pendulum-v1", "kwargs": {}}
    assert m["max_traj_id"] == 2
    assert set(m["checksums"]["chunks"]) == set(m["schema"]) == set(m["payload"]["files"])
    episodes = json.loads((tmp_path / "s" / m["episodes"]["path"]).read_text())
    assert episodes["traj_id"] == [0, 1, 2] and episodes["length"] == [4, 10, 6]


def test_newer_minor_fields_survive_a_writer(tmp_path):
    stores.create(tmp_path / "s").close()
    path = tmp_path / "s" / "rldata.json"
    edit_manifest(tmp_path / "s", format_version="1.4.0", future_field={"x": 1})
    with stores.open(tmp_path / "s", mode="a") as w:
        w.append(ted_marked(0, 3))
    assert json.loads(path.read_text())["future_field"] == {"x": 1}


UNREADABLE = [
    ("missing", None, StoreNotFoundError, "missing rldata.json"),
    ("not json", b"{oops", CorruptStoreError, "not valid JSON"),
    ("not rldata", b'{"format": "zarr"}', CorruptStoreError, "expected format 'rldata'"),
    ("a list", b"[1, 2]", CorruptStoreError, "expected format"),
]


@pytest.mark.parametrize("name,content,error,words", UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_unreadable_manifest(tmp_path, name, content, error, words):
    (tmp_path / "s").mkdir()
    if content is not None:
        (tmp_path / "s" / "rldata.json").write_bytes(content)
    with pytest.raises(error, match=words):
        stores.open(tmp_path / "s")


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_each_commit_bumps_the_generation(tmp_path):
    w = stores.create(tmp_path / "s")
    g0 = w.manifest["generation"]
    w.append(ted_marked(0, 3))
    w.commit()
    assert w.manifest["generation"] == g0 + 1
    w.close()
