"""merge and diff stream their sources block by block: ids are renumbered in order of first
appearance across block boundaries, and no read holds more than one block of rows nor a
tensor of every readable position."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rldata import stores
from rldata.sharing import diff, merge
from rldata.stores.backend import blocks
from rldata.stores.backend.blocks import block_rows
from rldata.testing.ted_factory import marked_serial, ted_marked

TRAJ = ("collector", "traj_ids")


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block


def _store(path: Path, start: int, interleave: bool) -> str:
    """40 rows of two 20-row trajectories; interleaved, the later id's rows come first."""
    td = ted_marked(start, 40, episode_length=20)
    if interleave:
        td = td[torch.tensor([i for pair in zip(range(20, 40), range(20)) for i in pair])]
    with stores.create(path, durable=False) as w:
        w.append(td)
        w.commit()
    return str(path)


def _probe(monkeypatch, cls) -> list[int]:
    """Record the most rows (or positions) any read of ``cls`` returns."""
    largest = [0]
    for name in ("_read_range", "_read", "readable"):
        real = getattr(cls, name)

        def probe(self, *a, _real=real, **k):
            out = _real(self, *a, **k)
            n = out.numel() if isinstance(out, torch.Tensor) else out.batch_size[0]
            largest[0] = max(largest[0], int(n))
            return out

        monkeypatch.setattr(cls, name, probe)
    return largest


def test_merge_renumbers_in_order_of_first_appearance_across_blocks(tmp_path, small_blocks):
    a = _store(tmp_path / "a", 0, interleave=True)  # ids 1, 0 first appear in that order
    b = _store(tmp_path / "b", 100, interleave=False)  # ids 5, 6
    merge([a, b], tmp_path / "m")
    with stores.open(tmp_path / "m") as m, stores.open(a) as sa, stores.open(b) as sb:
        assert block_rows(m) < 10
        rows = m.get(m.readable())
        ids = rows.get(TRAJ).tolist()
        assert ids[:2] == [0, 1] and ids[1:40:2] == [1] * 20 and ids[0:40:2] == [0] * 20
        assert ids[40:] == [2] * 20 + [3] * 20
        want = torch.cat([marked_serial(s.get(s.readable())) for s in (sa, sb)])
        assert marked_serial(rows).tolist() == want.tolist()  # every row, in source order
        assert stores.verify(m) == []


def test_merge_reads_its_sources_a_block_at_a_time(tmp_path, small_blocks, monkeypatch):
    """A memory probe: merging two sources each many blocks long never reads more than one
    block of rows at once, nor makes a tensor of every readable position (the output commits
    every few blocks: a commit reads back the rows it adds)."""
    monkeypatch.setattr(sys.modules["rldata.sharing.merge"], "COMMIT_BYTES", 7 * 70)
    a = _store(tmp_path / "a", 0, interleave=True)
    b = _store(tmp_path / "b", 100, interleave=False)
    with stores.open(a) as s:
        cls, step = type(s), block_rows(s)
    largest = _probe(monkeypatch, cls)
    merge([a, b], tmp_path / "m")
    assert 0 < largest[0] <= step < 40 // 4


def test_diff_reads_its_stores_a_block_at_a_time(tmp_path, small_blocks, monkeypatch):
    a = _store(tmp_path / "a", 0, interleave=True)
    b = _store(tmp_path / "b", 0, interleave=False)
    with stores.open(a) as s:
        cls, step = type(s), block_rows(s)
    largest = _probe(monkeypatch, cls)
    d = diff(a, b)
    assert len(d.shared) == 2 and d.identical
    assert 0 < largest[0] <= step < 40 // 4


def test_the_card_of_a_wrapped_ring_reads_a_block_at_a_time(tmp_path, small_blocks, monkeypatch):
    """``rldata info`` of a ring (statistics computed from its rows, not recorded) never reads
    more than one block of rows at once, and its figures cover every readable row."""
    from rldata.sharing.card import dataset_card

    path = tmp_path / "ring"
    with stores.create(path, capacity=90, durable=False) as w:
        for a in range(0, 300, 50):
            w.append(ted_marked(a, 50, episode_length=30))
            w.commit()
    with stores.open(path) as s:
        cls, step, n = type(s), block_rows(s), len(s)
    largest = _probe(monkeypatch, cls)
    card = dataset_card(str(path))
    assert card["check"] == "ok" and card["stats"]["observation"]["count"] == n
    assert 0 < largest[0] <= step < n // 4
