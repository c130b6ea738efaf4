"""Every loss bootstraps through truncation: it reads ("next", "terminated"), never done."""

from __future__ import annotations

import pytest
import torch

from .test_targets import LOSSES, batch


def run(loss, td):
    torch.manual_seed(5)
    if hasattr(loss, "num_calls"):
        loss.num_calls = 0
    return loss(td)


@pytest.mark.parametrize("name", list(LOSSES))
def test_done_is_ignored_terminated_is_not(name):
    torch.manual_seed(0)
    loss = LOSSES[name]()
    td = batch()
    base = run(loss, td)

    flipped_done = td.clone()
    flipped_done["next", "done"] = ~flipped_done["next", "done"]
    same = run(loss, flipped_done)
    for key in base.keys():  # noqa: SIM118 (a TensorDict iterates rows, not keys)
        torch.testing.assert_close(same[key], base[key], msg=key)

    flipped_term = td.clone()
    flipped_term["next", "terminated"] = ~flipped_term["next", "terminated"]
    moved = run(loss, flipped_term)
    losses = [k for k in base.keys() if k.startswith("loss_")]  # noqa: SIM118
    assert any(not torch.allclose(moved[k], base[k]) for k in losses)


@pytest.mark.parametrize("name", list(LOSSES))
def test_batches_of_slices_are_flattened(name):
    torch.manual_seed(0)
    loss = LOSSES[name]()
    td = batch()
    flat = run(loss, td)
    sliced = run(loss, td.reshape(2, 2))
    for key in flat.keys():  # noqa: SIM118
        torch.testing.assert_close(sliced[key], flat[key], msg=key)
