"""Zarr shards of uncompressed inner chunks read in place (issue 19): new stores keep every
key but uint8 ones as raw bytes inside the sharding codec, zarr-python still reads them, a
sample copies its rows out of the checked shard and gets exactly what the decode path of a
blosc store gives, and a tampered or cut shard is refused in one line naming it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rldata.stores as stores
from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.backend import _zarr, _zarr_cache, _zarr_plain, _zarr_shards, rowstore
from rldata.testing.tamper import vouch_for_zarr_shards_on_disk
from rldata.testing.ted_factory import assert_same_bits, episode_lengths, ted_batch

CHUNK, INNER = 96, 16  # 6 inner chunks a shard; episodes cross both boundaries
ROWS = 500
DTYPES = [torch.float32, torch.float64, torch.int64, torch.int32, torch.bool]
SMALL_CACHE = 3000  # bytes: a few units, so reads leave the decoded cache


def _write(path, compression: str, *, capacity=None, **episode) -> None:
    """``ROWS`` rows in three commits (a ring of ``capacity`` wraps), small units."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    mp.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)
    mp.setenv("RLDATA_ZARR_COMPRESSION", compression)
    try:
        lengths = episode_lengths(len(path.name.rsplit("-", 1)[0]), ROWS, 50)
        third = len(lengths) // 3
        with stores.create(path, backend="zarr", capacity=capacity) as w:
            traj = 0
            for part in (lengths[:third], lengths[third : 2 * third], lengths[2 * third :]):
                w.append(ted_batch(part, start_traj_id=traj, extra=True, **episode))
                traj += len(part)
                w.commit()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """For each dtype (of observation and action alike): the same rows stored raw (the
    default) and blosc-compressed (the decode path); a ring of each; a store with pixels."""
    root = tmp_path_factory.mktemp("plain")
    for dt in DTYPES:
        name = str(dt).split(".")[-1]
        for comp in ("auto", "lz4"):
            _write(root / f"{name}-{comp}", comp, obs_dtype=dt, act_dtype=dt)
            _write(root / f"{name}-ring-{comp}", comp, capacity=3 * CHUNK, obs_dtype=dt)
    for comp in ("auto", "lz4"):
        _write(root / f"pixels-{comp}", comp, pixels_shape=(3, 4, 4))
    return root


def _codecs(root, key: str) -> list[str]:
    meta = json.loads((root / "data" / key / "zarr.json").read_text())
    (shard,) = meta["codecs"]
    return [c["name"] for c in shard["configuration"]["codecs"]]


def test_new_stores_keep_numeric_keys_raw_and_pixels_compressed(written):
    root = written / "pixels-auto"
    assert _codecs(root, "observation") == ["bytes"]  # raw rows: read in place
    assert _codecs(root, "pixels") == ["bytes", "blosc"]  # uint8 pixels: lz4, bit shuffle
    assert _codecs(root, "_implied/observation") == ["bytes"]
    s = stores.open(root)
    assert "pixels" not in s.manifest["payload"]["uncompressed"]
    assert {"observation", "action", "_implied/observation"} <= set(
        s.manifest["payload"]["uncompressed"]
    )
    assert _codecs(written / "pixels-lz4", "observation") == ["bytes", "blosc"]


@pytest.mark.parametrize("name", ["float32", "pixels"])
def test_zarr_python_reads_the_raw_shards_row_for_row(written, name):
    root = written / f"{name}-auto"
    s = stores.open(root)
    rows = s.get(s.readable()).flatten_keys(".")
    group = zarr.open_group(store=str(root / "data"), mode="r")
    once = s.manifest["payload"]["next_stored_once"]
    assert "observation" in once and group["_implied/observation"][:].any()
    for key in rows.keys():  # noqa: SIM118
        stored = group[key.replace(".", "/")][:]
        base = key[len("next.") :]
        if base in once:  # next values stored once: row t + 1's where implied
            implied = group[f"_implied/{base}"][:]
            stored[implied] = group[base][1:][implied[:-1]]
        assert np.array_equal(stored, rows[key].numpy()), key


@pytest.mark.parametrize("store", [str(d).split(".")[-1] for d in DTYPES] + ["pixels"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=200))
def test_rows_read_in_place_equal_the_decode_paths_rows(written, monkeypatch, store, pos):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    raw = stores.open(written / f"{store}-auto")
    packed = stores.open(written / f"{store}-lz4")
    decoded: list[int] = []
    real = _zarr_cache.ZarrChunks._decode_unit_arrays

    def recording(self, u, names):
        decoded.extend(names)
        return real(self, u, names)

    monkeypatch.setattr(_zarr_cache.ZarrChunks, "_decode_unit_arrays", recording)
    index = torch.as_tensor(pos)
    got = raw.get(index)
    # nothing decoded: every key read in place (pixels: their units decode, lz4)
    assert not decoded if store != "pixels" else "pixels" in decoded
    assert_same_bits(got, packed.get(index))
    one = raw._read_key("next.observation", index)  # one key alone: its base key too
    assert torch.equal(
        one.view(torch.uint8), packed._read_key("next.observation", index).view(torch.uint8)
    )


