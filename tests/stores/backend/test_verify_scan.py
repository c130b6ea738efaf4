"""A full verify of a memmap store reads its rows once (:mod:`rldata.stores.backend.
_verify_scan`): the chunk checksums and the invariants are checked on the same read, and
every fault is reported exactly as the separate passes report it (sound or damaged, rows of
one or of interleaved trajectories, blocks that straddle checksum chunks, a ring that
wrapped, next observations stored once with explicit rows)."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.stores.backend import _verify_scan, blocks, rowstore
from rldata.stores.backend import verify as verify_mod
from rldata.stores.backend.blocks import block_rows
from rldata.testing.ted_factory import ted_marked

ROWS, EPISODE = 60, 20


@pytest.fixture
def small(monkeypatch):
    """7-row blocks over 16-row checksum chunks: most blocks straddle two chunks."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", 16)


def _rows(interleave: bool):
    td = ted_marked(0, ROWS, episode_length=EPISODE)
    if interleave:  # rows of trajectories 0 and 1 alternate
        pairs = [i for pair in zip(range(20), range(20, 40)) for i in pair]
        td = td[torch.tensor(pairs + list(range(40, ROWS)))]
    return td


def _write(path, td, capacity=None) -> None:
    with stores.create(path, durable=False, capacity=capacity) as w:
        for a in range(0, len(td), 25):
            w.append(td[a : a + 25])
            w.commit()


def _tamper(path, key: str, dtype: torch.dtype, width: int, p: int, value) -> None:
    """Set row ``p`` of one key in the stored file (a store damaged on disk)."""
    f = path / "data" / f"{key.replace('.', '/')}.memmap"
    rows = f.stat().st_size // (width * torch.empty(0, dtype=dtype).element_size())
    col = torch.from_file(str(f), shared=True, size=rows * width, dtype=dtype).view(rows, width)
    col[p] = value
    del col


def _both(path, monkeypatch, **kw) -> tuple[list[str], list[str]]:
    """(the one-pass verify's faults, the separate passes' faults) of the store at ``path``."""
    scans = []
    real = _verify_scan.Scan.hashes

    def spy(self, jobs):
        scans.append(len(jobs))
        return real(self, jobs)

    with monkeypatch.context() as m:
        m.setattr(_verify_scan.Scan, "hashes", spy)
        with stores.open(path, verify=False) as s:
            assert block_rows(s) <= 7 and s.chunk_rows <= 16
            one = stores.verify(s, **kw)
    assert scans, "the one-pass scan did not run"
    with monkeypatch.context() as m:
        m.setattr(verify_mod, "applies", lambda store: False)
        with stores.open(path, verify=False) as s:
            separate = stores.verify(s, **kw)
    return one, separate


EDITS = {
    "sound": [],
    "done flag": [("next.done", torch.bool, 1, 13, True)],
    "end mid-trajectory": [
        ("next.done", torch.bool, 1, 16, True),
        ("next.terminated", torch.bool, 1, 16, True),
    ],
    "observation": [("observation", torch.float64, 3, 15, 1e6)],
    "observation at a chunk start": [("observation", torch.float64, 3, 32, -7.0)],
    "traj id": [("collector.traj_ids", torch.int64, 1, 33, 5)],
    "reward": [("next.reward", torch.float32, 1, 47, 123.0)],
    "two keys": [
        ("action", torch.float32, 1, 2, 9.0),
        ("observation", torch.float64, 3, 50, float("nan")),
    ],
}


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("edit", list(EDITS))
def test_one_pass_reports_what_the_separate_passes_report(
    tmp_path, small, monkeypatch, interleave, edit
):
    path = tmp_path / "s"
    _write(path, _rows(interleave))
    for e in EDITS[edit]:
        _tamper(path, *e)
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert (one == []) == (edit == "sound"), one


def test_a_broken_next_observation_stored_explicitly_is_named(tmp_path, small, monkeypatch):
    """The writer stores a next observation that is not the next row's explicitly: the one
    pass rebuilds next.observation from its buffers and those records."""
    td = _rows(False)
    td.get(("next", "observation"))[30, 1] += 1000
    path = tmp_path / "s"
    _write(path, td)
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert any(
        "'next.observation' of row 30 differs from 'observation' of row 31" in f for f in one
    )


@pytest.mark.parametrize("capacity", [45, 50])
def test_a_ring_that_wrapped(tmp_path, small, monkeypatch, capacity):
    path = tmp_path / "s"
    _write(path, ted_marked(0, 130, episode_length=EPISODE), capacity=capacity)
    assert _both(path, monkeypatch) == ([], [])
    _tamper(path, "observation", torch.float64, 3, 3, 1e6)
    one, separate = _both(path, monkeypatch)
    assert one == separate and one, one


def test_without_invariants_and_with_a_bad_episode_index(tmp_path, small, monkeypatch):
    path = tmp_path / "s"
    _write(path, _rows(True))
    _tamper(path, "collector.traj_ids", torch.int64, 1, 40, 77)
    one, separate = _both(path, monkeypatch, invariants=False)
    assert one == separate
    assert any("row 40 has traj id 77" in f for f in one), one


def test_each_row_is_read_once_a_chunk_at_a_time(tmp_path, small, monkeypatch):
    """Every stored key's rows are read once (``k`` a row more per chunk, for the ``next.k``
    stored once), in reads of at most a chunk and a row, and nothing is read through
    ``_raw`` (which allocates a copy a read)."""
    path = tmp_path / "s"
    _write(path, _rows(True))
    with stores.open(path, verify=False) as s:
        cls = type(s)
        read: dict[str, int] = {}
        largest = [0]
        real_slice = cls._slice

        def count(self, name, a, b, out=None):
            read[name] = read.get(name, 0) + (b - a)
            largest[0] = max(largest[0], b - a)
            return real_slice(self, name, a, b, out)

        def no_raw(self, *a, **k):
            raise AssertionError("the one pass read through _raw")

        monkeypatch.setattr(cls, "_slice", count)
        monkeypatch.setattr(cls, "_raw", no_raw)
        assert stores.verify(s) == []
        chunks = -(-ROWS // s.chunk_rows)
        late = {f"next.{k}" for k in s._xpos}
        stored = [n for n in s.schema if n not in late]
        assert set(read) == set(stored)
        for name in stored:
            extra = chunks if f"next.{name}" in late else 0
            assert ROWS <= read[name] <= ROWS + extra, (name, read[name])
        assert largest[0] <= s.chunk_rows + 1


def test_explicit_next_rows_that_differ_from_their_sum_are_hashed_as_rows(
    tmp_path, small, monkeypatch
):
    """Explicit records whose bytes no longer match their manifest sum prove nothing: the
    one pass hashes next.observation's rows rebuilt from its buffers, as the store's own
    reader rebuilds them, and names the chunk and the broken link."""
    path = tmp_path / "s"
    _write(path, _rows(False))
    records = next(path.rglob("*.once.memmap"))
    data = bytearray(records.read_bytes())
    data[30] ^= 0xFF
    records.write_bytes(bytes(data))
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert any("key 'next.observation' chunk" in f for f in one), one
