"""Targets: frozen under backward and optimizer steps; SoftUpdate moves them by exactly tau."""

from __future__ import annotations

import pytest
import torch

from rldata.errors import ConfigError
from rldata.objectives import (
    CQLLoss,
    DDPGLoss,
    HardUpdate,
    IQLLoss,
    REDQLoss,
    SACLoss,
    SoftUpdate,
    TD3BCLoss,
    TD3Loss,
)

from .helpers import batch, det_actor, layer_norm_q_net, prob_actor, q_net, v_net

LOSSES = {
    "ddpg": lambda: DDPGLoss(det_actor(), q_net()),
    "sac": lambda: SACLoss(prob_actor(), q_net()),
    "redq": lambda: REDQLoss(prob_actor(), q_net(), num_qvalue_nets=4),
    "redq_vmap": lambda: REDQLoss(prob_actor(), layer_norm_q_net(), num_qvalue_nets=4),
    "td3": lambda: TD3Loss(det_actor(), q_net(), policy_delay=1),
    "td3_bc": lambda: TD3BCLoss(det_actor(), q_net(), policy_delay=1),
    "iql": lambda: IQLLoss(prob_actor(), q_net(), v_net()),
    "cql": lambda: CQLLoss(prob_actor(), q_net()),
}


def train_step(loss):
    optim = torch.optim.SGD(loss.parameters(), lr=0.1)
    out = loss(batch())
    sum(v for k, v in out.items() if k.startswith("loss_")).backward()
    optim.step()


@pytest.mark.parametrize("name", list(LOSSES))
def test_targets_do_not_move_on_backward_and_step(name):
    torch.manual_seed(0)
    loss = LOSSES[name]()
    online, target = loss.target_pairs()
    before = [t.clone() for t in target]
    online_before = [p.detach().clone() for p in online]
    train_step(loss)
    assert all(torch.equal(a, b) for a, b in zip(before, target))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(online_before, online))
    assert all(not t.requires_grad for t in target)


@pytest.mark.parametrize("name", list(LOSSES))
def test_soft_update_moves_targets_by_exactly_tau(name):
    torch.manual_seed(0)
    loss = LOSSES[name]()
    train_step(loss)  # online and target now differ
    online, target = loss.target_pairs()
    before = [t.clone() for t in target]
    SoftUpdate(loss, eps=0.9).step()  # tau = 0.1
    for old, new, src in zip(before, target, online):
        torch.testing.assert_close(new, old + 0.1 * (src.detach() - old), rtol=1e-6, atol=1e-6)


def test_hard_update_copies_every_interval():
    torch.manual_seed(0)
    loss = LOSSES["ddpg"]()
    updater = HardUpdate(loss, value_network_update_interval=3)
    train_step(loss)
    online, target = loss.target_pairs()
    updater.step()
    updater.step()
    assert not all(torch.equal(o.detach(), t) for o, t in zip(online, target))
    updater.step()
    assert all(torch.equal(o.detach(), t) for o, t in zip(online, target))


def test_targets_follow_the_loss_to_a_new_dtype():
    loss = LOSSES["sac"]().double()
    online, target = loss.target_pairs()
    assert all(t.dtype == torch.float64 for t in target)
    SoftUpdate(loss, tau=0.5).step()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({}, "exactly one"), ({"eps": 0.9, "tau": 0.1}, "exactly one"), ({"tau": 0.0}, "tau")],
)
def test_soft_update_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SoftUpdate(LOSSES["ddpg"](), **kwargs)


def test_walkthrough_eps_is_one_minus_tau():
    assert SoftUpdate(LOSSES["ddpg"](), eps=0.99).tau == pytest.approx(0.01)


@pytest.mark.parametrize("name", list(LOSSES))
def test_only_loss_entries_carry_gradients(name):
    out = LOSSES[name]()(batch())
    keys = list(out.keys())
    assert any(k.startswith("loss_") for k in keys)
    for key in keys:
        assert out[key].shape == (), key
        assert out[key].requires_grad == key.startswith("loss_"), key
