"""TD3Loss and TD3BCLoss: target smoothing, delayed actor, behaviour cloning, gradient routing."""

from __future__ import annotations

import pytest
import torch

from rldata.errors import ConfigError
from rldata.modules import MLP, Actor
from rldata.objectives import TD3BCLoss, TD3Loss

from .helpers import (
    HIGH,
    LOW,
    OBS,
    B,
    batch,
    det_actor,
    ensemble_linears,
    grads_by_group,
    linears,
    mlp_ref,
    q_net,
)

SEED = 7


def reference(loss, actor, td, gamma, noise, clip):
    """Critic target and loss by hand; the loss draws the smoothing noise first."""
    torch.manual_seed(SEED)
    eps = torch.randn(B, 1)
    obs, act, nobs = td["observation"], td["action"], td["next", "observation"]
    next_a = mlp_ref(linears(actor.module), nobs) + (eps * noise).clamp(-clip, clip)
    next_a = next_a.clamp(LOW, HIGH)
    tq = loss.target_qvalue
    next_q = torch.stack(
        [mlp_ref(ensemble_linears(tq, i), torch.cat([nobs, next_a], -1)) for i in range(2)]
    ).amin(0)
    target = td["next", "reward"] + gamma * (~td["next", "terminated"]).float() * next_q
    q = [mlp_ref(ensemble_linears(loss.qvalue, i), torch.cat([obs, act], -1)) for i in range(2)]
    loss_q = sum(((qi - target) ** 2).mean() for qi in q)
    pi = mlp_ref(linears(actor.module), obs)
    q1_pi = mlp_ref(ensemble_linears(loss.qvalue, 0), torch.cat([obs, pi], -1))
    return loss_q, q1_pi, pi, target


def test_td3_matches_a_hand_computation_and_delays_the_actor():
    torch.manual_seed(0)
    actor = det_actor()
    loss = TD3Loss(actor, q_net(), policy_noise=0.3, noise_clip=0.4, policy_delay=2, gamma=0.9)
    td = batch()
    ref_q, q1_pi, _, target = reference(loss, actor, td, 0.9, 0.3, 0.4)

    torch.manual_seed(SEED)
    first = loss(td)
    assert not loss.actor_updated and not first["loss_actor"].requires_grad
    torch.testing.assert_close(first["loss_qvalue"], ref_q)
    torch.testing.assert_close(first["target_value"], target.mean())

    torch.manual_seed(SEED)
    second = loss(td)
    assert loss.actor_updated
    torch.testing.assert_close(second["loss_actor"], -q1_pi.mean())


def test_td3bc_actor_loss_is_normalised_q_plus_behaviour_cloning():
    torch.manual_seed(0)
    actor = det_actor()
    loss = TD3BCLoss(actor, q_net(), alpha=2.5, policy_delay=1)
    td = batch()
    _, q1_pi, pi, _ = reference(loss, actor, td, 0.99, 0.2, 0.5)
    lmbda = 2.5 / q1_pi.abs().mean()
    expected = -lmbda * q1_pi.mean() + ((pi - td["action"]) ** 2).mean()
    out = loss(td)
    torch.testing.assert_close(out["loss_actor"], expected)
    torch.testing.assert_close(out["lmbda"], lmbda)


@pytest.mark.parametrize("cls", [TD3Loss, TD3BCLoss])
@pytest.mark.parametrize(
    ("term", "trains"), [("loss_qvalue", {"qvalue"}), ("loss_actor", {"actor"})]
)
def test_each_term_reaches_only_its_network(cls, term, trains):
    actor = det_actor()
    loss = cls(actor, q_net(), policy_delay=1)
    loss(batch())[term].backward()
    got = grads_by_group(
        loss, {"actor": list(actor.parameters()), "qvalue": list(loss.qvalue.parameters())}
    )
    assert {k for k, v in got.items() if v} == trains


def test_truncated_bootstraps_terminated_does_not():
    loss = TD3Loss(det_actor(), q_net(), gamma=0.5)
    with torch.no_grad():  # target critics output exactly 1
        for buf in loss.target_qvalue.buffers():
            buf.zero_()
        loss.target_qvalue.bias_1.fill_(1.0)
    td = batch()
    r = td["next", "reward"][:, 0]
    for row, expected in [(1, r[1]), (2, r[2] + 0.5)]:
        torch.testing.assert_close(loss(td[row : row + 1])["target_value"], expected)


def test_needs_action_bounds():
    with pytest.raises(ConfigError, match="action bounds"):
        TD3Loss(Actor(MLP(OBS, 1, [4])), q_net())
