"""A store is untrusted input: what a manifest names stays inside, numbers stay in range,
a resumed writer checks what it builds on, and nothing planted in a payload passes verify."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import rldata.stores as stores
from rldata.errors import CorruptStoreError, StoreExistsError
from rldata.stores.location.destination import check_local
from rldata.stores.location.provable import stray_files
from rldata.stores.location.staging import exchange
from rldata.testing.tamper import edit_manifest, read_manifest, snapshot
from rldata.testing.ted_factory import ted_marked


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 30))
    return root


def _set_payload(key: str, rel: str):
    def change(m):
        m["payload"]["files"][key] = rel

    return change


ESCAPES = [
    ("dot-dot", "../outside.memmap"),
    ("absolute", "/tmp/rldata-absolute.memmap"),
    ("nested dot-dot", "data/../../outside.memmap"),
    ("empty", ""),
    ("backslash", "data\\action.memmap"),
]


@pytest.mark.parametrize("name,rel", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_a_payload_path_outside_the_store_is_refused_by_readers_and_writers(
    store, tmp_path, name, rel
):
    outside = tmp_path / "outside.memmap"
    outside.write_bytes((store / "data" / "action.memmap").read_bytes())  # an identical copy
    edit_manifest(store, _set_payload("action", rel))
    before = outside.read_bytes()
    with pytest.raises(CorruptStoreError, match="action"):
        stores.open(store)
    with pytest.raises(CorruptStoreError, match="action"):
        stores.open(store, mode="a")
    assert outside.read_bytes() == before  # --resume never wrote into it


def test_a_symlink_out_of_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "elsewhere.memmap"
    outside.write_bytes((store / "data" / "action.memmap").read_bytes())
    (store / "data" / "link.memmap").symlink_to(outside)
    edit_manifest(store, _set_payload("action", "data/link.memmap"))
    with pytest.raises(CorruptStoreError, match="outside the store"):
        stores.open(store)


def test_two_keys_naming_one_file_are_refused(store):
    edit_manifest(store, _set_payload("action", "data/next/reward.memmap"))
    with pytest.raises(CorruptStoreError, match="names a file twice|payload"):
        stores.open(store)


def _set(path: str, value):
    def change(m):
        node = m
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value

    return change


OUT_OF_RANGE = [
    ("length past written", "length", 31),
    ("negative written", "written", -1),
    ("capacity zero", "capacity", 0),
    ("capacity a string", "capacity", "10"),
    ("chunk rows zero", "checksums.chunk_rows", 0),
    ("negative shape", "schema.observation.shape", [-3]),
    ("absurd shape", "schema.observation.shape", [1 << 20, 1 << 20]),
    ("unknown dtype", "schema.observation.dtype", "object"),
    ("pickled dtype", "schema.observation.dtype", "O"),
    ("version not semver", "format_version", "1.x"),
    ("schema null with rows", "schema", None),
    ("checksum table dropped", "checksums.chunk_log", None),  # 1.6: chunks is {} beside it
    ("episode index path escapes", "episodes.path", "../episodes-00000001.json"),
    ("generation negative", "generation", -4),
    ("written a float", "written", 30.0),
    ("allow_nonfinite not bool", "allow_nonfinite", "yes"),
    ("checksum entry not hex", "checksums.chunks.action", [[30, "zz"]]),
]


@pytest.mark.parametrize("name,field,value", OUT_OF_RANGE, ids=[c[0] for c in OUT_OF_RANGE])
def test_every_number_and_name_is_range_checked(store, name, field, value):
    edit_manifest(store, _set(field, value))
    with pytest.raises(CorruptStoreError) as err:
        stores.open(store)
    top = field.split(".")[0]
    assert top in str(err.value) or field in str(err.value)
    assert "\n" not in str(err.value)


def test_a_flipped_manifest_byte_is_caught_by_its_own_checksum(store):
    path = store / "rldata.json"
    raw = bytearray(path.read_bytes())
    i = raw.index(b'"length":30') + len(b'"length":')
    raw[i] = ord("2")  # still valid JSON, still in range
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="checksum"):
        stores.open(store)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_resume_refuses_a_damaged_payload_and_leaves_it_as_it_was(store, damage):
    f = store / "data" / "observation.memmap"
    raw = bytearray(f.read_bytes())
    if damage == "truncate":
        raw = raw[:40]  # inside the committed rows (the file is preallocated past them)
    else:
        raw[5] ^= 0x10
    f.write_bytes(bytes(raw))
    before = snapshot(store)
    with pytest.raises(CorruptStoreError, match="observation"):
        stores.open(store, mode="a")
    assert snapshot(store) == before  # no zero fill, no re-hash
    with pytest.raises(CorruptStoreError):  # and readers refuse it too
        stores.open(store).get(slice(0, 30))


def test_readers_refuse_a_flipped_committed_byte_unless_told_not_to(store):
    f = store / "data" / "next" / "reward.memmap"
    raw = bytearray(f.read_bytes())
    raw[9] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="next.reward"):
        stores.open(store, verify="full")
    with stores.open(store) as r, pytest.raises(CorruptStoreError, match="next.reward"):
        r.get(slice(0, 30))  # block digests (format 1.4): refused on the read, never served
    assert len(stores.open(store, verify=False).get(slice(0, 30))) == 30  # the explicit opt-out


def test_a_deleted_episode_index_is_refused(store):
    (store / read_manifest(store)["episodes"]["path"]).unlink()
    with pytest.raises(CorruptStoreError, match="episode index"):
        stores.open(store)


def test_verify_refuses_a_planted_payload_entry(store):
    (store / "data" / "evil.pickle").write_bytes(b"\x80\x04cos\nsystem\n.")
    faults = stores.verify(stores.open(store, verify=False))
    assert any("data/evil.pickle" in f and "not listed" in f for f in faults)


def test_verify_refuses_a_meta_json_pointing_at_non_tensor_data(store):
    meta = store / "data" / "meta.json"
    m = json.loads(meta.read_text())
    m["planted"] = {"type": "NonTensorData", "_type": "pickle"}
    meta.write_text(json.dumps(m))
    faults = stores.verify(stores.open(store, verify=False))
    assert any("data/meta.json" in f for f in faults)


def test_verify_catches_a_consistent_lie_in_the_schema(tmp_path):
    import torch

    from rldata.specs import Bounded, Composite, Unbounded

    specs = Composite(
        {
            "observation": Unbounded(shape=(3,), dtype=torch.float64),
            "action": Bounded(low=-1.0, high=1.0, shape=(1,), dtype=torch.float32),
            ("next", "reward"): Unbounded(shape=(1,), dtype=torch.float32),
        }
    )
    root = tmp_path / "s"
    with stores.create(root, specs=specs) as w:
        w.append(ted_marked(0, 10))
    assert stores.verify(stores.open(root)) == []

    # int64 has float64's width: checksums still match, the schema now lies
    def lie(m):
        m["schema"]["observation"]["dtype"] = m["schema"]["next.observation"]["dtype"] = "int64"

    edit_manifest(root, lie)
    faults = stores.verify(stores.open(root, verify=False))
    assert any("observation" in f and "spec" in f for f in faults)


# --- replacing a store (--force) ---------------------------------------------------------------


def test_force_refuses_a_directory_that_only_holds_a_file_named_like_a_manifest(tmp_path):
    p = tmp_path / "p"
    p.mkdir()
    (p / "rldata.json").write_text("{}")
    (p / "code.py").write_text("keep")
    with pytest.raises(StoreExistsError, match="not provably an rldata store"):
        check_local(p, resume=False, force=True)
    assert (p / "code.py").read_text() == "keep"


def test_force_refuses_a_store_with_someone_elses_files_in_it(store):
    (store / "notes.txt").write_text("mine")
    (store / "data" / "extra.bin").write_bytes(b"x")
    assert stray_files(store) == ["data/extra.bin", "notes.txt"]
    with pytest.raises(StoreExistsError, match="notes.txt"):
        check_local(store, resume=False, force=True)


def test_a_clean_store_has_no_stray_files(store):
    assert stray_files(store) == []


def test_exchange_swaps_two_directories(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("from a")
    (b / "x").write_text("from b")
    exchange(a, b)
    assert (a / "x").read_text() == "from b" and (b / "x").read_text() == "from a"


def test_a_failed_forced_recording_leaves_the_old_store_as_it_was(store):
    from rldata.stores.location.destination import record_local

    before = snapshot(store)
    with pytest.raises(RuntimeError, match="boom"), record_local(store, force=True) as w:
        w.append(ted_marked(100, 5))
        raise RuntimeError("boom")
    assert snapshot(store) == before
    assert [p for p in os.listdir(store.parent) if "staging" in p] == []


def test_a_forced_recording_swaps_in_the_new_store_and_readers_keep_the_old_rows(store):
    from rldata.stores.location.destination import record_local

    reader = stores.open(store)
    old = reader.get(slice(0, 30)).clone()
    with record_local(store, force=True) as w:
        w.append(ted_marked(100, 5))
        assert len(stores.open(store)) == 30  # still the old store while recording
    assert len(stores.open(store)) == 5
    assert (reader.get(slice(0, 30)) == old).all()  # an open reader is not torn
    assert [p for p in os.listdir(store.parent) if "staging" in p] == []
