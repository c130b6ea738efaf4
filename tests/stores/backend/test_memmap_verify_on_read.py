"""Memmap block digests (format 1.4): a verified open checks the store's files, and each
block of rows is checked when a read first touches it, before a byte of it is served."""

from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.stores as stores
from rldata import api
from rldata.errors import CorruptStoreError
from rldata.stores.backend._memmap import MemmapStore
from rldata.stores.format import manifest as mf
from rldata.stores.format import schema as sch
from rldata.testing.tamper import read_manifest
from rldata.testing.ted_factory import ted_transitions

ROWS, COMMIT = 3500, 700  # B is 1,024 for these small rows: three full blocks and a tail


def _write(root, rows: int = ROWS, **kwargs) -> None:
    with stores.create(root, durable=False, **kwargs) as w:
        for k in range(0, rows, COMMIT):
            w.append(ted_transitions(min(COMMIT, rows - k), start_traj_id=k))
            w.commit()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks") / "s"
    _write(root)
    return root


@pytest.fixture
def store(pristine, tmp_path):
    root = tmp_path / "s"
    shutil.copytree(pristine, root)
    return root


def _flip(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_new_append_only_store_lists_block_digests(store):
    blocks = read_manifest(store)["checksums"]["blocks"]
    assert blocks["block_rows"] == 1024 and blocks["blocks"] == ROWS // 1024
    assert blocks["tail"]["rows"] == ROWS % 1024
    assert "next.observation" not in blocks["keys"]  # stored once: rebuilt from observation


def test_a_read_checks_only_the_blocks_it_touches(store):
    with stores.open(store) as r:
        assert not r._checked.any()  # the open hashed no row
        r.get(torch.tensor([5, 1030]))  # block 0, block 1 (and the row after each)
        assert r._checked.tolist() == [True, True, False, False]
        r.get(slice(3400, 3500))  # the tail
        assert r._checked.tolist() == [True, True, False, True]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=hs.data())
def test_a_flipped_byte_is_refused_on_the_first_read_that_touches_it(store, data):
    m = read_manifest(store)
    keys = m["checksums"]["blocks"]["keys"]
    key = data.draw(hs.sampled_from(keys), label="key")
    row_bytes = sch.row_bytes(m["schema"][key])
    at = data.draw(hs.integers(0, ROWS * row_bytes - 1), label="byte")
    row, block = at // row_bytes, at // row_bytes // 1024
    path = store / m["payload"]["files"][key]
    _flip(path, at)
    try:
        with stores.open(store) as r:  # the open does not hash rows: it succeeds
            other = (block + 2) % 4  # a block away from the flipped one and its neighbour
            lo = other * 1024
            assert len(r.get(slice(lo, min(ROWS, lo + 1023)))) > 0  # untouched blocks serve
            for _ in range(2):  # refused every time, never served
                with pytest.raises(CorruptStoreError) as err:
                    r.get(torch.tensor([row]))
                msg = str(err.value)
                assert "\n" not in msg and repr(key) in msg and m["payload"]["files"][key] in msg
                assert f"rows [{block * 1024}, " in msg
        faults = api.verify(str(store))  # the full check finds it too
        assert any(repr(key) in f for f in faults), faults
    finally:
        _flip(path, at)  # the next example starts from a sound store


def test_a_stored_once_next_row_checks_the_block_it_is_rebuilt_from(store):
    m = read_manifest(store)
    row_bytes = sch.row_bytes(m["schema"]["observation"])
    _flip(store / m["payload"]["files"]["observation"], 1024 * row_bytes)  # row 1024: block 1
    with stores.open(store) as r:
        r.get(torch.tensor([1022]))  # next.observation of 1022 is observation of 1023: block 0
        with pytest.raises(CorruptStoreError, match="'observation' rows \\[1024, 2048\\)"):
            r.get(torch.tensor([1023]))  # its next.observation is row 1024's observation


@pytest.mark.parametrize("what", ["sidecar", "episodes", "records"])
def test_a_tampered_digest_episode_or_records_file_is_refused_at_open(store, what):
    m = read_manifest(store)
    path = {
        "sidecar": store / m["checksums"]["blocks"]["path"],
        "episodes": store / m["episodes"]["path"],
        "records": store / m["payload"]["files"]["next.observation"],
    }[what]
    _flip(path, 10)
    with pytest.raises(CorruptStoreError, match="sha256 does not match") as err:
        stores.open(store)
    assert "\n" not in str(err.value)
    if what != "episodes":  # (any handle refuses a tampered episode index)
        assert api.verify(str(store))


def test_a_truncated_sidecar_is_refused_at_open(store):
    path = store / read_manifest(store)["checksums"]["blocks"]["path"]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CorruptStoreError, match="truncated"):
        stores.open(store)


