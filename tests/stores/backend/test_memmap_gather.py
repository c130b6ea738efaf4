"""The memmap read path's gathers: whole rows taken as opaque items, and the explicit
``next`` rows found through a bucket table, serve exactly what ``index_select`` and a
binary search would."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rldata
import rldata.stores as stores
from rldata.stores.backend._memmap_gather import _as_rows, _ExplicitFinder, _take
from rldata.testing.ted_factory import ted_batch


@pytest.mark.parametrize(
    "dtype, shape",
    [
        (torch.float32, (17,)),
        (torch.bool, (1,)),
        (torch.int64, ()),
        (torch.bfloat16, (2, 3)),
        (torch.uint8, (3, 4, 4)),
    ],
)
def test_take_serves_the_rows_index_select_serves(dtype, shape):
    view = torch.arange(50 * max(1, int(np.prod(shape))), dtype=torch.int64).reshape(50, *shape)
    view = (view % 7 == 0) if dtype is torch.bool else view.to(dtype)
    positions = torch.tensor([49, 0, 3, 3, 17], dtype=torch.int64)
    got = _take(view, _as_rows(view), positions)
    assert got.dtype == dtype and got.shape == (5, *shape)
    assert torch.equal(got, view.index_select(0, positions))
    got[0] = 0  # a fresh copy: the mapping is not written through it
    assert torch.equal(view[49], view.index_select(0, positions)[0])


def test_take_of_no_positions_is_an_empty_batch():
    view = torch.ones(10, 6)
    got = _take(view, _as_rows(view), torch.zeros(0, dtype=torch.int64))
    assert got.shape == (0, 6)


def _reference(xpos: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.minimum(np.searchsorted(xpos, p), xpos.size - 1)
    hit = np.flatnonzero(xpos[j] == p)
    return hit, j[hit]


@pytest.mark.parametrize(
    "name, xpos, rows",
    [
        ("one per long episode", np.arange(999, 100_000, 1000), 100_000),
        ("clustered: several per bucket", np.array([0, 1, 2, 3, 500, 501, 9_999]), 10_000),
        ("dense past the step limit", np.arange(0, 64), 1_000),
        ("every row", np.arange(0, 300), 300),
        ("one row, one explicit", np.array([0]), 1),
        ("the last row", np.array([4_095]), 4_096),
    ],
)
def test_explicit_finder_matches_a_binary_search(name, xpos, rows):
    xpos = xpos.astype(np.int64)
    find = _ExplicitFinder(xpos, rows)
    g = np.random.default_rng(0)
    batches = [g.integers(0, rows, 256), xpos.copy(), np.array([rows - 1, 0, rows - 1])]
    for p in batches:
        hit, j = find(p.astype(np.int64))
        want_hit, want_j = _reference(xpos, p)
        assert np.array_equal(hit, want_hit), name
        assert np.array_equal(j, want_j), name
        assert np.array_equal(xpos[j], p[hit])


def test_explicit_finder_table_follows_the_explicit_rows_not_the_rows():
    find = _ExplicitFinder(np.arange(999, 10_000_000, 1000, dtype=np.int64), 10_000_000)
    assert find.first.size <= 2 * 10_000 + 2
    assert find.steps == 1


def test_positions_outside_the_rows_are_never_explicit():
    find = _ExplicitFinder(np.array([0, 5, 9], dtype=np.int64), 10)
    hit, _ = find(np.array([-1, 10, 1 << 40, 5], dtype=np.int64))
    assert hit.tolist() == [3]


def test_sampled_next_observations_equal_the_written_ones(tmp_path):
    data = ted_batch([40, 1, 25, 7, 60], obs_shape=(5,))
    with stores.create(tmp_path / "s") as w:
        w.append(data)
    store = stores.open(tmp_path / "s")
    assert store.manifest["payload"]["next_stored_once"] == ["observation"]
    buffer = rldata.load(tmp_path / "s", batch_size=64)
    torch.manual_seed(0)
    for _ in range(20):
        batch, info = buffer.sample(return_info=True)
        want = data[info["index"]]
        assert torch.equal(batch["next", "observation"], want["next", "observation"])
        assert torch.equal(batch["observation"], want["observation"])
        assert torch.equal(batch["next", "done"], want["next", "done"])


def test_take_clipped_reads_positions_past_the_last_row_as_the_last_row() -> None:
    view = torch.arange(12, dtype=torch.float32).view(4, 3)
    rows = _as_rows(view)
    assert rows is not None
    got = rows.take_clipped(np.array([1, 4, 3]))
    assert torch.equal(got, view[[1, 3, 3]])


def test_read_plan_lists_nested_dicts_deepest_first() -> None:
    from rldata.stores.backend._memmap_gather import _read_plan

    fields = {"a": {}, "next.b": {}, "next.deep.c": {}}
    count, steps, nested = _read_plan(fields)
    assert count == 3
    assert [s[0] for s in steps] == ["a", None, "next.b", None, "next.deep.c"]
    assert nested == [(1, "deep", 2), (0, "next", 1)]
