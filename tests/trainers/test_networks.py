"""The registry's networks: SAC's log-std head and its unit-box entropy target."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict

from rldata.specs import Bounded
from rldata.trainers import networks as nets


def specs(low: float, high: float, dim: int) -> nets.EnvSpecs:
    return nets.EnvSpecs(obs_dim=3, action_spec=Bounded(low, high, shape=(dim,)))


def test_unit_box_target_entropy_is_minus_dim_plus_the_log_half_ranges():
    assert nets.unit_box_target_entropy(specs(-1.0, 1.0, 3)) == -3.0
    assert math.isclose(nets.unit_box_target_entropy(specs(-2.0, 2.0, 1)), -1 + math.log(2))


def test_clamped_log_std_head_is_exp_of_the_clamped_second_half():
    loc, scale = nets.ClampedLogStd()(torch.tensor([[0.5, -30.0], [-1.0, 0.3], [2.0, 9.0]]))
    torch.testing.assert_close(loc, torch.tensor([[0.5], [-1.0], [2.0]]))
    torch.testing.assert_close(
        scale, torch.tensor([[math.exp(-20)], [math.exp(0.3)], [math.exp(2)]])
    )


def test_sac_actor_acts_within_the_box_with_either_head():
    for head in (False, True):
        actor = nets.gaussian_actor(specs(-2.0, 2.0, 2), [8], log_std_head=head)
        td = actor(TensorDict({"observation": torch.randn(64, 3)}, [64]))
        assert td["action"].abs().max() <= 2.0
