"""verify's invariant pass, block by block: each kind of broken row is found at its row
wherever it lies (inside a block, on a block boundary, with interleaved trajectories), a
sound store has no fault, and no read holds more than one block of rows."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.stores.backend import blocks
from rldata.stores.backend.blocks import block_rows
from rldata.testing.ted_factory import ted_marked

ROWS, EPISODE = 60, 20


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block


def _rows(interleave: bool):
    td = ted_marked(0, ROWS, episode_length=EPISODE)
    if interleave:  # rows of trajectories 0 and 1 alternate
        pairs = [i for pair in zip(range(20), range(20, 40)) for i in pair]
        td = td[torch.tensor(pairs + list(range(40, ROWS)))]
    return td


def _faults(path, td, **kw) -> list[str]:
    with stores.create(path, durable=False) as w:
        w.append(td)
        w.commit()
    with stores.open(path, verify=False) as s:
        assert block_rows(s) < 10
        return stores.verify(s, checksums=False, **kw)


def _not_last(td, p: int) -> bool:
    ids = td.get(("collector", "traj_ids")).tolist()
    return any(ids[q] == ids[p] for q in range(p + 1, len(ids)))


def _next_of(td, p: int) -> int:
    ids = td.get(("collector", "traj_ids")).tolist()
    return next(q for q in range(p + 1, len(ids)) if ids[q] == ids[p])


@pytest.mark.parametrize("interleave", [False, True])
def test_a_sound_store_has_no_fault(tmp_path, small_blocks, interleave):
    assert _faults(tmp_path / "s", _rows(interleave)) == []


def _tamper(path, key: str, dtype: torch.dtype, width: int, p: int, value) -> None:
    """Set row ``p`` of one key in the stored file: rows the writer refuses (a store damaged
    on disk); verify then runs without checksums, which would name the file first."""
    f = path / "data" / f"{key.replace('.', '/')}.memmap"
    col = torch.from_file(str(f), shared=True, size=ROWS * width, dtype=dtype).view(ROWS, width)
    col[p] = value
    del col


def _stored_faults(path, interleave: bool, *edits, words: str) -> list[str]:
    assert _faults(path, _rows(interleave)) == []
    for edit in edits:
        _tamper(path, *edit)
    with stores.open(path, verify=False) as s:
        return [f for f in stores.verify(s, checksums=False) if words in f]


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("p", [0, 6, 7, 13, 30, 59])
def test_a_done_flag_without_its_cause_is_named_at_its_row(tmp_path, small_blocks, interleave, p):
    done = not _rows(interleave).get(("next", "done"))[p].item()
    faults = _stored_faults(
        tmp_path / "s", interleave, ("next.done", torch.bool, 1, p, done), words="!="
    )
    assert len(faults) == 1 and f"row {p}: next.done != " in faults[0], faults


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("p", [3, 6, 12, 13, 27, 41])
def test_a_trajectory_that_goes_on_after_its_end_is_named(tmp_path, small_blocks, interleave, p):
    """An end flag on a row that is not its trajectory's last: the next row of that
    trajectory is named, whether it lies in the same block or a later one."""
    td = _rows(interleave)
    assert _not_last(td, p)
    ends = [(f"next.{k}", torch.bool, 1, p, True) for k in ("done", "terminated")]
    faults = _stored_faults(tmp_path / "s", interleave, *ends, words="continues")
    assert len(faults) == 1, faults
    q = _next_of(td, p)
    assert f"continues at row {q} after its episode ended at row {p}" in faults[0], faults


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("p", [0, 6, 7, 20, 37])
def test_a_broken_next_observation_is_named(tmp_path, small_blocks, interleave, p):
    """The writer keeps such a row (it stores that next observation explicitly)."""
    td = _rows(interleave)
    assert _not_last(td, p)
    td.get(("next", "observation"))[p, 1] += 1000  # one feature of the row
    faults = [f for f in _faults(tmp_path / "s", td) if "differs" in f]
    assert len(faults) == 1, faults
    q = _next_of(td, p)
    assert f"'next.observation' of row {p} differs from 'observation' of row {q}" in faults[0]


def test_nan_observations_that_match_are_no_fault(tmp_path, small_blocks):
    td = _rows(False)
    td.get("observation")[5:15] = float("nan")
    td.get(("next", "observation"))[4:14] = float("nan")
    assert _faults(tmp_path / "s", td) == []


def _segments_edit(monkeypatch, store, column: str, j: int, value) -> None:
    seg = store.segments().clone()
    seg.get(column)[j] = value
    monkeypatch.setattr(store, "segments", lambda: seg)


@pytest.mark.parametrize("j", [0, 1, 2])
def test_rows_against_the_episode_index(tmp_path, small_blocks, monkeypatch, j):
    """A row whose trajectory id, or a segment whose return, differs from the index is named
    (segments of 20 rows span three 7-row blocks)."""
    path = tmp_path / "s"
    _faults(path, _rows(False))
    with stores.open(path, verify=False) as s:
        _segments_edit(monkeypatch, s, "traj_id", j, 99)
        faults = stores.verify(s, checksums=False, invariants=False)
        assert f"row {j * EPISODE} has traj id {j}, episode index says 99" in faults[0], faults
    with stores.open(path, verify=False) as s:
        want = float(sum(range(j * EPISODE, (j + 1) * EPISODE)))
        _segments_edit(monkeypatch, s, "return", j, want + 1)
        faults = stores.verify(s, checksums=False, invariants=False)
        assert len(faults) == 1, faults
        assert (
            f"episode segment {j} (traj {j}): return {want + 1} in the index, {want}" in (faults[0])
        )


@pytest.mark.parametrize("capacity", [None, 90])
@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
def test_verify_reads_at_most_one_block_at_once(
    tmp_path, small_blocks, monkeypatch, backend, capacity
):
    """A memory probe: every row read of verify's row passes over a store many blocks long
    (a ring that wrapped too) holds at most one block of rows; a sound store has no fault."""
    cls = stores.backend.registry.load(backend)
    if capacity is not None and not getattr(cls, "supports_overwrite_rings", True):
        pytest.skip(f"{backend} keeps no rings")
    path = tmp_path / "s"
    with stores.create(path, backend=backend, capacity=capacity, durable=False) as w:
        for a in range(0, 200, 50):
            w.append(ted_marked(a, 50, episode_length=30))
            w.commit()
    with stores.open(path, verify=False) as s:
        step, largest = block_rows(s), [0]
        for name in ("_read_range", "_read", "_raw"):
            real = getattr(cls, name)

            def probe(self, *a, _real=real, **k):
                out = _real(self, *a, **k)
                rows = out.batch_size[0] if hasattr(out, "batch_size") else a[2] - a[1]
                largest[0] = max(largest[0], int(rows))
                return out

            monkeypatch.setattr(cls, name, probe)
        assert stores.verify(s, checksums=False) == []  # checksums read a chunk at a time
        assert 0 < largest[0] <= step < len(s) // 4
        assert stores.verify(s) == []
