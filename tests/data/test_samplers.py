"""Sampler statistics: uniformity, epoch coverage, priorities ~ p^alpha with exact weights."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rldata.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    TensorDictReplayBuffer,
)
from rldata.data._sum_tree import SumMinTree
from rldata.errors import EmptyBufferError
from rldata.testing import ted_transitions

# chi-square critical values at p = 0.001 (a correct sampler fails 1 run in 1000; seeds are fixed)
CHI2_CRIT_001 = {7: 24.32, 9: 27.88, 49: 85.35}


def chi_square(counts: torch.Tensor, expected: torch.Tensor) -> float:
    return float(((counts.double() - expected) ** 2 / expected).sum())


def filled(n: int, capacity: int | None = None) -> LazyTensorStorage:
    buffer = ReplayBuffer(storage=LazyTensorStorage(capacity or n))
    buffer.extend(ted_transitions(n))
    return buffer.storage


# --- RandomSampler -------------------------------------------------------------------


def test_random_sampler_is_uniform_over_rows_held():
    storage = filled(50, capacity=80)  # 30 slots never written must never be drawn
    sampler = RandomSampler(generator=torch.Generator().manual_seed(0))
    draws = torch.cat([sampler.sample(storage, 1000)[0] for _ in range(100)])
    assert int(draws.min()) >= 0 and int(draws.max()) < 50
    counts = torch.bincount(draws, minlength=50)
    assert chi_square(counts, torch.full((50,), draws.numel() / 50)) < CHI2_CRIT_001[49]


def test_random_sampler_on_empty_buffer_raises():
    with pytest.raises(EmptyBufferError, match=r"batch_size=4.*len 0"):
        RandomSampler().sample(LazyTensorStorage(10), 4)


# --- SamplerWithoutReplacement ----------------------------------------------------------


def test_without_replacement_covers_every_row_once_per_epoch():
    storage = filled(100)
    sampler = SamplerWithoutReplacement(generator=torch.Generator().manual_seed(1))
    epoch = [sampler.sample(storage, 10)[0] for _ in range(10)]
    assert sampler.ran_out
    assert sorted(torch.cat(epoch).tolist()) == list(range(100))
    second = torch.cat([sampler.sample(storage, 10)[0] for _ in range(10)])
    assert sorted(second.tolist()) == list(range(100))
    assert not torch.equal(torch.cat(epoch), second)  # a fresh permutation


@pytest.mark.parametrize(
    ("drop_last", "sizes"),
    [
        pytest.param(False, [10] * 10 + [5], id="keep-last"),
        pytest.param(True, [10] * 10, id="drop-last"),
    ],
)
def test_without_replacement_last_batch(drop_last, sizes):
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(105),
        sampler=SamplerWithoutReplacement(drop_last=drop_last),
        batch_size=10,
    )
    buffer.extend(ted_transitions(105))
    batches = list(buffer)  # iteration is one epoch
    assert [b.batch_size[0] for b in batches] == sizes
    seen = torch.cat([b["observation"] for b in batches])
    assert torch.unique(seen, dim=0).shape[0] == sum(sizes)


def test_without_replacement_unshuffled_is_storage_order():
    storage = filled(6)
    sampler = SamplerWithoutReplacement(shuffle=False)
    assert sampler.sample(storage, 4)[0].tolist() == [0, 1, 2, 3]
    assert sampler.sample(storage, 4)[0].tolist() == [4, 5]


def test_without_replacement_refuses_more_than_it_holds():
    with pytest.raises(ValueError, match=r"batch_size=11 .*holds \(len 10\)"):
        SamplerWithoutReplacement().sample(filled(10), 11)


# --- PrioritizedSampler -------------------------------------------------------------------


def test_sum_tree_finds_the_prefix_interval_of_every_mass():
    gen = torch.Generator().manual_seed(2)
    values = torch.rand(5000, generator=gen, dtype=torch.float64)
    values[::7] = 0.0  # zero leaves must never be returned
    tree = SumMinTree(5000)
    tree.update(torch.arange(5000), values)
    assert float(tree.total()) == pytest.approx(float(values.sum()))
    assert float(tree.minimum()) == 0.0
    mass = torch.rand(20000, generator=gen, dtype=torch.float64) * tree.total()
    expected = torch.searchsorted(values.cumsum(0), mass, right=True)
    found = tree.find(mass)
    assert (values[found] > 0).all()
    assert (found == expected).float().mean() > 0.999  # ties only at rounding boundaries


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_prioritized_draws_are_proportional_to_p_alpha(alpha):
    storage = filled(8)
    sampler = PrioritizedSampler(
        8, alpha=alpha, beta=0.4, generator=torch.Generator().manual_seed(3)
    )
    priority = torch.tensor([0.1, 0.5, 1.0, 2.0, 4.0, 0.3, 8.0, 1.5])
    sampler.on_write(slice(0, 8))  # what a buffer's extend tells its sampler
    sampler.update_priority(torch.arange(8), priority)
    draws = torch.cat([sampler.sample(storage, 1000)[0] for _ in range(100)])
    p = (priority.double() + sampler.eps) ** alpha
    expected = p / p.sum() * draws.numel()
    assert chi_square(torch.bincount(draws, minlength=8), expected) < CHI2_CRIT_001[7]


def test_prioritized_weights_are_normalized_importance_weights():
    storage = filled(10)
    alpha, beta = 0.7, 0.5
    sampler = PrioritizedSampler(
        10, alpha=alpha, beta=beta, generator=torch.Generator().manual_seed(4)
    )
    priority = torch.linspace(0.2, 3.0, 10)
    sampler.on_write(slice(0, 10))
    sampler.update_priority(torch.arange(10), priority)
    index, info = sampler.sample(storage, 500)
    # the paper's definition: w_i = (N P(i))^-beta / max_j (N P(j))^-beta
    p = (priority.double() + sampler.eps) ** alpha
    prob = p / p.sum()
    w = (10 * prob) ** -beta
    reference = (w / w.max())[index].float()
    torch.testing.assert_close(info["_weight"], reference, rtol=1e-5, atol=1e-6)
    assert float(info["_weight"].max()) <= 1.0 + 1e-6


def test_new_rows_get_the_largest_priority_seen():
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(4),
        sampler=PrioritizedSampler(
            4, alpha=1.0, beta=1.0, generator=torch.Generator().manual_seed(5)
        ),
    )
    buffer.extend(ted_transitions(2))
    buffer.update_priority(torch.tensor([0, 1]), torch.tensor([0.5, 6.0]))
    buffer.extend(ted_transitions(2, start_traj_id=1))
    leaves = buffer.sampler._tree.leaves(torch.arange(4))
    torch.testing.assert_close(leaves[2:], torch.full((2,), 6.0, dtype=torch.float64))


def test_update_tensordict_priority_shifts_the_draws():
    gen = torch.Generator().manual_seed(6)
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(16),
        sampler=PrioritizedSampler(16, alpha=1.0, beta=1.0, generator=gen),
    )
    buffer.extend(ted_transitions(16))
    assert set(buffer.sample(16).keys()) >= {"index", "_weight"}
    batch = TensorDict({"index": torch.arange(16)}, [16])  # as a loss returns it, all rows
    batch.set("td_error", (batch["index"] == 3).float().unsqueeze(-1) * 1000.0)
    buffer.update_tensordict_priority(batch)
    draws = torch.cat([buffer.sample(64)["index"] for _ in range(20)])
    assert (draws == 3).float().mean() > 0.9


@pytest.mark.parametrize(
    ("index", "priority", "message"),
    [
        pytest.param([0, 1], [1.0, 2.0, 3.0], r"one priority per index \(2\), got 3", id="count"),
        pytest.param([9], [1.0], r"rows written so far, \[0, 8\), got \[9, 9\]", id="range"),
        pytest.param([0], [float("nan")], r"finite priorities", id="nan"),
    ],
)
def test_update_priority_bad_input(index, priority, message):
    sampler = PrioritizedSampler(8, alpha=0.6, beta=0.4)
    sampler.on_write(slice(0, 8))
    with pytest.raises(ValueError, match=message):
        sampler.update_priority(torch.tensor(index), torch.tensor(priority))


def test_update_priority_refuses_rows_never_written():
    """A priority on an empty slot would make the sampler draw uninitialised memory."""
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(32), sampler=PrioritizedSampler(32, alpha=1.0, beta=1.0)
    )
    buffer.extend(ted_transitions(4))
    with pytest.raises(ValueError, match=r"written so far, \[0, 4\), got \[20, 20\]"):
        buffer.update_priority(torch.tensor([20]), torch.tensor([1e6]))
    assert int(buffer.sample(64)["index"].max()) < 4


def test_in_memory_storage_refuses_rows_without_traj_ids_or_with_bad_flags():
    storage = LazyTensorStorage(10)
    rows = ted_transitions(4)
    with pytest.raises(ValueError, match="traj_ids"):
        storage.check(rows.exclude(("collector", "traj_ids")))
    bad = ted_transitions(4)
    bad["next", "done"][1] = True  # done without terminated or truncated
    with pytest.raises(ValueError, match="next.done"):
        storage.check(bad)


def test_rows_added_one_at_a_time_get_the_same_flag_check():
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    buffer.extend(ted_transitions(2))
    bad = ted_transitions(1, start_traj_id=5)[0]
    bad["next", "done"] = torch.tensor([True])  # neither terminated nor truncated
    with pytest.raises(ValueError, match="next.done"):
        buffer.add(bad)
        buffer.sample(1)  # staged rows land (and are checked) before any read
    assert len(buffer) == 2
