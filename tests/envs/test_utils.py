"""rldata.envs.utils and the public surface of rldata.envs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType
from tensordict.nn.probabilistic import interaction_type

import rldata.envs
import rldata.exploration
import rldata.ted
from rldata.envs import utils
from rldata.envs.utils import ExplorationType, RandomPolicy, set_exploration_type
from rldata.specs import Bounded, OneHot


def test_envs_exports_exactly_the_walkthrough_names():
    assert sorted(rldata.envs.__all__) == sorted(
        [
            "GymEnv",
            "GymWrapper",
            "SerialEnv",
            "ParallelEnv",
            "TransformedEnv",
            "Compose",
            "StepCounter",
            "RewardSum",
            "DoubleToFloat",
            "ObservationNorm",
            "InitTracker",
            "EnvBase",
            "step_mdp",
        ]
    )
    for name in rldata.envs.__all__:
        assert getattr(rldata.envs, name) is not None


def test_utils_re_exports_the_shared_objects():
    assert utils.ExplorationType is rldata.exploration.ExplorationType
    assert utils.set_exploration_type is rldata.exploration.set_exploration_type
    assert utils.exploration_type is rldata.exploration.exploration_type
    assert utils.step_mdp is rldata.ted.step_mdp is rldata.envs.step_mdp
    assert {e.name for e in ExplorationType} == {"RANDOM", "MEAN", "MODE", "DETERMINISTIC"}


def test_set_exploration_type_drives_tensordict_interaction_type():
    with set_exploration_type(ExplorationType.MEAN):
        assert utils.exploration_type() is ExplorationType.MEAN
        assert interaction_type() is InteractionType.MEAN

    @set_exploration_type(ExplorationType.DETERMINISTIC)
    def inside():
        return utils.exploration_type(), interaction_type()

    assert inside() == (ExplorationType.DETERMINISTIC, InteractionType.DETERMINISTIC)


@pytest.mark.parametrize(
    "spec",
    [Bounded(-2.0, 2.0, (1,)), OneHot(4), Bounded(-1.0, 1.0, (3, 2))],
    ids=["box", "one-hot", "batched-box"],
)
def test_random_policy_writes_actions_inside_the_spec(spec):
    policy = RandomPolicy(spec)
    td = policy(TensorDict({}, batch_size=[]))
    assert spec.is_in(td["action"]) and td["action"].shape == spec.shape
    assert spec.is_in(policy()["action"])


def test_random_policy_drives_a_rollout():
    env = rldata.envs.GymEnv("CartPole-v1")
    rows = env.rollout(5, policy=RandomPolicy(env.action_spec))
    assert rows["action"].dtype == torch.int64 and (rows["action"].sum(-1) == 1).all()