def test_a_crash_between_payload_and_manifest_leaves_the_old_commit(store, monkeypatch):
    before = read_manifest(store)
    w = stores.open(store, mode="a", durable=False)
    w.append(ted_transitions(2600, start_traj_id=10_000))  # fills two more blocks

    def crash(*args, **kwargs):
        raise OSError(5, "simulated crash before the manifest")

    monkeypatch.setattr(mf, "write", crash)
    with pytest.raises(Exception, match="simulated crash"):
        w.commit()
    w._lock.release()
    monkeypatch.undo()
    assert read_manifest(store)["checksums"] == before["checksums"]
    with stores.open(store) as r:  # the sidecar holds uncommitted digests past the old ones
        assert len(r) == ROWS
        assert len(r.get(slice(0, ROWS))) == ROWS
    assert api.verify(str(store)) == []
    with stores.open(store, mode="a", durable=False) as w2:  # the next writer overwrites them
        w2.append(ted_transitions(1000, start_traj_id=20_000))
    with stores.open(store) as r:
        assert len(r.get(slice(0, ROWS + 1000))) == ROWS + 1000
    assert api.verify(str(store)) == []


def test_a_reader_checks_the_blocks_of_a_new_commit(store):
    r = stores.open(store)
    r.get(slice(0, 1024))
    with stores.open(store, mode="a", durable=False) as w:
        w.append(ted_transitions(1500, start_traj_id=30_000))
    assert r.refresh()
    assert r._checked[0] and not r._checked[3:].any()  # a full block stays checked
    m = read_manifest(store)
    row_bytes = sch.row_bytes(m["schema"]["action"])
    _flip(store / m["payload"]["files"]["action"], 4100 * row_bytes)
    with pytest.raises(CorruptStoreError, match="'action' rows \\[4096, 5000\\)"):
        r.get(torch.tensor([4100]))
    r.close()


def test_a_ring_keeps_no_digests_and_is_checked_whole_at_open(tmp_path):
    root = tmp_path / "ring"
    _write(root, capacity=1000)  # wraps three times
    m = read_manifest(root)
    assert m["checksums"].get("blocks") is None
    with stores.open(root) as r:
        assert len(r.get(r.readable())) == len(r)
    _flip(root / m["payload"]["files"]["action"], 4 * 500)
    with pytest.raises(CorruptStoreError, match="cannot open a corrupted store"):
        stores.open(root)


def test_a_store_without_digests_still_opens_and_is_checked_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(MemmapStore, "block_digests", False)  # written as format 1.3 did
    root = tmp_path / "old"
    _write(root)
    monkeypatch.undo()
    m = read_manifest(root)
    assert m["checksums"].get("blocks") is None
    with stores.open(root) as r:
        assert len(r.get(slice(0, ROWS))) == ROWS
    with stores.open(root, mode="a", durable=False) as w:  # resumed: stays without digests
        w.append(ted_transitions(100, start_traj_id=50_000))
    assert read_manifest(root)["checksums"].get("blocks") is None
    _flip(root / m["payload"]["files"]["action"], 4 * 2000)
    with pytest.raises(CorruptStoreError, match="cannot open a corrupted store"):
        stores.open(root)
    assert api.verify(str(root))


def test_a_clean_full_check_spares_later_reads_the_block_hashes(store):
    with stores.open(store) as r:
        assert stores.verify(r) == []
        assert r._checked.all()


def _segments_after(root, appends, **kwargs):
    with stores.create(root, durable=False, **kwargs) as w:
        for n, traj in appends:
            w.append(ted_transitions(n, start_traj_id=traj))
            w.commit()
    with stores.open(root) as r:
        return r.segments(), r.episodes(), read_manifest(root)["episodes"]


def test_commits_append_to_one_episode_log_that_reads_as_the_whole_index(tmp_path, monkeypatch):
    # a trajectory cut by a commit (705 rows of 10-row episodes) continues in the next one
    appends = [(705, 0), (5, 70), (1000, 71), (3, 200)]
    seg, eps, ref = _segments_after(tmp_path / "new", appends)
    monkeypatch.setattr(MemmapStore, "block_digests", False)
    seg_old, eps_old, ref_old = _segments_after(tmp_path / "old", appends)
    assert ref["path"] == "episodes.log" and ref_old["path"].startswith("episodes-")
    assert (seg == seg_old).all() and (eps == eps_old).all()
    assert ref["segments"] == ref_old["segments"] == len(seg)


def test_a_commit_appends_its_segments_and_never_rewrites_the_log(store):
    log = store / "episodes.log"
    before = log.read_bytes()
    with stores.open(store, mode="a", durable=False) as w:
        w.append(ted_transitions(20, start_traj_id=90_000))
    after = log.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1
    assert read_manifest(store)["episodes"]["bytes"] == len(after)
    with stores.open(store) as r:
        assert len(r.episodes()) == ROWS // 10 + 2


def test_a_column_checks_that_keys_blocks_only(store):
    m = read_manifest(store)
    row_bytes = sch.row_bytes(m["schema"]["observation"])
    _flip(store / m["payload"]["files"]["observation"], 5 * row_bytes)
    with stores.open(store) as r:
        ids = r.column("collector.traj_ids")  # a sampler's index math: 8 bytes a row
        assert len(ids) == ROWS
        j = r._lazy.keys.index("collector.traj_ids")
        assert r._key_checked[:, j].all() and not r._checked.any()
        with pytest.raises(CorruptStoreError, match="'observation' rows \\[0, 1024\\)"):
            r.column("next.observation")  # rebuilt from observation: its blocks are checked
