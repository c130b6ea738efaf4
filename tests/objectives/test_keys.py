"""Loss keys are data: renamed (also nested) through ``set_keys``; unknown names are refused."""

from __future__ import annotations

import pytest
import torch

from rldata.errors import ConfigError
from rldata.modules import MLP, ValueOperator
from rldata.objectives import DDPGLoss, SACLoss

from .helpers import OBS, batch, det_actor, prob_actor, q_net


def renamed(td):
    td = td.clone()
    td["next", "agent", "r"] = td["next"].pop("reward")
    td["next", "agent", "end"] = td["next"].pop("terminated")
    return td


@pytest.mark.parametrize(
    "make", [lambda: DDPGLoss(det_actor(), q_net()), lambda: SACLoss(prob_actor(), q_net())]
)
def test_nested_reward_and_terminated_keys(make):
    torch.manual_seed(0)
    loss = make()
    torch.manual_seed(1)
    plain = loss(batch())
    loss.set_keys(reward=("agent", "r"), terminated=("agent", "end"))
    assert loss.tensor_keys.reward == ("agent", "r")
    torch.manual_seed(1)
    nested = loss(renamed(batch()))
    torch.testing.assert_close(nested["target_value"], plain["target_value"])


def test_renamed_action_key_follows_the_networks():
    td = batch().rename_key_("action", "act")
    actor = det_actor()
    actor.out_keys = ["act"]
    value = ValueOperator(MLP(OBS + 1, 1, [5]), in_keys=["observation", "act"])
    loss = DDPGLoss(actor, value).set_keys(action="act")
    assert loss(td)["loss_value"].requires_grad


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown key 'rewards'.*'reward'"):
        DDPGLoss(det_actor(), q_net()).set_keys(rewards="r")


@pytest.mark.parametrize("cls", [DDPGLoss, SACLoss])
def test_q_network_must_read_the_action(cls):
    actor = det_actor() if cls is DDPGLoss else prob_actor()
    loss = cls(actor, ValueOperator(MLP(OBS + 1, 1, [4]), in_keys=["observation", "act"]))
    with pytest.raises(ConfigError, match=r"action key 'action'.*set_keys"):
        loss(batch())
