"""Memmap stores keep each observation once: bytes saved, ``next`` rebuilt bit for bit."""

from __future__ import annotations

import pytest
import torch

import rldata
import rldata.stores as stores
import rldata.stores.backend._memmap as mm
from rldata import api
from rldata.errors import CorruptStoreError
from rldata.testing import tamper
from rldata.testing.store_contract import assert_rows_equal
from rldata.testing.ted_factory import ted_batch

PIX = (3, 8, 8)


def _pixels(lengths, start_traj_id=0, seed=0):
    td = ted_batch(lengths, obs_shape=PIX, obs_dtype=torch.uint8, start_traj_id=start_traj_id)
    g = torch.Generator().manual_seed(seed)
    # distinct random frames that still chain: next.obs[t] == obs[t + 1] within a trajectory
    frames = torch.randint(0, 256, (td.shape[0] + len(lengths), *PIX), generator=g)
    obs, nxt, i = [], [], 0
    for n in lengths:
        obs.append(frames[i : i + n])
        nxt.append(frames[i + 1 : i + n + 1])
        i += n + 1
    td["observation"] = torch.cat(obs).to(torch.uint8)
    td["next", "observation"] = torch.cat(nxt).to(torch.uint8)
    return td


def _files(root):
    return {k: root / v for k, v in stores.open(root).manifest["payload"]["files"].items()}


def test_next_observation_takes_only_the_explicit_rows(tmp_path):
    data = _pixels([50, 30, 20])
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    m = stores.open(tmp_path / "s").manifest["payload"]
    assert m["next_stored_once"] == ["observation"]
    assert m["next_once_rows"] == {"observation": 3}  # one final next-observation per episode
    files = _files(tmp_path / "s")
    row = 3 * 8 * 8
    assert files["observation"].stat().st_size >= 100 * row
    assert files["next.observation"].stat().st_size == 3 * (8 + row)
    assert files["next.observation"].name == "observation.once.memmap"


