"""DDPGLoss: values against a hand computation, gradient routing, terminated vs truncated."""

from __future__ import annotations

import pytest
import torch

from rldata.errors import ConfigError, TedFormatError
from rldata.objectives import DDPGLoss

from .helpers import batch, det_actor, grads_by_group, linears, mlp_ref, q_net


def reference(actor, value, td, gamma):
    """DDPG by hand: ``(Q(s, a), r + gamma (1 - terminated) Q(s', mu(s')), Q(s, mu(s)))``."""
    a_w, q_w = linears(actor.module), linears(value.module)
    next_a = mlp_ref(a_w, td["next", "observation"])  # targets start equal to the online nets
    next_q = mlp_ref(q_w, torch.cat([td["next", "observation"], next_a], -1))
    live = (~td["next", "terminated"]).float()
    target = td["next", "reward"] + gamma * live * next_q
    q = mlp_ref(q_w, torch.cat([td["observation"], td["action"]], -1))
    q_pi = mlp_ref(q_w, torch.cat([td["observation"], mlp_ref(a_w, td["observation"])], -1))
    return q, target, q_pi


def test_values_match_a_hand_computation():
    torch.manual_seed(0)
    actor, value = det_actor(), q_net()
    td = batch()
    q, target, q_pi = reference(actor, value, td, gamma=0.9)

    out = DDPGLoss(actor, value, gamma=0.9)(td)

    torch.testing.assert_close(out["loss_value"], ((q - target) ** 2).mean())
    torch.testing.assert_close(out["loss_actor"], -q_pi.mean())
    torch.testing.assert_close(out["target_value"], target.mean())
    torch.testing.assert_close(out["pred_value_max"], q.max())
    torch.testing.assert_close(out["td_error"], (q - target).abs().mean())


def test_smooth_l1_loss_function():
    torch.manual_seed(0)
    actor, value = det_actor(), q_net()
    td = batch()
    td["next", "reward"] *= 10  # residuals beyond 1, where Huber differs from l2
    q, target, _ = reference(actor, value, td, gamma=0.99)
    out = DDPGLoss(actor, value, loss_function="smooth_l1")(td)
    torch.testing.assert_close(out["loss_value"], torch.nn.functional.smooth_l1_loss(q, target))
    with pytest.raises(ConfigError, match="loss_function"):
        DDPGLoss(actor, value, loss_function="l3")


def test_only_losses_carry_gradients():
    out = DDPGLoss(det_actor(), q_net())(batch())
    for key, val in out.items():
        assert val.shape == ()
        assert val.requires_grad == key.startswith("loss_"), key


@pytest.mark.parametrize(
    ("term", "trains"),
    [("loss_value", {"value"}), ("loss_actor", {"actor"})],
    ids=["critic-term-trains-critic-only", "actor-term-trains-actor-only"],
)
def test_each_term_reaches_only_its_network(term, trains):
    actor, value = det_actor(), q_net()
    loss = DDPGLoss(actor, value)
    loss(batch())[term].backward()
    groups = {"actor": list(actor.parameters()), "value": list(value.parameters())}
    got = grads_by_group(loss, groups)
    assert {k for k, v in got.items() if v} == trains
    assert all(not b.requires_grad for b in loss.target_value_network.buffers())


def test_parameters_exclude_targets():
    actor, value = det_actor(), q_net()
    loss = DDPGLoss(actor, value)
    assert {id(p) for p in loss.parameters()} == {
        id(p) for p in [*actor.parameters(), *value.parameters()]
    }


def test_truncated_transition_bootstraps_and_terminated_does_not():
    loss = DDPGLoss(det_actor(), q_net(), gamma=0.5)
    with torch.no_grad():  # make the target critic output exactly 1 everywhere
        for _name, buf in loss.target_value_network.named_buffers():
            buf.zero_()
        list(loss.target_value_network.module.modules())[-1].bias.fill_(1.0)
    td = batch()
    r = td["next", "reward"]
    for row, expected in [(1, r[1]), (2, r[2] + 0.5), (0, r[0] + 0.5)]:
        out = loss(td[row : row + 1])
        torch.testing.assert_close(out["target_value"], expected[0], msg=f"row {row}")


def test_missing_key_names_it():
    td = batch().exclude(("next", "terminated"))
    with pytest.raises(TedFormatError, match="next.terminated"):
        DDPGLoss(det_actor(), q_net())(td)


def test_gamma_from_make_value_estimator():
    loss = DDPGLoss(det_actor(), q_net()).make_value_estimator(gamma=0.5)
    assert loss.gamma == 0.5
    with pytest.raises(ConfigError, match="gamma"):
        loss.make_value_estimator(gamma=1.5)
