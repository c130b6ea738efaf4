"""Blocks proven on this machine: a later handle of an unchanged local store starts with the
blocks an earlier one hashed, and any change to a payload file, the manifest or the record
itself leaves it checking every block again."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.stores as stores
from rldata import api
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _proofs
from rldata.testing.tamper import read_manifest
from rldata.testing.ted_factory import ted_transitions

ROWS = 3500  # three full blocks of 1,024 rows and a tail
SETTLE = 0.05  # seconds: the tests' stand-in for _proofs.SETTLED_NS


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLDATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RLDATA_PROOFS", raising=False)
    monkeypatch.setattr(_proofs, "SETTLED_NS", int(SETTLE * 1e9))
    return tmp_path / "cache" / "proofs"


@pytest.fixture
def store(tmp_path, cache):
    root = tmp_path / "s"
    with stores.create(root, durable=False) as w:
        w.append(ted_transitions(ROWS))
        w.commit()
    time.sleep(2 * SETTLE)  # the files settle: a record may be written
    return root


def _prove_all(root) -> None:
    with stores.open(root) as r:
        r.get(slice(0, ROWS))
        assert not r._unchecked


def _unchecked(root) -> int:
    with stores.open(root) as r:
        return r._unchecked


def test_a_second_handle_starts_with_the_blocks_the_first_proved(store):
    with stores.open(store) as r:
        r.get(torch.tensor([5, 1030]))
        assert r._checked.tolist() == [True, True, False, False]
    with stores.open(store) as r:  # the record is written every 5% of the blocks
        assert r._checked.tolist() == [True, True, False, False]


def test_a_full_verify_proves_every_block_for_the_next_handle(store):
    assert _unchecked(store) == 4
    assert api.verify(store) == []
    assert _unchecked(store) == 0


def test_a_proven_store_serves_the_same_rows(store):
    with stores.open(store) as r:
        before = r.get(slice(0, ROWS))
    _prove_all(store)
    with stores.open(store) as r:
        assert not r._unchecked
        assert (r.get(slice(0, ROWS)) == before).all()


def _flip_in_place(path) -> None:
    with open(path, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0x10]))


def _rewrite_same_bytes(path) -> None:
    path.write_bytes(path.read_bytes())


def _replace_with_copy(path) -> None:
    tmp = path.with_name(path.name + ".copy")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


def _restore_times(path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime as it was; ctime moves


def _chmod(path) -> None:
    path.chmod(0o644)


CHANGES = {
    "a byte flipped in place": _flip_in_place,
    "the same bytes written again": _rewrite_same_bytes,
    "the file replaced by a copy": _replace_with_copy,
    "mtime put back after a change": _restore_times,
    "its mode set": _chmod,
}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data())
def test_any_change_to_a_payload_file_voids_the_record(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("changed") / "s"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLDATA_CACHE", str(root.parent / "cache"))
        mp.setattr(_proofs, "SETTLED_NS", int(SETTLE * 1e9))
        with stores.create(root, durable=False) as w:
            w.append(ted_transitions(ROWS))
            w.commit()
        time.sleep(2 * SETTLE)
        _prove_all(root)
        assert _unchecked(root) == 0
        keys = read_manifest(root)["checksums"]["blocks"]["keys"]
        key = data.draw(hs.sampled_from(keys), label="key")
        change = data.draw(hs.sampled_from(sorted(CHANGES)), label="change")
        path = root / read_manifest(root)["payload"]["files"][key]
        CHANGES[change](path)
        assert _unchecked(root) == 4, f"{change} of {key} kept the proofs"


def test_a_byte_flipped_after_the_proof_is_refused_on_read(store):
    _prove_all(store)
    key = "action"
    _flip_in_place(store / read_manifest(store)["payload"]["files"][key])
    refused = pytest.raises(CorruptStoreError, match=r"key 'action' rows \[0, 1024\)")
    with stores.open(store) as r, refused:
        r.get(torch.tensor([0]))


def test_a_commit_starts_a_new_record(store):
    _prove_all(store)
    with stores.open(store, mode="a") as w:
        w.append(ted_transitions(100, start_traj_id=10_000))
        w.commit()
    assert _unchecked(store) == 4


def test_a_record_belongs_to_its_store_path(store, tmp_path):
    _prove_all(store)
    twin = tmp_path / "twin"
    shutil.copytree(store, twin, copy_function=os.link)  # same inodes, another path
    assert _unchecked(twin) == 4


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=hs.binary(max_size=2048), keep=hs.integers(0, 2000))
def test_a_damaged_record_is_ignored_never_trusted(store, cache, junk, keep):
    _prove_all(store)
    (record,) = cache.glob("*.bits")
    good = record.read_bytes()
    try:
        record.write_bytes(good[:keep] + junk)
        unchecked = _unchecked(store)
        assert unchecked == (0 if good[:keep] + junk == good else 4)
    finally:
        record.write_bytes(good)


def test_a_record_of_other_bytes_is_ignored(store, cache):
    _prove_all(store)
    (record,) = cache.glob("*.bits")
    data = record.read_bytes()
    record.write_bytes(data.replace(b'"shape": [4,', b'"shape": [5,'))
    assert _unchecked(store) == 4


def test_a_proofs_directory_others_can_write_is_not_used(store, cache):
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o777)
    _prove_all(store)
    assert not list(cache.glob("*.bits"))
    assert _unchecked(store) == 4


def test_records_can_be_turned_off(store, cache, monkeypatch):
    monkeypatch.setenv("RLDATA_PROOFS", "0")
    _prove_all(store)
    assert not cache.exists() or not list(cache.glob("*.bits"))
    assert _unchecked(store) == 4


def test_a_file_changed_moments_ago_gets_no_record(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(_proofs, "SETTLED_NS", 3600 * 10**9)
    root = tmp_path / "fresh"
    with stores.create(root, durable=False) as w:
        w.append(ted_transitions(ROWS))
        w.commit()
    _prove_all(root)
    assert not cache.exists() or not list(cache.glob("*.bits"))