@pytest.mark.parametrize("dtype", ["float32", "bool", "int64"])
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pos=st.lists(st.integers(0, 3 * CHUNK - 1), min_size=1, max_size=100))
def test_ring_rows_read_in_place_equal_the_decode_paths_rows(written, monkeypatch, dtype, pos):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    raw = stores.open(written / f"{dtype}-ring-auto")
    packed = stores.open(written / f"{dtype}-ring-lz4")
    readable = raw.readable()
    assert raw._dense is None and len(readable) > CHUNK  # above the cache
    assert torch.equal(readable, packed.readable())
    index = readable[torch.as_tensor(pos) % len(readable)]
    assert_same_bits(raw.get(index), packed.get(index))


def test_a_sample_hashes_each_block_once_and_maps_the_shards(written, monkeypatch):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    s = stores.open(written / "float32-auto")
    s.get(np.arange(ROWS))
    assert s._objects.hashed == 0  # format 1.8: blocks of rows are hashed, not whole shards
    first = s.block_bytes_hashed
    row = sum(stores.format.schema.row_bytes(e) for e in s.schema.values())
    assert first == ROWS * row  # every key's decoded rows, once
    s.get(np.random.default_rng(0).integers(0, ROWS, 256))
    assert s.block_bytes_hashed == first


# --- hostile shards -------------------------------------------------------------------------
@pytest.fixture
def victim(tmp_path, monkeypatch):
    """A raw float32 store above the cache, and the observation shard of its chunk 1."""
    _write(tmp_path / "s", "auto")
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    s = stores.open(tmp_path / "s")
    path = s._object_file("observation", 1)
    s.close()
    return tmp_path / "s", path


def _refused_or_in_bounds(root, path: str) -> None:
    """A read of every row of the shard: refused in one line naming it, or served."""
    s = stores.open(root, verify=False)
    try:
        s.get(np.arange(CHUNK, 2 * CHUNK))
    except CorruptStoreError as exc:
        assert "\n" not in str(exc) and path in str(exc)
    finally:
        s.close()


ROW_BYTES = 3 * 4  # observation: 3 float32
INDEX_AT = -4 - 16 * (CHUNK // INNER)  # the index, then its crc32c


def _entries():
    """(inner chunk, offset, nbytes) by family: past the file, wrapping, one byte short or
    long, into the index itself, a neighbour's bytes, arbitrary."""
    nbytes = INNER * ROW_BYTES
    j = st.integers(0, CHUNK // INNER - 1)
    big = st.integers(2**40, 2**64 - 2)
    return st.one_of(
        st.tuples(j, st.just(0), big),
        st.tuples(j, big, st.just(nbytes)),
        st.tuples(j, st.integers(1, nbytes), st.integers(2**64 - nbytes, 2**64 - 2)),
        st.tuples(j, st.just(0), st.sampled_from([nbytes - 1, nbytes + 1, 0, ROW_BYTES])),
        st.tuples(j, st.integers(5 * nbytes - 8, 6 * nbytes), st.just(nbytes)),
        st.tuples(j, st.integers(0, 5).map(lambda k: k * nbytes), st.just(nbytes)),
        st.tuples(j, st.integers(0, 2**64 - 2), st.integers(0, 2**64 - 2)),
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entry=_entries())
def test_a_tampered_shard_index_is_refused_in_one_line(victim, monkeypatch, entry):
    root, path = victim
    with open(path, "rb") as f:
        original = f.read()
    j, offset, nbytes = entry
    at = len(original) + INDEX_AT + 16 * j
    data = bytearray(original)
    data[at : at + 16] = np.array([offset, nbytes], dtype="<u8").tobytes()
    if bytes(data) == original:
        return  # an entry equal to the one stored: nothing tampered
    with open(path, "wb") as f:
        f.write(data)
    try:
        with monkeypatch.context() as mp:
            vouch_for_zarr_shards_on_disk(mp)
            _refused_or_in_bounds(root, path)
        s = stores.open(root, verify=False)  # the real manifest: never served
        with pytest.raises(CorruptStoreError) as info:
            s.get(np.arange(CHUNK, 2 * CHUNK))
        assert "\n" not in str(info.value) and path in str(info.value)
    finally:
        with open(path, "wb") as f:
            f.write(original)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keep=st.floats(0, 0.999))
def test_a_shard_cut_short_is_refused_in_one_line(victim, monkeypatch, keep):
    root, path = victim
    with open(path, "rb") as f:
        original = f.read()
    with open(path, "wb") as f:
        f.write(original[: int(keep * len(original))])
    try:
        with monkeypatch.context() as mp:
            vouch_for_zarr_shards_on_disk(mp)
            _refused_or_in_bounds(root, path)
        s = stores.open(root, verify=False)
        with pytest.raises(CorruptStoreError) as info:
            s.get(np.arange(CHUNK, 2 * CHUNK))
        assert "\n" not in str(info.value) and path in str(info.value)
    finally:
        with open(path, "wb") as f:
            f.write(original)


def test_a_shard_cut_after_it_was_checked_is_refused_before_it_is_mapped(victim):
    root, path = victim
    s = stores.open(root, verify=False)
    s._check_objects(1, ["observation"])  # hashed whole: its index says 6 inner chunks
    with open(path, "r+b") as f:
        f.truncate(INNER * ROW_BYTES)  # in place, same file: as a hostile process could
    with pytest.raises(CorruptStoreError, match="shorter than its index") as info:
        s.get(np.arange(CHUNK, 2 * CHUNK))
    assert "\n" not in str(info.value) and path in str(info.value)


def test_an_unknown_compression_setting_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "zstd")
    w = stores.create(tmp_path / "s", backend="zarr")
    with pytest.raises(ConfigError, match="RLDATA_ZARR_COMPRESSION must be auto, lz4 or none"):
        w.append(ted_batch([5]))  # the arrays are created with the first rows


