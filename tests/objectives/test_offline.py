"""IQLLoss and CQLLoss against hand computations; each term trains only its networks."""

from __future__ import annotations

import math

import pytest
import torch

from rldata.objectives import CQLLoss, IQLLoss
from rldata.objectives.iql import expectile_loss

from .helpers import (
    HIGH,
    LOW,
    B,
    batch,
    ensemble_linears,
    grads_by_group,
    linears,
    mlp_ref,
    policy_params,
    prob_actor,
    q_net,
    tanh_normal_ref,
    v_net,
)


def q_all(ens, x):
    return torch.stack([mlp_ref(ensemble_linears(ens, i), x) for i in range(ens.num_nets)])


def tanh_normal_log_prob(loc, scale, a):
    half, mid = (HIGH - LOW) / 2, (HIGH + LOW) / 2
    u = torch.atanh((a - mid) / half)
    normal = torch.distributions.Normal(loc, scale).log_prob(u)
    return (normal - torch.log(half * (1 - torch.tanh(u) ** 2))).sum(-1)


def test_expectile_weights_residuals_asymmetrically():
    diff = torch.tensor([-2.0, 2.0])
    torch.testing.assert_close(expectile_loss(diff, 0.7), torch.tensor([0.3 * 4, 0.7 * 4]))


def test_iql_matches_a_hand_computation():
    torch.manual_seed(0)
    actor, value = prob_actor(), v_net()
    loss = IQLLoss(actor, q_net(), value, expectile=0.8, temperature=2.0, gamma=0.9)
    td = batch()
    obs, act = td["observation"], td["action"]
    target_q = q_all(loss.target_qvalue, torch.cat([obs, act], -1)).amin(0)
    v = mlp_ref(linears(value.module), obs)
    u = target_q - v
    loss_value = (torch.where(u < 0, 0.2, 0.8) * u**2).mean()
    next_v = mlp_ref(linears(value.module), td["next", "observation"])
    y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]).float() * next_v
    q = q_all(loss.qvalue, torch.cat([obs, act], -1))
    loss_q = sum(((q[i] - y) ** 2).mean() for i in range(2))
    weight = torch.exp(2.0 * u[:, 0]).clamp(max=100.0)
    loss_actor = -(weight * tanh_normal_log_prob(*policy_params(actor, obs), act)).mean()

    out = loss(td)
    torch.testing.assert_close(out["loss_value"], loss_value)
    torch.testing.assert_close(out["loss_qvalue"], loss_q)
    torch.testing.assert_close(out["loss_actor"], loss_actor)


@pytest.mark.parametrize(
    ("term", "trains"),
    [("loss_value", {"value"}), ("loss_qvalue", {"qvalue"}), ("loss_actor", {"actor"})],
)
def test_iql_terms_reach_only_their_network(term, trains):
    actor, value = prob_actor(), v_net()
    loss = IQLLoss(actor, q_net(), value)
    loss(batch())[term].backward()
    groups = {
        "actor": list(actor.parameters()),
        "value": list(value.parameters()),
        "qvalue": list(loss.qvalue.parameters()),
    }
    assert {k for k, v in grads_by_group(loss, groups).items() if v} == trains


