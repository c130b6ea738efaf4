"""SliceSampler over a store reads the store's episode index, never a whole column.

A store of 30M rows keeps 30M trajectory ids: reading them (twice a batch, as the column
path does) made trajectory sampling cost grow with the store (issue 19). Over an append-only
store the sampler draws windows from the episode index instead; these cases check that it
takes the same windows the column path takes (every valid start, uniformly; cuts at the same
rows) on every backend and on a sharded store, and that it reads only the rows it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from rldata import stores
from rldata.data import LazyMemmapStorage, ReplayBuffer, load
from rldata.data._store_storage import StoreStorage
from rldata.data.samplers import SliceSampler
from rldata.stores.backend import _sharded
from rldata.testing import ted_batch


@dataclass(frozen=True)
class Case:
    name: str
    episodes: tuple[int, ...]
    slice_len: int
    starts: tuple[int, ...]  # every valid start position
    last_complete: bool = True


CASES = [
    Case("two episodes", (5, 3), slice_len=3, starts=(0, 1, 2, 5)),
    Case("length-1 episodes", (1, 1, 4, 1), slice_len=2, starts=(2, 3, 4)),
    Case("length-1 slices", (1, 1, 4, 1), slice_len=1, starts=tuple(range(7))),
    Case("episode cut at the end", (4, 3), slice_len=3, starts=(0, 1, 4), last_complete=False),
    Case("one long episode", (12,), slice_len=12, starts=(0,)),
]
BACKENDS = ["memmap", "zarr", "parquet", "sharded"]


def _store(root: Path, backend: str, case: Case) -> Path:
    rows = ted_batch(list(case.episodes), last_complete=case.last_complete)
    if backend != "sharded":
        with stores.create(root, backend=backend) as w:
            for i in range(0, rows.shape[0], 3):  # several appends: segments continue
                w.append(rows[i : i + 3])
        return root
    root.mkdir()
    half = len(case.episodes) // 2 or 1
    names = []
    for k, (lo, hi) in enumerate([(0, half), (half, len(case.episodes))]):
        if lo == hi:
            continue
        names.append(_sharded.shard_name(k))
        part = list(case.episodes[lo:hi])
        done_last = case.last_complete or hi < len(case.episodes)
        with stores.create(root / names[-1]) as w:
            w.append(ted_batch(part, start_traj_id=lo, last_complete=done_last))
    _sharded.write_parent(root, names, env_id="Test-v0")
    return root


def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, key):
        raise AssertionError(f"SliceSampler read the whole column {key}")

    monkeypatch.setattr(StoreStorage, "_read_column", refuse)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_valid_start_uniformly_from_the_index(tmp_path, monkeypatch, backend, case):
    path = _store(tmp_path / "s", backend, case)
    _no_columns(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    sampler = SliceSampler(slice_len=case.slice_len, generator=gen)
    storage = load(path, sampler=sampler).storage
    draws = 600 * len(case.starts)
    index, _ = sampler.sample(storage, draws * case.slice_len)
    windows = index.view(draws, case.slice_len)
    assert (windows == windows[:, :1] + torch.arange(case.slice_len)).all()
    counts = torch.bincount(windows[:, 0], minlength=max(case.starts) + 1)
    assert set(torch.nonzero(counts).view(-1).tolist()) == set(case.starts)
    expected = draws / len(case.starts)
    for s in case.starts:  # 600 expected each: 5 sigma of a binomial is under 130
        assert abs(int(counts[s]) - expected) < 130, (s, counts.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_strict_slices_are_cut_where_the_column_path_cuts(tmp_path, monkeypatch, backend):
    case = Case("mixed", (5, 1, 7, 2), slice_len=4, starts=())
    path = _store(tmp_path / "s", backend, case)
    ends = torch.tensor([5, 6, 13, 15])  # each row's episode ends before row ends[...]
    _no_columns(monkeypatch)
    gen = torch.Generator().manual_seed(1)
    sampler = SliceSampler(slice_len=4, strict_length=False, generator=gen)
    storage = load(path, sampler=sampler).storage
    for _ in range(50):
        index, info = sampler.sample(storage, 16)
        lengths = info["slice_lengths"]
        assert int(lengths.sum()) == index.numel()
        for window in torch.split(index, lengths.tolist()):
            first = int(window[0])
            end = int(ends[torch.searchsorted(ends, first, right=True)])
            assert window.tolist() == list(range(first, min(first + 4, end)))


@pytest.mark.parametrize("backend", ["memmap", "zarr", "sharded"])
def test_a_batch_reads_only_the_rows_it_returns(tmp_path, monkeypatch, backend):
    path = _store(tmp_path / "s", backend, Case("long", (40, 30, 50), 8, ()))
    _no_columns(monkeypatch)
    buffer = load(path, sampler=SliceSampler(slice_len=8), batch_size=32)
    store = buffer.storage.store
    asked: list[int] = []
    real = type(store).get
    monkeypatch.setattr(type(store), "get", lambda self, i: asked.append(len(i)) or real(self, i))
    batch = buffer.sample()
    ids = batch["collector", "traj_ids"].view(4, 8)
    assert (ids == ids[:, :1]).all()
    assert all(n <= 32 for n in asked)  # memmap gathers from its mapping and asks for none


def test_runs_follow_rows_written_after_a_sample(tmp_path, monkeypatch):
    """The index's runs are kept between batches while the length stays; rows written
    after a batch reach the next batch (a live collect -> sample loop)."""
    _no_columns(monkeypatch)
    gen = torch.Generator().manual_seed(2)
    sampler = SliceSampler(slice_len=4, generator=gen)
    buffer = ReplayBuffer(
        storage=LazyMemmapStorage(None, scratch_dir=tmp_path / "s"), sampler=sampler
    )
    buffer.extend(ted_batch([6]))
    first = buffer.sample(64)["collector", "traj_ids"]
    assert set(first.tolist()) == {0}
    buffer.extend(ted_batch([8], start_traj_id=1))
    later = torch.cat([buffer.sample(64)["collector", "traj_ids"] for _ in range(20)])
    assert set(later.tolist()) == {0, 1}
