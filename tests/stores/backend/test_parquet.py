"""The parquet backend: the store contract (rings refused), plus what only parquet promises."""

from __future__ import annotations

import json
import sys

import duckdb
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import torch

import rldata
import rldata.stores as stores
from rldata.errors import MissingDependencyError
from rldata.testing.store_contract import StoreContract
from rldata.testing.ted_factory import ted_batch, ted_marked


class TestParquetContract(StoreContract):
    backend = "parquet"


def test_duckdb_reads_a_store_as_is(tmp_path):
    with stores.create(tmp_path / "s", backend="parquet") as w:
        for start in (0, 7):
            w.append(ted_batch([4, 3], start_traj_id=start, extra=True))
            w.commit()
        w.append(ted_batch([5, 2, 6], start_traj_id=20, extra=True))
    buffer = rldata.load(tmp_path / "s")
    rows = buffer.storage.store.get(buffer.storage.store.readable())
    glob = f"{tmp_path / 's'}/data/**/*.parquet"
    n, episodes, reward = duckdb.sql(
        f'SELECT count(*), count(DISTINCT "collector.traj_ids"), sum("next.reward") FROM read_parquet(\'{glob}\')'
    ).fetchall()[0]
    assert n == len(buffer) == 27
    assert episodes == buffer.storage.store.episodes().batch_size[0] == 7
    assert reward == pytest.approx(float(rows["next", "reward"].double().sum()), rel=1e-6)
    obs = duckdb.sql(f"SELECT observation FROM read_parquet('{glob}') LIMIT 1").fetchall()[0][0]
    assert len(obs) == 3  # shape [3]: a fixed-size list; shape [1] (next.reward): a scalar


def test_pyarrow_dataset_reads_columns_named_by_key_paths(tmp_path):
    data = ted_batch([3, 2], extra=True)
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(data)
    table = pads.dataset(tmp_path / "s" / "data", format="parquet").to_table()
    assert {"observation", "next.observation", "next.reward", "collector.traj_ids"} <= set(
        table.column_names
    )
    assert table.column("collector.traj_ids").to_pylist() == data["collector", "traj_ids"].tolist()
    meta = json.loads(table.schema.metadata[b"rldata"])
    assert meta["schema"]["observation"] == {"shape": [3], "dtype": "float32"}


def test_each_commit_adds_part_files_and_never_rewrites_one(tmp_path):
    w = stores.create(tmp_path / "s", backend="parquet")
    seen: dict[str, int] = {}
    for start in range(0, 60, 20):
        w.append(ted_marked(start, 20))
        w.commit()
        for part in sorted((tmp_path / "s" / "data").glob("part-*.parquet")):
            mtime = part.stat().st_mtime_ns
            assert seen.setdefault(part.name, mtime) == mtime, part.name
    w.close()
    assert sorted(seen) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pq.read_metadata(tmp_path / "s" / "data" / p).num_rows for p in sorted(seen)] == [
        20,
        20,
        20,
    ]


def test_a_part_left_by_a_crash_is_never_read_and_is_removed_on_resume(tmp_path):
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(ted_marked(0, 10))
    stray = tmp_path / "s" / "data" / "part-00001.parquet"
    stray.write_bytes((tmp_path / "s" / "data" / "part-00000.parquet").read_bytes())
    assert len(stores.open(tmp_path / "s")) == 10
    with stores.open(tmp_path / "s", mode="a") as w:
        assert not stray.exists()
        w.append(ted_marked(10, 5))
    assert len(stores.open(tmp_path / "s")) == 15


def test_samples_come_from_a_cache_decoded_once(tmp_path, monkeypatch):
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(ted_marked(0, 50))
    reads = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: reads.append(a) or real(*a, **k))
    buffer = rldata.load(tmp_path / "s")
    for _ in range(20):
        buffer.sample(8)
    assert len(reads) == 1  # one part, decoded once for every batch


def test_a_missing_pyarrow_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.delitem(sys.modules, "rldata.stores.backend._parquet", raising=False)
    with pytest.raises(MissingDependencyError, match=r"rldata\[parquet\]") as info:
        stores.backend.registry.load("parquet")
    assert "\n" not in str(info.value)
    assert torch.tensor(1)  # the import machinery is left usable


def test_each_observation_is_stored_once(tmp_path):
    data = ted_batch([6, 4], extra=True)
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(data)
    part = pq.read_table(tmp_path / "s" / "data" / "part-00000.parquet")
    nxt = part.column("next.observation")
    # only the rows whose next observation is not the following row's are stored
    assert nxt.is_null().to_pylist() == [True] * 5 + [False] + [True] * 3 + [False]
    s = stores.open(tmp_path / "s")
    assert s.manifest["payload"]["next_stored_once"] == ["observation"]
    got = s.get(s.readable())
    assert torch.equal(got["next", "observation"], data["next", "observation"])
    assert stores.verify(s) == []


def test_duckdb_rebuilds_next_observations_as_format_md_says(tmp_path):
    data = ted_batch([6, 4], extra=True)
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(data[:7])
        w.commit()
        w.append(data[7:])
    query = (
        'SELECT coalesce("next.observation", lead(observation) OVER '
        "(PARTITION BY filename ORDER BY file_row_number)) FROM read_parquet("
        f"'{tmp_path / 's'}/data/**/*.parquet', filename=true, file_row_number=true) "
        "ORDER BY filename, file_row_number"
    )
    got = torch.tensor([r[0] for r in duckdb.sql(query).fetchall()])
    assert torch.equal(got, data["next", "observation"])


def test_float_values_of_compressed_parts_are_byte_stream_split(tmp_path):
    # a uint8 key has no in-place layout (parquet stores it as INT32): every column zstd
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(ted_batch([25, 15], extra=True, pixels_shape=(2, 3)))
    part = next((tmp_path / "s" / "data").glob("part-*.parquet"))
    group = pq.ParquetFile(part).metadata.row_group(0)
    encodings = {
        group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)
    }
    for leaf in ("observation.list.element", "next.reward"):
        assert "BYTE_STREAM_SPLIT" in encodings[leaf], (leaf, encodings[leaf])
    assert "BYTE_STREAM_SPLIT" not in encodings["collector.traj_ids"]
