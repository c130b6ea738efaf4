"""Rows of every tensor kind a caller may hand to ``Store.append`` are stored as given.

The memmap writer writes never-written positions with ``pwrite`` and rewrites through the
mapping; both paths must take grads, strided views, bfloat16, memmap leaves and lazy stacks.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import LazyStackedTensorDict, MemoryMappedTensor, TensorDict

import rldata.stores as stores
from rldata.testing.store_contract import assert_rows_equal
from rldata.testing.ted_factory import ted_batch


def _grad(td):
    td["observation"] = td["observation"].clone().requires_grad_(True)
    return td


def _strided(td):
    td["observation"] = torch.stack([td["observation"]] * 2, -1)[..., 0]
    assert not td["observation"].is_contiguous()
    return td


def _bfloat16(td):
    td["log_prob"] = td["log_prob"].to(torch.bfloat16)
    return td


def _memmap_leaf(td):
    td["action"] = MemoryMappedTensor.from_tensor(td["action"])
    return td


def _inference(td):
    with torch.inference_mode():
        return td.clone()


def _lazy_stack(td):
    return LazyStackedTensorDict.lazy_stack(list(td.unbind(0)), 0)


KINDS = {
    "plain": lambda td: td,
    "requires-grad": _grad,
    "strided": _strided,
    "bfloat16": _bfloat16,
    "memmap-leaf": _memmap_leaf,
    "inference": _inference,
    "lazy-stack": _lazy_stack,
}


def _rows(seed: int, kind: str) -> TensorDict:
    td = ted_batch([2, 6], extra=True, seed=seed, start_traj_id=2 * seed).clone()
    return KINDS[kind](td)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("capacity", [None, 16], ids=["append-only", "ring"])
def test_rows_of_each_kind_round_trip_fresh_and_rewritten(tmp_path, kind, capacity):
    batches = [_rows(s, kind) for s in range(4)]  # 48 rows: a ring of 16 rewrites twice
    w = stores.create(tmp_path / "s", capacity=capacity)
    for b in batches:
        pos = w.append(b)
        assert_rows_equal(w.get(pos[-len(pos) :]), b.detach().to_tensordict())
    w.close()
    r = stores.open(tmp_path / "s")
    want = torch.cat([b.detach().to_tensordict() for b in batches])
    assert_rows_equal(r.get(r.readable()), want[len(want) - len(r) :])
    assert stores.verify(r) == []
