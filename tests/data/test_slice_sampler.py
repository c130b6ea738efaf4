"""SliceSampler: slices stay inside one episode segment, including across the ring's seam.

Each named case writes episodes into a ring of ``capacity`` rows and lists every start
position a slice of ``slice_len`` may take. Sampling many slices must hit every one of
them and nothing else; the exact scan (the fallback path) must list exactly them too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from rldata.data import LazyTensorStorage, ReplayBuffer, SliceSampler
from rldata.errors import EmptyBufferError, TedFormatError
from rldata.testing import ted_batch


@dataclass(frozen=True)
class Case:
    name: str
    episodes: tuple[int, ...]  # episode lengths, written in order as one batch per episode
    capacity: int
    slice_len: int
    starts: tuple[int, ...]  # every valid start position
    last_complete: bool = True


CASES = [
    # rows 0-4 ep0, 5-7 ep1
    Case("two episodes, no wrap", (5, 3), capacity=20, slice_len=3, starts=(0, 1, 2, 5)),
    # rows: ep0 [0], ep1 [1], ep2 [2..5], ep3 [6]
    Case("length-1 episodes", (1, 1, 4, 1), capacity=20, slice_len=2, starts=(2, 3, 4)),
    Case("length-1 slices", (1, 1, 4, 1), capacity=20, slice_len=1, starts=tuple(range(7))),
    # the last episode has no done: still one segment up to the last row
    Case(
        "episode cut at the end",
        (4, 3),
        capacity=20,
        slice_len=3,
        starts=(0, 1, 4),
        last_complete=False,
    ),
    # 14 rows into 10 slots: positions 0-3 hold ep1 rows 4-7, 4-5 ep0 rows 4-5, 6-9 ep1 rows 0-3;
    # ep1's head (6-9) and tail (0-3) share an id but are not contiguous across the array end
    Case("wrap-around", (6, 8), capacity=10, slice_len=3, starts=(0, 1, 6, 7)),
    # one 12-row episode in 8 slots: 0-3 hold rows 8-11, 4-7 rows 4-7; same id on both sides
    # of the seam at position 4, and a slice must not join row 7 (pos 3) to row 4 (pos 4)
    Case(
        "seam inside one long episode",
        (12,),
        capacity=8,
        slice_len=3,
        starts=(0, 1, 4, 5),
        last_complete=False,
    ),
]


def build(case: Case, sampler: SliceSampler) -> ReplayBuffer:
    buffer = ReplayBuffer(storage=LazyTensorStorage(case.capacity), sampler=sampler)
    rows = ted_batch(list(case.episodes), last_complete=case.last_complete)
    for i in range(rows.shape[0]):  # one row at a time: the ring wraps mid-episode
        buffer.add(rows[i])
    return buffer


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_slices_take_every_valid_start_and_no_other(case):
    gen = torch.Generator().manual_seed(0)
    sampler = SliceSampler(slice_len=case.slice_len, generator=gen)
    buffer = build(case, sampler)
    seen = set()
    for _ in range(200):
        index, _ = sampler.sample(buffer.storage, 4 * case.slice_len)
        windows = index.view(4, case.slice_len)
        assert (windows == windows[:, :1] + torch.arange(case.slice_len)).all()
        seen.update(windows[:, 0].tolist())
    assert seen == set(case.starts)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_exact_scan_lists_the_same_starts(case):
    sampler = SliceSampler(slice_len=case.slice_len)
    storage = build(case, sampler).storage
    n = len(storage)
    traj = storage.column(sampler.traj_key)
    done = storage.column(sampler.end_key).reshape(n)
    seam = storage.cursor if storage.wrapped else None
    valid = sampler._all_valid_starts(traj, done, seam, n, case.slice_len)
    assert valid.tolist() == list(case.starts)


def test_sampled_slices_hold_one_trajectory_each():
    buffer = ReplayBuffer(storage=LazyTensorStorage(64), sampler=SliceSampler(num_slices=4))
    buffer.extend(ted_batch([9, 12, 7, 15, 11, 10]))  # 64 rows, then 20 more wrap the ring
    buffer.extend(ted_batch([6, 14], start_traj_id=6))
    for _ in range(50):
        ids = buffer.sample(16)["collector", "traj_ids"].view(4, 4)
        assert (ids == ids[:, :1]).all()


def test_rare_valid_windows_fall_back_to_the_exact_scan():
    # 60 length-1 episodes and one of 5 rows: random proposals almost never fit slice_len=5
    buffer = ReplayBuffer(storage=LazyTensorStorage(100), sampler=SliceSampler(slice_len=5))
    buffer.extend(ted_batch([1] * 60 + [5]))
    index = buffer.sampler.sample(buffer.storage, 10)[0]
    assert index.tolist() == [60, 61, 62, 63, 64] * 2


def test_non_strict_slices_are_cut_at_episode_ends():
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(50),
        sampler=SliceSampler(
            slice_len=4, strict_length=False, generator=torch.Generator().manual_seed(1)
        ),
    )
    buffer.extend(ted_batch([2, 1, 3, 5]))
    lengths = set()
    for _ in range(100):
        index, info = buffer.sampler.sample(buffer.storage, 16)
        ids = buffer.storage.get(index)["collector", "traj_ids"]
        assert int(info["slice_lengths"].sum()) == index.numel()
        for piece, pos in zip(
            ids.split(info["slice_lengths"].tolist()), index.split(info["slice_lengths"].tolist())
        ):
            lengths.add(piece.numel())
            assert (piece == piece[0]).all()
            assert (pos == pos[0] + torch.arange(pos.numel())).all()
    assert max(lengths) <= 4 and 1 in lengths


@pytest.mark.parametrize(
    ("kwargs", "batch_size", "error", "message"),
    [
        pytest.param({"slice_len": 3}, 10, ValueError, r"batch_size=10 is not a multiple of slice_len=3", id="multiple"),
        pytest.param({"slice_len": 40}, 40, EmptyBufferError, r"slice_len=40 is longer than the buffer's 8 rows", id="too-long"),
        pytest.param({"slice_len": 6}, 12, EmptyBufferError, r"no episode segment holds slice_len=6", id="no-segment"),
        pytest.param({"slice_len": 2, "traj_key": ("collector", "episode")}, 4, TedFormatError, r"'collector.episode' is missing", id="no-traj-key"),
    ],
)  # fmt: skip
def test_bad_slice_requests(kwargs, batch_size, error, message):
    buffer = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SliceSampler(**kwargs))
    buffer.extend(ted_batch([5, 3]))
    with pytest.raises(error, match=message):
        buffer.sample(batch_size)


def test_give_exactly_one_of_num_slices_and_slice_len():
    with pytest.raises(ValueError, match="exactly one of num_slices / slice_len"):
        SliceSampler(num_slices=2, slice_len=3)


def test_slices_of_a_loaded_ring_store_follow_time(tmp_path):
    from rldata import stores
    from rldata.data import load

    with stores.create(tmp_path / "ring", capacity=16) as store:
        store.append(ted_batch([5, 7, 6, 9]))  # 27 rows through 16 slots
    buffer = load(tmp_path / "ring", sampler=SliceSampler(slice_len=3))
    for _ in range(30):
        batch = buffer.sample(12).reshape(4, 3)
        ids = batch["collector", "traj_ids"]
        assert (ids == ids[:, :1]).all()
        # within a slice, each row's next observation is the following row's observation
        assert (batch["next", "observation"][:, :-1] == batch["observation"][:, 1:]).all()
