"""Small decode units (issue 19): a zarr store keeps one shard per checksum chunk, read one
inner chunk at a time by byte range; each stored object is checked against the manifest the
first time a read decodes it, and a damaged one is refused, never served."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _parquet, _zarr, _zarr_cache, rowstore
from rldata.testing.ted_factory import assert_same_bits, episode_lengths, ted_batch

ROWS = 700
CHUNK, INNER = 96, 16  # 6 inner chunks a shard; episodes cross both boundaries


def _write(path, backend: str, *, sharded: bool = True, seed: int = 0) -> None:
    """``ROWS`` rows in three commits, ``CHUNK``-row checksum chunks of ``INNER``-row units."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    mp.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)
    mp.setattr(_zarr, "SHARDED", sharded)
    mp.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # decode units: blosc shards, not raw ones
    try:
        lengths = episode_lengths(seed, ROWS, 60)
        third = len(lengths) // 3
        with stores.create(path, backend=backend) as w:
            traj = 0
            for part in (lengths[:third], lengths[third : 2 * third], lengths[2 * third :]):
                w.append(ted_batch(part, start_traj_id=traj, extra=True))
                traj += len(part)
                w.commit()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    for backend in ("memmap", "zarr"):
        _write(root / backend, backend)
    _write(root / "zarr-old", "zarr", sharded=False)
    _write_parquet(root / "parquet", 16)
    return root


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def test_new_zarr_stores_shard_each_checksum_chunk_into_inner_chunks(written):
    s = stores.open(written / "zarr")
    assert s._inner == INNER and s._unit == INNER and s.manifest["payload"]["inner_rows"] == INNER
    # one file per shard, not per inner chunk
    assert sorted(os.listdir(written / "zarr" / "data" / "observation" / "c")) == [
        str(c) for c in range(-(-ROWS // CHUNK))
    ]


@pytest.mark.parametrize("cache", ["whole store", "a few units"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=300))
def test_random_reads_across_inner_chunks_and_shards_equal_memmap(written, monkeypatch, cache, pos):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 1 << 30 if cache == "whole store" else 3000)
    ref = stores.open(written / "memmap", verify=False)
    s = stores.open(written / "zarr")
    index = torch.as_tensor(pos)
    assert_same_bits(s.get(index), ref.get(index))
    # next values stored once: every unit's last row may take the next unit's first
    edges = torch.arange(INNER - 1, ROWS, INNER)
    assert_same_bits(s.get(edges), ref.get(edges))


def test_a_store_written_before_sharding_opens_and_reads(written):
    ref = stores.open(written / "memmap", verify=False)
    s = stores.open(written / "zarr-old")
    assert s._inner is None and s._unit == CHUNK
    assert sorted(os.listdir(written / "zarr-old" / "data" / "observation" / "c")) == [
        str(c) for c in range(-(-ROWS // CHUNK))
    ]
    assert_same_bits(s.get(slice(0, ROWS)), ref.get(slice(0, ROWS)))
    assert stores.verify(s) == []


def test_objects_are_checked_when_first_read_not_at_open(written):
    s = stores.open(written / "zarr")
    assert s._objects.hashed == 0 and s.block_bytes_hashed == 0  # the open read no shard
    s.get(torch.tensor([5]))
    first = s.block_bytes_hashed
    # format 1.8: the row's block of each key is hashed, no shard whole
    assert s._objects.hashed == 0 and first > 0
    b = s.manifest["checksums"]["blocks"]["block_rows"]
    s.get(torch.tensor([6, 17, min(90, b - 1)]))  # the same block: not hashed again
    assert s.block_bytes_hashed == first


def _damaged(tmp_path, monkeypatch):
    """A sharded store whose observation shard of chunk 2 has one flipped byte in inner
    chunk 1 (rows [208, 224))."""
    _write(tmp_path / "s", "zarr")
    s = stores.open(tmp_path / "s", verify=False)
    path = s._object_file("observation", 2)
    with open(path, "rb") as f:
        data = f.read()
    lay = s._layouts["observation"]
    idx = np.frombuffer(data, "<u8", 2 * lay.count, len(data) - lay.index_bytes).reshape(-1, 2)
    off, size = (int(v) for v in idx[1])
    _flip(path, off + size // 2)
    s.close()
    return tmp_path / "s", path


def test_a_flipped_byte_in_an_inner_chunk_is_refused_on_the_first_read_touching_it(
    tmp_path, monkeypatch
):
    # the whole-shard check of a store before format 1.8 (1.8's blocks: test_zarr_blocks.py)
    monkeypatch.setattr(_zarr.ZarrStore, "block_digests", False)
    root, path = _damaged(tmp_path, monkeypatch)
    s = stores.open(root)  # the open does not hash shards
    ok = s.get(torch.tensor([0, 100, 500]))  # other shards serve
    assert ok.batch_size[0] == 3
    with pytest.raises(CorruptStoreError) as info:
        s.get(torch.tensor([3, 200]))  # row 200 lies in the damaged shard (not its inner chunk)
    msg = str(info.value)
    assert "\n" not in msg and path in msg and "observation" in msg and "[192, 288)" in msg
    with pytest.raises(CorruptStoreError):  # refused again: never served
        s.get(torch.tensor([210]))


def test_verify_finds_the_flipped_byte(tmp_path, monkeypatch):
    root, path = _damaged(tmp_path, monkeypatch)
    faults = stores.verify(stores.open(root, verify=False))
    assert faults and any(path in f or "observation" in f for f in faults)


def _write_parquet(path, group_rows: int) -> None:
    mp = pytest.MonkeyPatch()
    mp.setattr(_parquet, "_group_rows", lambda fields: group_rows)
    mp.setattr(_parquet, "plain_columns", lambda fields, once: None)  # compressed parts
    try:
        _write(path, "parquet")
    finally:
        mp.undo()


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=300))
def test_parquet_random_reads_across_row_groups_and_parts_equal_memmap(written, monkeypatch, pos):
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)
    monkeypatch.setenv("RLDATA_PARQUET_CACHE_BYTES", "3000")  # a few groups: the LRU
    ref = stores.open(written / "memmap", verify=False)
    s = stores.open(written / "parquet")
    index = torch.as_tensor(pos)
    assert_same_bits(s.get(index), ref.get(index))
    edges = torch.arange(15, ROWS, 16)  # each group's last row: next values stored once
    assert_same_bits(s.get(edges), ref.get(edges))


def test_a_flipped_byte_in_a_parquet_part_is_refused_on_the_first_read_touching_it(
    tmp_path, monkeypatch
):
    # a store without block digests (before 1.7): each part hashed whole on first read
    # (with them, only the block holding the byte is refused: test_parquet_blocks)
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", False)
    _write_parquet(tmp_path / "s", 16)
    parts = stores.open(tmp_path / "s").manifest["payload"]["parts"]
    second = parts[1]
    path = str(tmp_path / "s" / second["path"])
    _flip(path, os.path.getsize(path) // 3)  # inside a column chunk of the second part
    s = stores.open(tmp_path / "s")  # a verified open hashes no part
    assert s.hashed == 0
    s.get(torch.tensor([0, parts[2]["start"]]))  # the other parts serve
    a = second["start"]
    for _ in range(2):  # refused, and refused again: never served
        with pytest.raises(CorruptStoreError) as info:
            s.get(torch.tensor([a + 1]))
        msg = str(info.value)
        assert "\n" not in msg and path in msg and f"[{a}, {a + second['rows']})" in msg
    faults = stores.verify(stores.open(tmp_path / "s", verify=False))
    assert any(path in f for f in faults)


def test_a_new_parquet_row_group_decodes_alone(tmp_path, monkeypatch):
    # no group's last row is left for the next group to rebuild: one read a group (without
    # block digests, whose check reads every group of a block: test_parquet_blocks)
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", False)
    _write_parquet(tmp_path / "s", 16)
    reads: list[int] = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(
        pq.ParquetFile, "read_row_group", lambda f, g, **k: reads.append(g) or real(f, g, **k)
    )
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)
    monkeypatch.setenv("RLDATA_PARQUET_CACHE_BYTES", "3000")
    s = stores.open(tmp_path / "s")
    edges = torch.arange(15, ROWS, 16)  # each group's last row
    s.get(edges)
    assert len(reads) == len(edges)


def test_a_live_reader_reads_shards_a_writer_rewrote_since(tmp_path, monkeypatch):
    monkeypatch.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    monkeypatch.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 3000)  # a few units: the LRU
    w = stores.create(tmp_path / "s", backend="zarr")
    w.append(ted_batch([50, 60], start_traj_id=0, extra=True))
    w.commit()
    reader = stores.open(tmp_path / "s")
    first = reader.get(torch.arange(110))  # checks the shard of chunk 1 as it is now
    w.append(ted_batch([40, 30], start_traj_id=2, extra=True))  # rewrites chunk 1's shard
    w.commit()
    # before a refresh: the rewritten shard differs, its committed rows still pass
    assert_same_bits(reader.get(torch.arange(110)), first)
    assert reader.refresh()
    assert_same_bits(reader.get(torch.arange(180)), w.get(torch.arange(180)))
    w.close()
