"""SACLoss and REDQLoss: values against a hand computation, gradient routing, subsets."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor

from rldata.errors import ConfigError
from rldata.modules import MLP, FuncEnsemble, ProbabilisticActor
from rldata.objectives import REDQLoss, SACLoss

from .helpers import (
    B,
    batch,
    ensemble_linears,
    grads_by_group,
    layer_norm_q_net,
    mlp_ref,
    policy_params,
    prob_actor,
    q_net,
    tanh_normal_ref,
)

SEED = 123


def q_all(ens, x):
    """``[N, B, 1]`` by hand, one member at a time."""
    return torch.stack([mlp_ref(ensemble_linears(ens, i), x) for i in range(ens.num_nets)])


def reference(loss, actor, td, gamma, alpha, target_members, actor_reduce):
    """SAC/REDQ by hand. The loss draws the next-state noise first, then the current one."""
    torch.manual_seed(SEED)
    eps_next, eps = torch.randn(B, 1), torch.randn(B, 1)
    obs, act, nobs = td["observation"], td["action"], td["next", "observation"]
    next_a, next_logp = tanh_normal_ref(*policy_params(actor, nobs), eps_next)
    next_q = q_all(loss.target_qvalue, torch.cat([nobs, next_a], -1))[target_members].amin(0)
    live = (~td["next", "terminated"]).float()
    target = td["next", "reward"] + gamma * live * (next_q - alpha * next_logp.unsqueeze(-1))
    q = q_all(loss.qvalue, torch.cat([obs, act], -1))
    loss_q = sum(((q[i] - target) ** 2).mean() for i in range(q.shape[0]))
    a_pi, logp = tanh_normal_ref(*policy_params(actor, obs), eps)
    q_pi = actor_reduce(q_all(loss.qvalue, torch.cat([obs, a_pi], -1)))
    loss_actor = (alpha * logp.unsqueeze(-1) - q_pi).mean()
    loss_alpha = -(math.log(alpha) * (logp - 1.0)).mean()  # target entropy -|A| = -1
    return loss_q, loss_actor, loss_alpha, target


def test_sac_matches_a_hand_computation():
    torch.manual_seed(0)
    actor = prob_actor()
    loss = SACLoss(actor, q_net(), num_qvalue_nets=2, alpha_init=0.5, gamma=0.9)
    td = batch()
    ref_q, ref_actor, ref_alpha, target = reference(
        loss, actor, td, 0.9, 0.5, [0, 1], lambda q: q.amin(0)
    )
    torch.manual_seed(SEED)
    out = loss(td)
    torch.testing.assert_close(out["loss_qvalue"], ref_q)
    torch.testing.assert_close(out["loss_actor"], ref_actor)
    torch.testing.assert_close(out["loss_alpha"], ref_alpha)
    torch.testing.assert_close(out["target_value"], target.mean())
    torch.testing.assert_close(out["alpha"], torch.tensor(0.5))


def test_redq_target_is_the_min_over_the_sampled_subset():
    torch.manual_seed(0)
    actor = prob_actor()
    loss = REDQLoss(actor, q_net(), num_qvalue_nets=4, sub_sample_len=2, alpha_init=0.5, gamma=0.9)
    loss.sample_subset = lambda: torch.tensor([1, 3])  # pin the random subset
    td = batch()
    ref_q, ref_actor, ref_alpha, target = reference(
        loss, actor, td, 0.9, 0.5, [1, 3], lambda q: q.mean(0)
    )
    torch.manual_seed(SEED)
    out = loss(td)
    torch.testing.assert_close(out["loss_qvalue"], ref_q)
    torch.testing.assert_close(out["loss_actor"], ref_actor)  # actor: mean over all N critics
    torch.testing.assert_close(out["loss_alpha"], ref_alpha)
    torch.testing.assert_close(out["target_value"], target.mean())


def test_redq_subsets_are_random_distinct_and_of_size_m():
    loss = REDQLoss(prob_actor(), q_net(), num_qvalue_nets=10, sub_sample_len=3)
    subsets = {tuple(sorted(loss.sample_subset().tolist())) for _ in range(50)}
    assert len(subsets) > 10
    assert all(len(set(s)) == 3 and all(0 <= i < 10 for i in s) for s in subsets)
    with pytest.raises(ConfigError, match="sub_sample_len"):
        REDQLoss(prob_actor(), q_net(), num_qvalue_nets=2, sub_sample_len=3)


def test_ensemble_members_start_different_and_copy_zero_is_the_template():
    q = q_net()
    loss = SACLoss(prob_actor(), q, num_qvalue_nets=3)
    w0 = loss.qvalue.weight_0
    torch.testing.assert_close(w0[0], q.module[0].weight.t())
    assert not torch.allclose(w0[1], w0[2])


@pytest.mark.parametrize("cls", [SACLoss, REDQLoss])
@pytest.mark.parametrize(
    ("term", "trains"),
    [("loss_qvalue", {"qvalue"}), ("loss_actor", {"actor"}), ("loss_alpha", {"log_alpha"})],
)
def test_each_term_reaches_only_its_network(cls, term, trains):
    actor = prob_actor()
    loss = cls(actor, q_net(), alpha_init=0.5)
    loss(batch())[term].backward()
    groups = {
        "actor": list(actor.parameters()),
        "qvalue": list(loss.qvalue.parameters()),
        "log_alpha": [loss.log_alpha],
    }
    got = grads_by_group(loss, groups)
    assert {k for k, v in got.items() if v} == trains


def test_fixed_alpha_is_not_trained():
    loss = SACLoss(prob_actor(), q_net(), alpha_init=0.2, fixed_alpha=True)
    assert all(p is not loss.log_alpha for p in loss.parameters())
    out = loss(batch())
    assert not out["loss_alpha"].requires_grad
    torch.testing.assert_close(out["alpha"], torch.tensor(0.2))


def test_only_losses_carry_gradients():
    out = SACLoss(prob_actor(), q_net())(batch())
    for key, val in out.items():
        assert val.shape == ()
        assert val.requires_grad == key.startswith("loss_"), key


def test_bad_arguments_name_the_value():
    with pytest.raises(ConfigError, match="alpha_init"):
        SACLoss(prob_actor(), q_net(), alpha_init=0.0)
    with pytest.raises(ConfigError, match="target_entropy"):
        SACLoss(prob_actor(), q_net(), target_entropy="high")


def test_any_critic_module_works_through_vmap():
    actor = prob_actor()
    critic = layer_norm_q_net()
    loss = REDQLoss(actor, critic, num_qvalue_nets=4)
    assert isinstance(loss.qvalue, FuncEnsemble)
    out = loss(batch())
    out["loss_qvalue"].backward()
    assert all(p.grad is not None for p in loss.qvalue.parameters())
    assert all(p.grad is None for p in actor.parameters())


def test_tensor_fast_path_equals_the_tensordict_path():
    torch.manual_seed(0)
    actor = prob_actor()
    loss = SACLoss(actor, q_net(), alpha_init=0.5)
    td = batch()
    torch.manual_seed(SEED)
    fast = loss(td)
    loss._policy._fast = None  # force actor.get_dist(TensorDict) and dist.rsample()
    torch.manual_seed(SEED)
    slow = loss(td)
    for key in fast.keys():  # noqa: SIM118 (a TensorDict iterates rows)
        torch.testing.assert_close(slow[key], fast[key], msg=key)


def test_plain_normal_actor_is_accepted():
    head = TensorDictModule(
        torch.nn.Sequential(MLP(3, 2, [5]), NormalParamExtractor()),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(head, in_keys=["loc", "scale"])  # torch Normal
    out = SACLoss(actor, q_net())(batch())
    assert out["entropy"].shape == () and out["loss_actor"].requires_grad


# --- critic_first: the update in two steps, as Stable-Baselines3 orders it -----------------


def test_stages_are_one_joint_loss_by_default():
    torch.manual_seed(0)
    loss = SACLoss(prob_actor(), q_net())
    stages = list(loss.stages(batch()))
    assert len(stages) == 1
    assert {"loss_qvalue", "loss_actor", "loss_alpha"} <= set(stages[0].keys())


def test_critic_first_steps_critics_and_temperature_then_the_actor():
    torch.manual_seed(0)
    actor = prob_actor()
    loss = SACLoss(actor, q_net(), alpha_init=0.5, critic_first=True)
    groups = {
        "actor": list(actor.parameters()),
        "qvalue": list(loss.qvalue.parameters()),
        "log_alpha": [loss.log_alpha],
    }
    trained = []
    for stage in loss.stages(batch()):
        loss.zero_grad(set_to_none=True)
        sum(v for k, v in stage.items() if k.startswith("loss_")).backward()
        got = grads_by_group(loss, groups)
        trained.append({k for k, v in got.items() if v})
    assert trained == [{"qvalue", "log_alpha"}, {"actor"}]


def test_critic_first_actor_loss_reads_the_critics_as_updated_between_stages():
    torch.manual_seed(0)
    loss = SACLoss(prob_actor(), q_net(), alpha_init=0.5, critic_first=True)
    stages = loss.stages(batch())
    first = next(stages)
    with torch.no_grad():  # what an optimizer step on the critics could leave: Q == 0
        for p in loss.qvalue.parameters():
            p.zero_()
    second = next(stages)
    entropy = first["entropy"]  # -mean log pi of the very actions the actor is scored at
    torch.testing.assert_close(second["loss_actor"], -0.5 * entropy)


def test_critic_first_losses_equal_the_joint_forward_when_nothing_steps():
    torch.manual_seed(0)
    actor, q = prob_actor(), q_net()
    joint = SACLoss(actor, q, alpha_init=0.5)
    staged = SACLoss(actor, q, alpha_init=0.5, critic_first=True)
    staged.load_state_dict(joint.state_dict())
    torch.manual_seed(SEED)
    want = joint(batch())
    torch.manual_seed(SEED)
    got = {k: v for stage in staged.stages(batch()) for k, v in stage.items()}
    for key in ("loss_qvalue", "loss_actor", "loss_alpha", "target_value"):
        torch.testing.assert_close(got[key], want[key])


def test_unit_box_critic_sees_actions_mapped_to_minus_one_one():
    torch.manual_seed(0)
    actor = prob_actor()  # acts in [LOW, HIGH] = [-2, 2]
    loss = SACLoss(actor, q_net(), unit_box_critic=True)
    td = batch()
    obs, act = td["observation"], td["action"]
    q = q_all(loss.qvalue, torch.cat([obs, act / 2.0], -1))
    torch.testing.assert_close(loss(td)["pred_value"], q.mean())
