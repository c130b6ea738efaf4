"""The report's histogram sample is read a block at a time: no tensor of every readable
position, no read of more than one block of rows, and the sample is the same rows whether
it is gathered by position or by streaming."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch

from rldata import stores
from rldata.stores.backend import blocks
from rldata.stores.backend.blocks import block_rows
from rldata.testing.ted_factory import marked_serial, ted_marked

report_module = importlib.import_module("rldata.sharing.report")


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block


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


def _ring(path: Path) -> Path:
    """A wrapped ring of 90 readable rows (serials 210..299)."""
    with stores.create(path, capacity=90, durable=False) as w:
        for a in range(0, 300, 50):
            w.append(ted_marked(a, 50, episode_length=30))
            w.commit()
    return path


@pytest.mark.parametrize("sample_rows", [200, 40])  # every row; a sample of 40
def test_the_report_sample_reads_a_block_at_a_time(
    tmp_path, small_blocks, monkeypatch, sample_rows
):
    path = _ring(tmp_path / "ring")
    monkeypatch.setattr(report_module, "SAMPLE_ROWS", sample_rows)
    with stores.open(path) as s:
        cls, step, n = type(s), block_rows(s), len(s)
        everything = marked_serial(s.get(s.readable())).tolist()
    largest = _probe(monkeypatch, cls)
    with stores.open(path) as s:
        sample, note = report_module._sample(s)
    serials = marked_serial(sample).tolist()
    assert 0 < largest[0] <= step < n // 4
    assert len(serials) == min(n, sample_rows) == len(set(serials))
    assert set(serials) <= set(everything) and serials == sorted(serials, key=everything.index)
    assert (f"all {n}" in note) == (sample_rows >= n)


def test_a_sample_by_position_equals_a_sample_by_streaming(tmp_path, small_blocks, monkeypatch):
    path = _ring(tmp_path / "ring")
    monkeypatch.setattr(report_module, "SAMPLE_ROWS", 30)
    with stores.open(path) as s:
        by_position = marked_serial(report_module._sample(s)[0]).tolist()
        monkeypatch.setattr(blocks, "_is_row_table", lambda store: False)
        by_stream = marked_serial(report_module._sample(s)[0]).tolist()
    assert by_position == by_stream and len(by_position) == 30


def test_wide_rows_sample_fewer_rows(tmp_path, small_blocks, monkeypatch):
    path = _ring(tmp_path / "ring")
    monkeypatch.setattr(report_module, "SAMPLE_BYTES", 10 * 70)  # 10 rows of ~70 bytes
    with stores.open(path) as s:
        sample, note = report_module._sample(s)
    assert 0 < sample.batch_size[0] < 20 and "uniform random sample" in note


def test_distinct_offsets_from_a_large_range_are_sorted_and_uniformly_spread():
    gen = torch.Generator().manual_seed(0)
    pick = report_module._pick(10**9, 1000, gen)
    assert pick.numel() == 1000 == torch.unique(pick).numel()
    assert torch.equal(pick, torch.sort(pick).values)
    assert 0.3e9 < float(pick.double().mean()) < 0.7e9
