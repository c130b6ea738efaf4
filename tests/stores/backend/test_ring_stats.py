"""A ring's statistics (it records none at commit) come from its readable rows a block at a
time: the same figures as one pass over every row, and no read of more than one block."""

from __future__ import annotations

import pytest

import rldata.stores as stores
from rldata.stores.backend import blocks
from rldata.stores.backend.blocks import block_rows
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.testing.ted_factory import ted_marked

CAPACITY = 300


def _ring(path, rows: int = 1000) -> str:
    """A ring that wrapped: its readable rows are two runs of positions."""
    with stores.create(path, capacity=CAPACITY, durable=False) as w:
        for a in range(0, rows, 150):
            w.append(ted_marked(a, min(150, rows - a), episode_length=40))
            w.commit()
    return str(path)


def _whole(s) -> tuple[dict, dict]:
    """The statistics of every readable row read at once (what the ring computed before)."""
    rows = s.get(s.readable())
    columns = {k: rows.get(sch.key_tuple(k)) for k in st.numeric_keys(s.schema)}
    records = st.of_rows(columns, rows.get(("collector", "traj_ids")))
    out = st.summary(records.values())
    st.add_quantiles(out, st.sketch_of(columns))
    return records, out


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block


def test_ring_stats_match_one_pass_over_every_row(tmp_path, small_blocks):
    with stores.open(_ring(tmp_path / "r")) as s:
        assert CAPACITY // 2 < len(s) <= CAPACITY and block_rows(s) < 10
        records, want = _whole(s)
        assert s.trajectory_stats().keys() == records.keys()
        got = s.stats()
        assert got.keys() == want.keys()
        for key, entry in want.items():
            assert got[key]["count"] == entry["count"] == len(s)
            for field in ("mean", "std", "min", "max"):
                assert got[key][field] == pytest.approx(entry[field], rel=1e-12), (key, field)
            assert got[key]["quantiles"] == entry["quantiles"], key  # sketches merge exactly


def test_ring_stats_read_one_block_at_a_time(tmp_path, small_blocks, monkeypatch):
    """A memory probe: no read of the ring's statistics holds more than one block of rows,
    and no tensor of every readable position is made."""
    with stores.open(_ring(tmp_path / "r")) as s:
        cls, largest = type(s), [0]
        for name in ("_read_range", "_read", "readable"):
            real = getattr(cls, name)

            def probe(self, *a, _real=real, **k):
                out = _real(self, *a, **k)
                n = out.numel() if hasattr(out, "numel") else out.batch_size[0]
                largest[0] = max(largest[0], int(n))
                return out

            monkeypatch.setattr(cls, name, probe)
        s.stats()
        s.trajectory_stats()
        assert 0 < largest[0] <= block_rows(s) < CAPACITY // 4
