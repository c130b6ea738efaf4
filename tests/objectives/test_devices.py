"""Losses follow ``.to(device)``: networks, targets, buffers and RNG draws stay on the device.

The ``cuda`` case is marked ``gpu`` (deselected by default; run with ``-m gpu``).
"""

from __future__ import annotations

import pytest
import torch

from rldata.objectives import SoftUpdate

from .test_targets import LOSSES, batch

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=pytest.mark.gpu),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(LOSSES))
def test_update_runs_on_the_device(name, device):
    torch.manual_seed(0)
    loss = LOSSES[name]().to(device)
    optim = torch.optim.Adam(loss.parameters())
    updater = SoftUpdate(loss, tau=0.1)
    out = loss(batch().to(device))
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    optim.step()
    updater.step()
    online, target = loss.target_pairs()
    assert all(t.device.type == device for t in [*online, *target])
    assert all(v.device.type == device for v in out.values())