@pytest.mark.parametrize(
    "name, pieces",
    [
        ("one append", [100]),
        ("row by row", [1] * 100),
        ("appends cut episodes", [7, 33, 1, 59]),
    ],
)
@pytest.mark.parametrize("commit_each", [False, True], ids=["one commit", "commit each"])
def test_rows_read_back_bit_for_bit(tmp_path, name, pieces, commit_each):
    data = _pixels([50, 30, 20])
    w = stores.create(tmp_path / "s")
    at = 0
    for n in pieces:
        w.append(data[at : at + n])
        at += n
        assert_rows_equal(w.get(torch.arange(at)), data[:at])  # the writer reads its own rows
        assert_rows_equal(w.get(slice(at // 2, at)), data[at // 2 : at])  # copied as slices
        if commit_each:
            w.commit()
    w.close()
    r = stores.open(tmp_path / "s")
    assert_rows_equal(r.get(torch.arange(100)), data)
    assert_rows_equal(r.get(slice(3, 97)), data[3:97])
    perm = torch.randperm(100)
    assert_rows_equal(r.get(perm), data[perm])
    assert stores.verify(r) == []
    explicit = r.manifest["payload"]["next_once_rows"]["observation"]
    assert explicit <= 3 + (len(pieces) if commit_each else 0)  # one per episode and commit


def test_a_chain_broken_inside_a_trajectory_is_stored_explicitly(tmp_path):
    data = _pixels([40])
    data["next", "observation"][10] = 7  # not row 11's observation
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    r = stores.open(tmp_path / "s", verify=False)
    assert r.manifest["payload"]["next_once_rows"] == {"observation": 2}
    assert_rows_equal(r.get(torch.arange(40)), data)
    faults = stores.verify(r, checksums=False)  # the broken TED link is still named
    assert len(faults) == 1 and "row 10" in faults[0]


def test_reopen_for_append_continues_the_chain(tmp_path):
    data = _pixels([60, 40])
    with stores.create(tmp_path / "s") as w:
        w.append(data[:25])
    with stores.open(tmp_path / "s", mode="a") as w:
        w.append(data[25:])
    r = stores.open(tmp_path / "s")
    assert_rows_equal(r.get(torch.arange(100)), data)
    # row 24's next value was committed before row 25 existed: explicit, never rewritten
    assert r.manifest["payload"]["next_once_rows"] == {"observation": 3}


def test_a_reader_follows_the_writer(tmp_path):
    data = _pixels([30, 30])
    w = stores.create(tmp_path / "s")
    w.append(data[:10])
    w.commit()
    r = stores.open(tmp_path / "s")
    w.append(data[10:])  # row 9's next value is decided now, after the reader mapped it
    assert_rows_equal(r.get(torch.arange(10)), data[:10])
    w.commit()
    r.refresh()
    assert_rows_equal(r.get(torch.arange(60)), data)
    w.close()


def test_a_ring_keeps_both_copies(tmp_path):
    with stores.create(tmp_path / "s", capacity=64) as w:
        w.append(_pixels([50, 30]))
    m = stores.open(tmp_path / "s").manifest["payload"]
    assert m["next_stored_once"] == [] and m["next_once_rows"] == {}  # said in the manifest
    assert m["files"]["next.observation"] == "data/next/observation.memmap"


def test_a_flipped_byte_of_an_explicit_row_is_named(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(_pixels([20, 20]))
    f = _files(tmp_path / "s")["next.observation"]
    raw = bytearray(f.read_bytes())
    raw[8 + 5] ^= 0xFF  # inside the first explicit row, past its position
    f.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="next.observation"):
        stores.open(tmp_path / "s")


def test_a_truncated_explicit_file_is_refused(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(_pixels([20, 20]))
    f = _files(tmp_path / "s")["next.observation"]
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(CorruptStoreError, match="truncated"):
        stores.open(tmp_path / "s", verify=False)


def test_a_store_with_both_copies_still_opens(tmp_path, monkeypatch):
    """An append-only store keeping both copies (as in format 1.1) opens and reads as before."""
    data = _pixels([20, 20])
    monkeypatch.setattr(mm.MemmapStore, "next_stored_once", False)
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    monkeypatch.undo()
    r = stores.open(tmp_path / "s")
    assert r.manifest["payload"]["next_stored_once"] == []
    assert r.tensordict() is not None  # the zero-copy view of every key
    assert_rows_equal(r.get(torch.arange(40)), data)
    assert stores.verify(r) == []


def test_samples_and_conversion_are_exact(tmp_path):
    data = _pixels([50, 30, 20])
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    rb = rldata.load(tmp_path / "s")
    batch = rb.sample(64)
    assert batch.batch_size == (64,)
    for row in batch[:8].unbind(0):  # frames are distinct: find each row by its frame
        i = int((data["observation"] == row["observation"]).flatten(1).all(1).nonzero()[0])
        assert torch.equal(row["next", "observation"], data["next", "observation"][i])
    api.convert(tmp_path / "s", tmp_path / "z", backend="zarr")
    api.convert(tmp_path / "z", tmp_path / "back", backend="memmap")
    back = stores.open(tmp_path / "back")
    assert_rows_equal(back.get(torch.arange(100)), data)
    assert back.manifest["payload"]["next_once_rows"] == {"observation": 3}


@pytest.mark.parametrize(
    "name, change, words",
    [
        (
            "more explicit rows than the file",
            lambda p: p.update(next_once_rows={"observation": 30}),
            "truncated",
        ),
        (
            "a count that is not an int",
            lambda p: p.update(next_once_rows={"observation": "3"}),
            "next_once_rows",
        ),
        (
            "a key that is not an observation",
            lambda p: p.update(next_stored_once=["action"]),
            "next_stored_once",
        ),
        ("counts for other keys", lambda p: p.update(next_once_rows={}), "next_once_rows"),
    ],
)
def test_a_manifest_that_lies_about_explicit_rows_is_refused(tmp_path, name, change, words):
    with stores.create(tmp_path / "s") as w:
        w.append(_pixels([20, 20]))
    tamper.edit_manifest(tmp_path / "s", lambda m: change(m["payload"]))
    with pytest.raises(CorruptStoreError, match=words) as info:
        stores.open(tmp_path / "s", verify=False)
    assert "\n" not in str(info.value)


def test_explicit_positions_out_of_order_are_refused(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(_pixels([20, 20, 20]))
    f = _files(tmp_path / "s")["next.observation"]
    raw = bytearray(f.read_bytes())
    raw[0:8] = (50).to_bytes(8, "little")  # the first record now claims row 50, after row 39
    f.write_bytes(bytes(raw))
    with pytest.raises(CorruptStoreError, match="ascending"):
        stores.open(tmp_path / "s", verify=False)


def test_slice_sampling_reads_one_column_not_the_store(tmp_path, monkeypatch):
    from rldata.data import ReplayBuffer, SliceSampler, StoreStorage

    data = _pixels([50, 30, 20])
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    store = stores.open(tmp_path / "s")
    assert torch.equal(store.column("next.observation"), data["next", "observation"])
    assert torch.equal(store.column("collector.traj_ids"), data["collector", "traj_ids"])
    buffer = ReplayBuffer(storage=StoreStorage(store), sampler=SliceSampler(slice_len=5))
    read = store._read

    def small_reads_only(positions):
        assert positions.numel() <= 20, "the sampler read the whole store"
        return read(positions)

    monkeypatch.setattr(store, "_read", small_reads_only)
    batch = buffer.sample(20)
    ids = batch["collector", "traj_ids"].reshape(4, 5)
    assert (ids == ids[:, :1]).all()  # each slice inside one trajectory
    assert torch.equal(batch["next", "observation"][:4], batch["observation"][1:5])


def test_a_format_1_1_store_without_the_fields_still_opens(tmp_path, monkeypatch):
    data = _pixels([20, 20])
    monkeypatch.setattr(mm.MemmapStore, "next_stored_once", False)
    with stores.create(tmp_path / "s") as w:
        w.append(data)

    def as_1_1(m):
        m["format_version"] = "1.1.0"
        del m["payload"]["next_stored_once"], m["payload"]["next_once_rows"]

    tamper.edit_manifest(tmp_path / "s", as_1_1)
    r = stores.open(tmp_path / "s")
    assert r.manifest["format_version"] == "1.1.0"
    assert_rows_equal(r.get(torch.arange(40)), data)
    assert stores.verify(r) == []
