"""Zarr shards written by rldata's own encoder (issue 19): zarr-python reads them back row
for row, the manifest's SHA-256 of each shard is the file's, an appending writer's memory
does not grow with its rows, and a shard whose index names bytes it does not hold is
refused in one line before anything is allocated for them."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import torch
import zarr

import rldata
import rldata.stores as stores
from rldata.data import SliceSampler
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _zarr, _zarr_blocks, _zarr_cache, rowstore
from rldata.testing.tamper import vouch_for_zarr_shards_on_disk
from rldata.testing.ted_factory import marked_serial, ted_batch, ted_marked

CHUNK, INNER = 96, 16  # 6 inner chunks a shard


@pytest.fixture
def small_units(monkeypatch):
    monkeypatch.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    monkeypatch.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)


def _arrays(root) -> dict[str, np.ndarray]:
    """Every zarr array of a store, read by zarr-python itself."""
    group = zarr.open_group(store=str(root / "data"), mode="r")
    out = {}
    for path, arr in group.members(max_depth=None):
        if isinstance(arr, zarr.Array):
            out[path] = arr[:]
    return out


def test_zarr_python_reads_the_shards_rldata_encodes(tmp_path, small_units):
    lengths = [30, 1, 70, 45, 60, 9]  # 215 rows: the last shard partly filled
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_batch(lengths[:3], start_traj_id=0, extra=True))
        w.commit()
        w.append(ted_batch(lengths[3:], start_traj_id=3, extra=True))
    s = stores.open(tmp_path / "s")
    rows = s.get(s.readable()).flatten_keys(".")
    got = _arrays(tmp_path / "s")
    implied = got["_implied/observation"]
    assert implied.any() and not got["next/observation"][implied].any()  # not stored twice
    for key in rows.keys():  # noqa: SIM118 (iterating a TensorDict yields rows)
        want = rows[key].numpy()
        stored = got[key.replace(".", "/")]
        if key == "next.observation":
            stored = stored.copy()
            stored[implied] = got["observation"][1:][implied[:-1]]
        assert stored.shape == want.shape and np.array_equal(stored, want), key


def test_the_manifest_records_each_shards_sha256_as_written(tmp_path, small_units):
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 250))
    s = stores.open(tmp_path / "s")
    sums = s.manifest["payload"]["chunk_sha256"]
    assert len(sums) == 3
    for c, entry in enumerate(sums):
        for name, want in entry.items():
            path = s._object_file(name, c)
            if want is None:  # every inner chunk is the fill value: zarr stores no file either
                assert not os.path.exists(path)
            else:
                with open(path, "rb") as f:
                    assert hashlib.sha256(f.read()).hexdigest() == want, (name, c)
    assert s.stored_bytes_check() == ([], {0, 1, 2})
    assert not list((tmp_path / "s" / "data").rglob("*.partial"))


def test_an_appending_writer_keeps_a_bounded_number_of_chunks(tmp_path, small_units, monkeypatch):
    monkeypatch.setattr(_zarr_cache, "EAGER_BYTES", 0)  # decoded chunk by chunk from the start
    per_commit = 3 * CHUNK
    held = []
    with stores.create(tmp_path / "s", backend="zarr") as w:
        for a in range(0, 40 * CHUNK, 48):
            w.append(ted_marked(a, 48))
            held.append(len(w._lru))
            if (a + 48) % per_commit == 0:
                w.commit()
    assert max(held) <= per_commit // CHUNK + 4  # the uncommitted chunks, plus a few
    s = stores.open(tmp_path / "s")
    assert stores.verify(s) == []
    assert marked_serial(s.get(np.arange(40 * CHUNK))).tolist() == list(range(40 * CHUNK))


def _index_entry(path: str, j: int, offset: int, nbytes: int) -> None:
    """Overwrite inner chunk ``j``'s (offset, nbytes) in the index at the shard's end."""
    lay_count = CHUNK // INNER
    size = os.path.getsize(path)
    at = size - 4 - 16 * lay_count + 16 * j  # the index, then its crc32c
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(np.array([offset, nbytes], dtype="<u8").tobytes())


@pytest.mark.parametrize(
    "offset, nbytes",
    [
        (0, 1 << 40),  # a length far past the file
        (1 << 40, 8),  # an offset past the file
        (5, 2**64 - 4),  # offset + length wraps around 2**64
    ],
)
def test_a_shard_index_naming_bytes_past_the_shard_is_refused_in_one_line(
    tmp_path, small_units, monkeypatch, offset, nbytes
):
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 250))
    s = stores.open(tmp_path / "s")
    path = s._object_file("action", 1)
    s.close()
    _index_entry(path, 2, offset, nbytes)
    vouch_for_zarr_shards_on_disk(monkeypatch)  # a hostile store: the index itself must be checked
    s = stores.open(tmp_path / "s", verify=False)
    with pytest.raises(CorruptStoreError, match="shard index") as info:
        s.get(np.array([CHUNK + 2 * INNER + 1]))
    assert "\n" not in str(info.value) and path in str(info.value)


def test_a_blosc_header_declaring_another_size_is_refused_before_decoding(
    tmp_path, small_units, monkeypatch
):
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # blosc frames in every shard
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 250))
    s = stores.open(tmp_path / "s")
    path = s._object_file("observation", 0)
    s.close()
    with open(path, "r+b") as f:  # inner chunk 0 starts the shard: its decoded size
        f.seek(4)
        f.write(np.array([1 << 31], dtype="<u4").tobytes())
    vouch_for_zarr_shards_on_disk(monkeypatch)
    s = stores.open(tmp_path / "s", verify=False)
    with pytest.raises(CorruptStoreError, match="blosc header declares 2147483648 bytes") as info:
        s.get(np.array([3]))
    assert "\n" not in str(info.value) and path in str(info.value)


@pytest.mark.parametrize("cache_rows", [20, 100, 10_000])
def test_random_reads_through_unstored_shards_and_a_partial_shard_equal_the_rows(
    tmp_path, small_units, monkeypatch, cache_rows
):
    with stores.create(tmp_path / "s", backend="zarr") as w:  # flags all False: no files
        w.append(ted_marked(0, 250))
    s = stores.open(tmp_path / "s")
    assert not os.path.exists(s._object_file("terminated", 0))
    row = sum(stores.format.schema.row_bytes(e) for e in s.schema.values())
    s.close()
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", cache_rows * row)
    s = stores.open(tmp_path / "s")
    full = s.get(np.arange(250))
    rng = np.random.default_rng(1)
    for _ in range(20):
        pos = rng.integers(0, 250, 64)
        got = s.get(pos)
        assert marked_serial(got).tolist() == pos.tolist()
        assert (got == full[pos]).all()
    assert not s.get(np.arange(250))["terminated"].any()


def test_slice_batches_decode_only_the_inner_chunks_of_the_rows_they_return(
    tmp_path, small_units, monkeypatch
):
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # the decode path (raw: in place)
    with stores.create(tmp_path / "s", backend="zarr") as w:
        w.append(ted_marked(0, 20 * CHUNK, episode_length=37))
    row = sum(
        stores.format.schema.row_bytes(e) for e in stores.open(tmp_path / "s").schema.values()
    )
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 4 * CHUNK * row)  # a fifth of the store
    decoded: list[int] = []
    real = _zarr_cache.ZarrChunks._decode_unit

    def recording(self, u, names=None):
        decoded.append(u)
        return real(self, u, names)

    rb = rldata.load(tmp_path / "s", sampler=SliceSampler(slice_len=8), batch_size=64)
    monkeypatch.setattr(_zarr_cache.ZarrChunks, "_decode_unit", recording)
    for _ in range(10):
        decoded.clear()
        serials = marked_serial(rb.sample())
        windows = serials.view(-1, 8)
        assert (windows == windows[:, :1] + torch.arange(8)).all()  # whole slices
        # no unit decoded but those of the rows' blocks (each hashed before it is served),
        # or of the aligned groups of AHEAD blocks a sampler checks ahead
        b = rb.storage.store.manifest["checksums"]["blocks"]["block_rows"] * _zarr_blocks.AHEAD
        units = {
            u
            for s in (serials // b).tolist()
            for u in range(s * b // INNER, -(-(s + 1) * b // INNER))
        }
        assert set(decoded) <= units
        assert decoded  # a fifth of the store cached: batches do decode
