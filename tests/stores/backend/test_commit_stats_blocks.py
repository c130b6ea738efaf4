"""A commit's statistics (append-only stores record them per commit) come from the rows it
adds a block at a time: the same figures as one pass over those rows, and no read of more
than one block however many rows the commit adds."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.stores.backend import blocks
from rldata.stores.backend.blocks import block_rows
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.testing.ted_factory import ted_marked

ROWS = 400  # one commit of many blocks, episodes across block boundaries


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block


def _write(path) -> str:
    with stores.create(path, durable=False) as w:
        w.append(ted_marked(0, 150, episode_length=40))
        w.commit()
        w.append(ted_marked(150, ROWS - 150, episode_length=40))
        w.commit()
    return str(path)


@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
def test_a_commit_reads_the_rows_it_adds_a_block_at_a_time(
    tmp_path, small_blocks, monkeypatch, backend
):
    largest = [0]
    with stores.create(tmp_path / "s", backend=backend, durable=False) as w:
        for name in ("_read", "_read_range"):
            real = getattr(type(w), name)

            def read(self, *a, _real=real):
                out = _real(self, *a)
                largest[0] = max(largest[0], int(out.batch_size[0]))
                return out

            monkeypatch.setattr(type(w), name, read)
        w.append(ted_marked(0, ROWS, episode_length=40))
        w.commit()
        step = block_rows(w)
    assert 0 < largest[0] <= step < ROWS // 4


def test_commit_stats_match_one_pass_over_every_row(tmp_path, small_blocks):
    with stores.open(_write(tmp_path / "s")) as s:
        rows = s.get(torch.arange(len(s)))
        columns = {k: rows.get(sch.key_tuple(k)) for k in st.numeric_keys(s.schema)}
        records = st.of_rows(columns, rows.get(("collector", "traj_ids")))
        want = st.summary(records.values())
        st.add_quantiles(want, st.sketch_of(columns))
        got = s.stats()
        assert block_rows(s) < 10 and got.keys() == want.keys()
        for key, entry in want.items():
            assert got[key]["count"] == entry["count"] == ROWS
            for field in ("mean", "std", "min", "max"):
                assert got[key][field] == pytest.approx(entry[field], rel=1e-12), (key, field)
            assert got[key]["quantiles"] == entry["quantiles"], key  # sketches merge exactly