def test_cql_penalty_matches_a_hand_computation():
    torch.manual_seed(0)
    actor = prob_actor()
    k = 2
    loss = CQLLoss(actor, q_net(), num_random=k, min_q_weight=3.0, temperature=1.0)
    td = batch()
    obs, nobs, act = td["observation"], td["next", "observation"], td["action"]
    # draw order inside the loss: SAC (next, current), then CQL (current x k, next x k, uniform)
    torch.manual_seed(99)
    torch.randn(B, 1), torch.randn(B, 1)
    eps_cur, eps_next, uni = torch.randn(k * B, 1), torch.randn(k * B, 1), torch.rand(k * B, 1)
    obs_k, nobs_k = obs.repeat(k, 1), nobs.repeat(k, 1)
    a_cur, logp_cur = tanh_normal_ref(*policy_params(actor, obs_k), eps_cur)
    a_next, logp_next = tanh_normal_ref(*policy_params(actor, nobs_k), eps_next)
    a_rand = LOW + (HIGH - LOW) * uni
    logp_rand = torch.full((k * B,), -math.log(HIGH - LOW))
    terms = []
    for a, logp in [(a_rand, logp_rand), (a_cur, logp_cur), (a_next, logp_next)]:
        qa = q_all(loss.qvalue, torch.cat([obs_k, a], -1))[..., 0]  # [N, k*B]
        terms.append((qa - logp).reshape(2, k, B))
    lse = torch.logsumexp(torch.cat(terms, 1), dim=1)  # [N, B]
    q_data = q_all(loss.qvalue, torch.cat([obs, act], -1))
    expected = 3.0 * (lse.mean(-1) - q_data.mean((1, 2))).sum()

    torch.manual_seed(99)
    out = loss(td)
    torch.testing.assert_close(out["loss_cql"], expected)


def test_cql_penalty_trains_only_the_critics():
    actor = prob_actor()
    loss = CQLLoss(actor, q_net())
    loss(batch())["loss_cql"].backward()
    groups = {
        "actor": list(actor.parameters()),
        "qvalue": list(loss.qvalue.parameters()),
        "log_alpha": [loss.log_alpha],
    }
    assert {k for k, v in grads_by_group(loss, groups).items() if v} == {"qvalue"}


@pytest.mark.parametrize("deterministic", [True, False])
def test_cql_target_drops_the_entropy_bonus_unless_asked(deterministic):
    # the authors' CQL, CORL and TorchRL bootstrap on min Q'(s', a') without -alpha log pi
    torch.manual_seed(0)
    actor = prob_actor()
    loss = CQLLoss(actor, q_net(), alpha_init=5.0, gamma=0.9, deterministic_backup=deterministic)
    td = batch()
    nobs = td["next", "observation"]
    torch.manual_seed(7)
    eps_next = torch.randn(B, 1)  # the target's draw comes first inside the loss
    next_a, next_logp = tanh_normal_ref(*policy_params(actor, nobs), eps_next)
    next_v = q_all(loss.target_qvalue, torch.cat([nobs, next_a], -1)).amin(0)
    if not deterministic:
        next_v = next_v - 5.0 * next_logp.unsqueeze(-1)
    live = (~td["next", "terminated"]).float()
    target = td["next", "reward"] + 0.9 * live * next_v

    torch.manual_seed(7)
    out = loss(td)
    torch.testing.assert_close(out["target_value"], target.mean())
    q = q_all(loss.qvalue, torch.cat([td["observation"], td["action"]], -1))
    torch.testing.assert_close(out["loss_qvalue"], ((q - target) ** 2).mean((1, 2)).sum())


def test_cql_bc_steps_clone_the_data_then_follow_the_critics():
    torch.manual_seed(0)
    actor = prob_actor()
    loss = CQLLoss(actor, q_net(), alpha_init=0.5, num_random=2, bc_steps=1)
    plain = CQLLoss(prob_actor(), q_net(), alpha_init=0.5, num_random=2)
    plain.load_state_dict(loss.state_dict())
    td = batch()
    obs, act = td["observation"], td["action"]
    # draw order: SAC (next, current), CQL (current x k, next x k, uniform), then the BC sample
    torch.manual_seed(5)
    torch.randn(B, 1), torch.randn(B, 1), torch.randn(2 * B, 1), torch.randn(2 * B, 1)
    torch.rand(2 * B, 1)
    _, logp = tanh_normal_ref(*policy_params(actor, obs), torch.randn(B, 1))
    data_logp = tanh_normal_log_prob(*policy_params(actor, obs), act)

    torch.manual_seed(5)
    first = loss(td)
    torch.testing.assert_close(first["loss_actor"], (0.5 * logp - data_logp).mean())
    torch.manual_seed(6)
    second = loss(td)
    torch.manual_seed(6)
    torch.testing.assert_close(second["loss_actor"], plain(td)["loss_actor"])
    assert int(loss.updates) == 2
