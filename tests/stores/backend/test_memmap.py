"""The memmap backend: the store contract, plus what only memmap promises."""

from __future__ import annotations

import os

import pytest
import torch
from tensordict import TensorDict

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend._memmap import MemmapStore
from rldata.testing.store_contract import StoreContract, assert_rows_equal
from rldata.testing.ted_factory import ted_batch, ted_marked


class TestMemmapContract(StoreContract):
    backend = "memmap"


@pytest.mark.parametrize("capacity", [None, 16], ids=["append-only", "ring"])
def test_payload_opens_with_tensordict_load_memmap(tmp_path, capacity):
    data = ted_batch([4, 4], extra=True)
    with stores.create(tmp_path / "s", capacity=capacity) as w:
        w.append(data)
    td = TensorDict.load_memmap(tmp_path / "s" / "data")
    assert td.batch_size == torch.Size([8])
    if capacity is None:  # each observation stored once: next.observation is rebuilt by rldata
        assert ("next", "observation") not in td.keys(True)
        data = data.exclude(("next", "observation"))
    assert_rows_equal(td, data)


def test_only_filled_rows_take_disk(tmp_path):
    with stores.create(tmp_path / "s", capacity=1_000_000) as w:
        w.append(ted_marked(0, 100, obs_dim=64))
    f = tmp_path / "s" / "data" / "observation.memmap"
    assert f.stat().st_size == 1_000_000 * 64 * 8  # preallocated, sparse
    assert f.stat().st_blocks * 512 < 1 << 20  # but only ~100 rows written


def test_verify_names_a_flipped_byte(tmp_path):
    with stores.create(tmp_path / "s") as w:
        w.append(ted_marked(0, 30))
    assert stores.verify(stores.open(tmp_path / "s")) == []
    f = tmp_path / "s" / "data" / "next" / "reward.memmap"
    raw = bytearray(f.read_bytes())
    raw[4 * 7] ^= 0xFF
    f.write_bytes(bytes(raw))
    fault = stores.first_fault(stores.open(tmp_path / "s", verify=False))
    assert fault is not None and "next.reward" in fault and "chunk 0" in fault
    with pytest.raises(CorruptStoreError, match="next.reward"):
        stores.open(tmp_path / "s").get(slice(0, 30))  # readers check before serving a row
    with pytest.raises(CorruptStoreError, match="next.reward"):
        stores.open(tmp_path / "s", verify="full")  # or every row at open


def test_verify_names_a_broken_ted_link(tmp_path):
    with stores.create(tmp_path / "s", capacity=64) as w:  # a ring keeps both copies
        w.append(ted_marked(0, 30))
    f = tmp_path / "s" / "data" / "next" / "observation.memmap"
    t = torch.from_file(str(f), shared=True, size=30 * 3, dtype=torch.float64).view(30, 3)
    t[12] = -1.0  # next obs of row 12 no longer equals obs of row 13 (same trajectory)
    del t
    faults = stores.verify(stores.open(tmp_path / "s", verify=False), checksums=False)
    assert len(faults) == 1 and "row 12" in faults[0] and "row 13" in faults[0]


def test_content_digest_ignores_layout(tmp_path):
    with stores.create(tmp_path / "a", capacity=10) as w:  # a ring that wrapped
        w.append(ted_marked(0, 25))
    with stores.create(tmp_path / "b") as w:  # the same rows, appended
        w.append(ted_marked(15, 10))
    ra, rb = stores.open(tmp_path / "a"), stores.open(tmp_path / "b")
    assert stores.content_digest(ra) == stores.content_digest(rb)
    assert stores.content_digest(ra).startswith("sha256:")


def test_append_only_files_only_grow(tmp_path):
    w = stores.create(tmp_path / "s")
    sizes = []
    for s in range(0, 5000, 1000):
        w.append(ted_marked(s, 1000))
        w.commit()
        sizes.append(os.path.getsize(tmp_path / "s" / "data" / "observation.memmap"))
    w.close()
    assert sizes == sorted(sizes)
    assert len(stores.open(tmp_path / "s")) == 5000


def test_commit_order_payload_fsynced_before_manifest_then_directory(tmp_path, monkeypatch):
    root = tmp_path / "s"
    w = stores.create(root)
    w.append(ted_marked(0, 5))
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    w.commit()
    monkeypatch.undo()
    w.close()
    names = [(kind, path.replace(str(root), "")) for kind, path in events]
    manifest_at = names.index(("rename", "/rldata.json"))
    payload = {p for k, p in names[:manifest_at] if k == "fsync" and p.endswith(".memmap")}
    assert payload == {"/" + f for f in w.manifest["payload"]["files"].values()}
    episodes = w.manifest["episodes"]["path"]
    assert episodes == "episodes.log"  # format 1.4: appended in place, fsynced first
    assert ("fsync", f"/{episodes}") in names[:manifest_at]
    assert ("fsync", "") in names[manifest_at + 1 :]  # the store directory, after the rename


def test_reader_follows_a_pruned_episode_index(tmp_path, monkeypatch):
    monkeypatch.setattr(MemmapStore, "block_digests", False)  # whole-index files (1.3, rings)
    w = stores.create(tmp_path / "s")
    w.append(ted_marked(0, 5))
    w.commit()
    r = stores.open(tmp_path / "s")
    for s in range(5, 20, 5):  # commits prune index files older than the previous one
        w.append(ted_marked(s, 5))
        w.commit()
    old = r.manifest["episodes"]["path"]
    assert not (tmp_path / "s" / old).exists()
    r._m["episodes"]["path"] = old  # as if the reader had just read the old manifest
    r._load_index()  # the file is gone: the reader moves on to the newer manifest
    assert len(r) == 20
    assert r.episodes()["length"].tolist() == [10, 10]
    w.close()


def test_a_reader_of_an_older_commit_reads_its_part_of_the_episode_log(tmp_path):
    w = stores.create(tmp_path / "s")
    w.append(ted_marked(0, 5))
    w.commit()
    r = stores.open(tmp_path / "s")
    for s in range(5, 20, 5):  # the log only grows: the reader's commit is still its prefix
        w.append(ted_marked(s, 5))
        w.commit()
    r._load_index()
    assert len(r) == 5 and r.episodes()["length"].tolist() == [5]
    assert r.refresh() and r.episodes()["length"].tolist() == [10, 10]
    w.close()
