"""Random reads of zarr and parquet decode only the chunks / row groups a batch touches, into a
cache bounded by the user's setting, and serve the rows memmap serves, bit for bit (issue 19)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rldata
import rldata.stores as stores
from rldata.stores.backend import _parquet, _parquet_groups, _zarr, _zarr_cache, rowstore
from rldata.testing.ted_factory import (
    assert_same_bits,
    episode_lengths,
    marked_serial,
    ted_batch,
    ted_marked,
)

BACKENDS = ["zarr", "parquet"]
ROWS = 6000


def _write(path, backend: str, unit: int, monkeypatch, seed: int = 0) -> None:
    """A store of ``ROWS`` rows in three commits, decoded in units of ``unit`` rows (zarr
    chunks, parquet row groups; a unit past the rows is one group per part, as old parts)."""
    monkeypatch.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: min(unit, 1 << 16))
    monkeypatch.setattr(_parquet, "_group_rows", lambda fields: unit)
    monkeypatch.setattr(_parquet, "plain_columns", lambda fields, once: None)  # compressed parts
    # no block digests (1.7): checking a block decodes every group it spans (test_parquet_blocks)
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", False)
    monkeypatch.setattr(_zarr, "compressed", lambda dtype: True)  # blosc shards: decoded
    lengths = episode_lengths(seed, ROWS, 200)
    thirds = [lengths[: len(lengths) // 3], lengths[len(lengths) // 3 : 2 * len(lengths) // 3]]
    thirds.append(lengths[2 * len(lengths) // 3 :])
    with stores.create(path, backend=backend) as w:
        traj = 0
        for part in thirds:
            w.append(ted_batch(part, start_traj_id=traj, extra=True))
            traj += len(part)
            w.commit()


def _reference(tmp_path, monkeypatch, seed: int = 0):
    _write(tmp_path / "memmap", "memmap", 1 << 20, monkeypatch, seed)
    return stores.open(tmp_path / "memmap", verify=False)


def _count_decodes(monkeypatch, backend: str) -> list:
    seen: list = []
    if backend == "zarr":
        real = _zarr.ZarrStore._decode
        monkeypatch.setattr(_zarr.ZarrStore, "_decode", lambda s, c: seen.append(c) or real(s, c))
    else:
        real_g = _parquet.ParquetStore._decode_group
        monkeypatch.setattr(
            _parquet.ParquetStore,
            "_decode_group",
            lambda s, f, p, g, n: seen.append((p["path"], g)) or real_g(s, f, p, g, n),
        )
    return seen


def _cached_bytes(store) -> int:
    if store.backend == "zarr":
        blocks = list(store._lru.values())
        return sum(a.nbytes for b in blocks for a in b.values())
    return store._groups.cached_bytes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("unit", [40, 128, 333])
def test_a_batch_decodes_only_the_units_its_rows_lie_in(tmp_path, monkeypatch, backend, unit):
    # zarr before format 1.8: 1.8 decodes the units of a row's block to hash it (at most
    # 1,024 rows, more than this small store has to spare: see test_zarr_blocks.py)
    monkeypatch.setattr(_zarr.ZarrStore, "block_digests", False)
    _write(tmp_path / "s", backend, unit, monkeypatch)
    seen = _count_decodes(monkeypatch, backend)
    s = stores.open(tmp_path / "s", verify=False)
    rng = np.random.default_rng(unit)
    total = -(-ROWS // unit)
    units = rng.choice(total, total // 2, replace=False)  # rows from half the units
    pos = np.minimum(
        units[rng.integers(0, len(units), 256)] * unit + rng.integers(0, unit, 256), ROWS - 1
    )
    s.get(torch.as_tensor(pos))
    assert len(seen) == len(set(seen)) == _units(s, pos, unit) < _units(s, np.arange(ROWS), unit)


def _units(s, pos: np.ndarray, unit: int) -> int:
    """Distinct decode units (zarr chunk, or (part, row group)) holding rows ``pos``."""
    if s.backend == "zarr":
        return len(np.unique(pos // unit))
    starts = np.array([p["start"] for p in s.manifest["payload"]["parts"]])
    part = np.searchsorted(starts, pos, side="right") - 1
    return len(set(zip(part.tolist(), ((pos - starts[part]) // unit).tolist())))


@pytest.mark.parametrize("backend", BACKENDS)
def test_load_and_sample_decode_only_the_units_of_the_rows_sampled(tmp_path, monkeypatch, backend):
    # a store above the eager size: the data layer samples through the decoded-unit cache
    monkeypatch.setattr(_zarr.ZarrStore, "block_digests", False)  # as above
    monkeypatch.setattr(_zarr_cache, "EAGER_BYTES", 0)
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)
    monkeypatch.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: 64)
    monkeypatch.setattr(_parquet, "_group_rows", lambda fields: 64)
    monkeypatch.setattr(_parquet, "plain_columns", lambda fields, once: None)  # compressed parts
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", False)  # as in _write
    monkeypatch.setattr(_zarr, "compressed", lambda dtype: True)  # blosc shards: decoded
    with stores.create(tmp_path / "s", backend=backend) as w:
        for a in range(0, ROWS, ROWS // 3):  # three parts
            w.append(ted_marked(a, ROWS // 3))
            w.commit()
    seen = _count_decodes(monkeypatch, backend)
    buffer = rldata.load(tmp_path / "s", verify=False)
    rows = marked_serial(buffer.sample(256)).numpy()
    s = stores.open(tmp_path / "s", verify=False)
    assert len(rows) == 256
    assert len(seen) == len(set(seen)) == _units(s, rows, 64) < _units(s, np.arange(ROWS), 64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("unit", [61, 1 << 20])  # 1 << 20: one group per part (old parts)
@pytest.mark.parametrize("seed", [0, 1])
def test_rows_match_memmap_bit_for_bit(tmp_path, monkeypatch, backend, unit, seed):
    ref = _reference(tmp_path, monkeypatch, seed)
    _write(tmp_path / "s", backend, unit, monkeypatch, seed)
    s = stores.open(tmp_path / "s", verify=False)
    rng = np.random.default_rng(seed)
    for size in (1, 256, ROWS):
        pos = torch.as_tensor(rng.integers(0, ROWS, size))
        assert_same_bits(s.get(pos), ref.get(pos))
    assert_same_bits(s.get(slice(0, ROWS)), ref.get(slice(0, ROWS)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fraction", [3, 6])
def test_memory_stays_within_a_small_cache(tmp_path, monkeypatch, backend, fraction):
    """A store ``fraction`` times the cache, sampled many times: the decoded bytes held never
    pass the setting, rows stay right, and units are decoded again after eviction."""
    ref = _reference(tmp_path, monkeypatch)
    _write(tmp_path / "s", backend, 200, monkeypatch)
    row = sum(stores.format.schema.row_bytes(e) for e in ref.schema.values())
    limit = ROWS * row // fraction
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", limit)
    monkeypatch.setenv(_parquet_groups.ENV, str(limit))
    seen = _count_decodes(monkeypatch, backend)
    s = stores.open(tmp_path / "s", verify=False)
    rng = np.random.default_rng(fraction)
    for _ in range(8):
        pos = torch.as_tensor(rng.integers(0, ROWS, 64))
        assert_same_bits(s.get(pos), ref.get(pos))
        assert 0 < _cached_bytes(s) <= limit
    assert len(seen) > _units(s, np.arange(ROWS), 200)  # evicted units were decoded again


def test_a_bad_parquet_cache_setting_is_one_line(monkeypatch):
    monkeypatch.setenv(_parquet_groups.ENV, "lots")
    with pytest.raises(
        rldata.errors.ConfigError, match="RLDATA_PARQUET_CACHE_BYTES must be .* got 'lots'"
    ):
        _parquet_groups.cache_bytes()


def test_a_parquet_reader_hands_out_its_dense_groups_once_all_are_decoded(tmp_path, monkeypatch):
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)  # a "large" store: no whole-store decode
    ref = _reference(tmp_path, monkeypatch)
    _write(tmp_path / "s", "parquet", 128, monkeypatch)
    s = stores.open(tmp_path / "s", verify=False)
    assert s.rows_view() is None  # nothing decoded yet: samples go group by group
    s.get(torch.arange(ROWS // 2))
    assert s.columns() is None
    s.get(torch.arange(ROWS // 2, ROWS))
    td = s.rows_view()
    assert td is not None and s._cols is None  # the row groups' columns, no second decode
    assert_same_bits(td, ref.get(slice(0, ROWS)))


@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
@pytest.mark.parametrize(
    "index", [slice(0, 10), slice(None), torch.zeros(0, dtype=torch.int64)], ids=repr
)
def test_an_empty_read_of_a_store_never_written_has_no_rows(tmp_path, backend, index):
    """A store committed before any row has no schema: reading nothing from it is an empty
    TensorDict (it was a TypeError from the backend's gather)."""
    with stores.create(tmp_path / "e", backend=backend, durable=False) as w:
        w.commit()
    with stores.open(tmp_path / "e") as s:
        got = s.get(index)
    assert got.batch_size == torch.Size([0]) and not list(got.keys())
