"""The zarr backend: the store contract, plus what only zarr promises."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import zarr

import rldata.stores as stores
from rldata.errors import MissingDependencyError
from rldata.stores.backend import _zarr, _zarr_cache
from rldata.testing.store_contract import StoreContract
from rldata.testing.ted_factory import marked_serial, ted_marked


class TestZarrContract(StoreContract):
    backend = "zarr"


def test_payload_is_a_zarr_group_chunked_along_rows(tmp_path):
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 40))
    s = stores.open(tmp_path / "s")
    data = str(tmp_path / "s" / "data")
    arr = zarr.open_array(store=data, path="next/observation", mode="r")
    assert arr.shape == (40, 3) and arr.shards[0] == s.chunk_rows  # a shard per checksum chunk
    # each observation stored once: next.observation holds only the rows that break the chain
    implied = zarr.open_array(store=data, path="_implied/observation", mode="r")[:]
    obs = zarr.open_array(store=data, path="observation", mode="r")[:]
    nxt = arr[:]
    assert s.manifest["payload"]["next_stored_once"] == ["observation"]
    want = s.get(s.readable())["next", "observation"].numpy()
    assert implied.tolist() == [*(want[:-1] == obs[1:]).all(1).tolist(), False]
    assert implied.sum() > 30 and not nxt[implied].any()  # implied rows are not stored
    nxt[implied] = obs[1:][implied[:-1]]
    assert np.array_equal(nxt, want)


def test_a_commit_lists_the_chunks_it_wrote(tmp_path, monkeypatch):
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)  # 10 rows a chunk
    w = stores.create(tmp_path / "s", backend="zarr")
    w.append(ted_marked(0, 25))
    w.commit()
    assert w.manifest["payload"]["chunks_written"] == [0, 1, 2]
    w.append(ted_marked(25, 3))
    w.commit()
    assert w.manifest["payload"]["chunks_written"] == [2]
    w.close()


def test_gathers_decode_each_chunk_once(tmp_path, monkeypatch):
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # decoded units (raw: read in place)
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 100))
    decoded = []
    real = _zarr.ZarrStore._decode
    monkeypatch.setattr(
        _zarr.ZarrStore, "_decode", lambda self, c: decoded.append(c) or real(self, c)
    )
    s = stores.open(tmp_path / "s", verify=False)
    rng = np.random.default_rng(0)
    for _ in range(30):
        pos = rng.integers(0, 100, 64)
        assert marked_serial(s.get(pos)).tolist() == pos.tolist()
    assert sorted(decoded) == list(range(10))  # ten chunks, each decoded once


def test_a_bounded_cache_keeps_few_chunks_and_reads_right(tmp_path, monkeypatch):
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # decoded units (raw: read in place)
    with stores.create(tmp_path / "s", backend="zarr", capacity=60) as w:
        w.append(ted_marked(0, 150))
    row = sum(
        stores.format.schema.row_bytes(e) for e in stores.open(tmp_path / "s").schema.values()
    )
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 3 * 10 * row)  # three chunks of rows
    s = stores.open(tmp_path / "s")
    assert s._dense is None and stores.verify(s) == []
    pos = s.readable()
    assert marked_serial(s.get(pos)).tolist() == list(range(150 - len(pos), 150))
    assert 0 < len(s._lru) * s.chunk_rows * row <= _zarr_cache.CACHE_BYTES  # bounded


@pytest.mark.parametrize("batch", [7, 10, 23])
def test_a_writer_grows_past_its_cache_and_keeps_every_row(tmp_path, monkeypatch, batch):
    """The dense cache turns into an LRU mid-write while the last chunk is partly filled
    (issue 19: the next write failed to broadcast into a short block)."""
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)
    probe = tmp_path / "probe"
    with stores.create(probe, backend="zarr") as w:
        w.append(ted_marked(0, 1))
    row = sum(stores.format.schema.row_bytes(e) for e in stores.open(probe).schema.values())
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 45 * row)  # dense until 45 rows, then chunks
    total = 0
    with stores.create(tmp_path / "s", backend="zarr") as w:
        for _ in range(200 // batch + 1):
            w.append(ted_marked(total, batch))
            total += batch
            if total % (3 * batch) == 0:
                w.commit()
        assert w._dense is None  # the cache did spill
    s = stores.open(tmp_path / "s")
    assert stores.verify(s) == []
    assert marked_serial(s.get(np.arange(total))).tolist() == list(range(total))


def test_a_missing_zarr_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "zarr", None)
    monkeypatch.delitem(sys.modules, "rldata.stores.backend._zarr", raising=False)
    with pytest.raises(MissingDependencyError, match=r"rldata\[zarr\]") as info:
        stores.backend.registry.load("zarr")
    assert "\n" not in str(info.value)


def test_a_ring_keeps_both_copies_and_says_so(tmp_path):
    with stores.create(tmp_path / "s", backend="zarr", capacity=16) as w:
        w.append(ted_marked(0, 40))
    assert stores.open(tmp_path / "s").manifest["payload"]["next_stored_once"] == []


def test_a_crash_between_arrays_and_masks_keeps_committed_rows(tmp_path, monkeypatch):
    w = stores.create(tmp_path / "s", backend="zarr")
    w.append(ted_marked(0, 15))
    w.commit()  # row 14's next value is stored: row 15 does not exist yet
    w.append(ted_marked(15, 10))
    real = _zarr.put_shard

    def dies_on_masks(path, data):  # as if the writer were killed before writing masks
        if "_implied" in path:
            raise RuntimeError("killed")
        return real(path, data)

    monkeypatch.setattr(_zarr, "put_shard", dies_on_masks)
    with pytest.raises(RuntimeError, match="killed"):
        w.commit()  # observations and next values written, masks not, no manifest
    w._lock.release()
    s = stores.open(tmp_path / "s")  # checksums of every committed row verified
    assert marked_serial(s.get(s.readable())).tolist() == list(range(15))
    assert stores.verify(s) == []


def test_compressed_inner_chunks_are_blosc_lz4_bit_shuffled_in_256_kib_blocks(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # numeric keys are raw by default
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 40))
    meta = json.loads((tmp_path / "s" / "data" / "observation" / "zarr.json").read_text())
    (shard,) = meta["codecs"]  # inner chunks, each compressed alone, in a shard per chunk
    inner = shard["configuration"]["codecs"]
    blosc = next(c for c in inner if c["name"] == "blosc")["configuration"]
    assert (blosc["cname"], blosc["clevel"], blosc["shuffle"], blosc["blocksize"]) == (
        "lz4",  # small inner chunks: lz4 decodes ~5x faster than blosc's zstd (issue 19)
        5,
        "bitshuffle",
        1 << 18,
    )
    assert stores.open(tmp_path / "s").manifest["payload"]["codec"]["shuffle"] == "bitshuffle"