@pytest.mark.parametrize("map_bytes, released", [(0, True), (1 << 40, False)])
def test_mapped_pages_past_the_map_budget_are_released_and_rows_stay_right(
    written, monkeypatch, map_bytes, released
):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    monkeypatch.setattr(_zarr_plain, "RSS_EVERY", 1)
    monkeypatch.setenv("RLDATA_MAP_BYTES", str(map_bytes))
    calls = []
    real = _zarr_shards.Objects.release_maps
    monkeypatch.setattr(
        _zarr_shards.Objects, "release_maps", lambda self: calls.append(1) or real(self)
    )
    raw = stores.open(written / "float64-auto")
    packed = stores.open(written / "float64-lz4")
    rng = np.random.default_rng(3)
    for _ in range(4):
        index = torch.as_tensor(rng.integers(0, ROWS, 64))
        assert_same_bits(raw.get(index), packed.get(index))  # read again after each release
    assert bool(calls) == released


@pytest.mark.parametrize("store", ["float32", "bool", "int32", "pixels", "int64-ring"])
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(span=st.tuples(st.integers(0, CHUNK - 1), st.integers(1, CHUNK), st.integers(0, 4)))
def test_verify_reads_raw_rows_from_the_shard_as_the_decode_path_gives_them(
    written, monkeypatch, store, span
):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    raw = stores.open(written / f"{store}-auto")
    packed = stores.open(written / f"{store}-lz4")
    first, n, c = span
    a = c * CHUNK + first
    b = min(a + n, (c + 1) * CHUNK, raw._rows)
    for name in raw.schema:
        assert bytes(raw._raw(name, a, b)) == bytes(packed._raw(name, a, b)), (name, a, b)


def test_verify_of_a_raw_store_passes_and_names_a_flipped_row_byte(tmp_path, monkeypatch):
    _write(tmp_path / "s", "auto")
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    s = stores.open(tmp_path / "s")
    decoded: list[str] = []
    real = _zarr_cache.ZarrChunks._decode_unit_arrays
    with monkeypatch.context() as mp:
        mp.setattr(
            _zarr_cache.ZarrChunks,
            "_decode_unit_arrays",
            lambda self, u, names: decoded.extend(names) or real(self, u, names),
        )
        assert stores.verify(s) == []
    assert not decoded  # every row hashed straight from its shard
    path = s._object_file("action", 2)
    s.close()
    with open(path, "r+b") as f:  # a row's byte of the first inner chunk (raw: no frame)
        f.seek(5)
        b = f.read(1)
        f.seek(5)
        f.write(bytes([b[0] ^ 0x10]))
    faults = stores.verify(stores.open(tmp_path / "s", verify=False))
    assert any("action" in f and f"rows [{2 * CHUNK}" in f for f in faults), faults


@pytest.mark.parametrize("store", ["float32", "bool", "int64", "pixels"])
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(span=st.tuples(st.integers(0, ROWS - 2), st.integers(2, 3 * CHUNK)))
def test_row_ranges_read_as_shard_slices_equal_the_decode_paths(written, monkeypatch, store, span):
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", SMALL_CACHE)
    raw = stores.open(written / f"{store}-auto")
    packed = stores.open(written / f"{store}-lz4")
    a = span[0]
    index = torch.arange(a, min(a + span[1], ROWS))  # across chunk boundaries
    assert_same_bits(raw.get(index), packed.get(index))


def test_a_raw_store_that_fits_the_cache_is_copied_in_whole_without_decoding(written, monkeypatch):
    decoded: list[str] = []
    real = _zarr_cache.ZarrChunks._decode_unit_arrays
    monkeypatch.setattr(
        _zarr_cache.ZarrChunks,
        "_decode_unit_arrays",
        lambda self, u, names: decoded.extend(names) or real(self, u, names),
    )
    monkeypatch.setattr(_zarr_cache, "EAGER_BYTES", 0)  # not handed out whole at open
    raw = stores.open(written / "int32-auto")
    packed = stores.open(written / "int32-lz4")
    assert raw._dense is not None and not raw._have.any()  # fits; nothing cached yet
    index = torch.as_tensor([3, ROWS - 1, 200])
    got = raw.get(index)
    assert raw._have.all() and not decoded  # the whole store, copied from its shards
    assert_same_bits(got, packed.get(index))
    assert_same_bits(raw.rows_view(), packed.get(torch.arange(ROWS)))
