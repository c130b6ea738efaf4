"""Transforms: what each writes, how it changes the specs, and how it behaves across resets."""

from __future__ import annotations

import pytest
import torch
from envs_toys import Float64Env, ToyGym

from rldata.envs import (
    Compose,
    DoubleToFloat,
    GymEnv,
    GymWrapper,
    InitTracker,
    ObservationNorm,
    RewardSum,
    StepCounter,
    TransformedEnv,
)
from rldata.errors import ConfigError
from rldata.specs import Unbounded


@pytest.mark.parametrize(
    ("transform", "key", "dtype"),
    [
        (StepCounter(), "step_count", torch.int64),
        (RewardSum(), "episode_reward", torch.float32),
        (InitTracker(), "is_init", torch.bool),
    ],
    ids=["step-counter", "reward-sum", "init-tracker"],
)
def test_transforms_add_their_entry_to_the_specs_and_the_data(transform, key, dtype):
    env = TransformedEnv(GymEnv("Pendulum-v1", num_envs=2), transform)
    spec = env.observation_spec[key]
    assert spec.shape == (2, 1) and spec.dtype == dtype
    rows = env.rollout(3)
    for value in (rows[key], rows["next", key]):
        assert value.shape == (2, 3, 1) and value.dtype == dtype
    assert key not in env.base_env.observation_spec


def test_step_counter_truncates_at_max_steps():
    env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=4))
    rows = env.rollout(100)
    assert rows.shape == (4,)
    assert rows["next", "step_count"].squeeze(-1).tolist() == [1, 2, 3, 4]
    assert rows["next", "truncated"].squeeze(-1).tolist() == [False, False, False, True]
    assert rows["next", "done"][-1].item() and not rows["next", "terminated"].any()


def test_step_counter_restarts_after_each_reset():
    env = TransformedEnv(GymWrapper(ToyGym(length=10)), StepCounter(max_steps=3))
    rows = env.rollout(7, break_when_any_done=False)
    assert rows["step_count"].squeeze(-1).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_step_counter_keeps_running_rows_on_a_partial_reset():
    env = TransformedEnv(GymEnv("Pendulum-v1", num_envs=2), StepCounter())
    root = env.reset()
    for _ in range(3):
        root = env.step_mdp(env.step(env.rand_action(root)))
    root["_reset"] = torch.tensor([[True], [False]])
    fresh = env.reset(root)
    assert fresh["step_count"].squeeze(-1).tolist() == [0, 3]


def test_step_counter_refuses_non_positive_max_steps():
    with pytest.raises(ConfigError, match="max_steps"):
        StepCounter(max_steps=0)


def test_reward_sum_accumulates_over_the_episode_and_restarts():
    env = TransformedEnv(GymWrapper(ToyGym(length=3)), RewardSum())
    rows = env.rollout(5, break_when_any_done=False)
    # ToyGym pays t at step t
    assert rows["next", "episode_reward"].squeeze(-1).tolist() == [1, 3, 6, 1, 3]
    assert rows["episode_reward"].squeeze(-1).tolist() == [0, 1, 3, 0, 1]


def test_init_tracker_marks_the_first_root_of_each_episode():
    env = TransformedEnv(GymWrapper(ToyGym(length=2)), InitTracker())
    rows = env.rollout(5, break_when_any_done=False)
    assert rows["is_init"].squeeze(-1).tolist() == [True, False, True, False, True]
    assert not rows["next", "is_init"].any()


def test_double_to_float_casts_observations_rewards_and_actions():
    base = Float64Env()
    env = TransformedEnv(base, DoubleToFloat())
    assert env.observation_spec["observation"].dtype == torch.float32
    assert env.action_spec.dtype == torch.float32
    assert env.reward_spec.dtype == torch.float32
    rows = env.rollout(3)
    assert rows["observation"].dtype == torch.float32
    assert rows["next", "observation"].dtype == torch.float32
    assert rows["next", "reward"].dtype == torch.float32
    assert rows["action"].dtype == torch.float32, "the policy sees float32 actions"
    assert base.seen_action_dtypes == [torch.float64] * 3, "the base env gets float64"


def test_observation_norm_with_fixed_loc_and_scale():
    base = GymWrapper(ToyGym(length=10))
    env = TransformedEnv(base, ObservationNorm(loc=1.0, scale=2.0))
    rows = env.rollout(3)
    assert rows["observation"][:, 0].tolist() == [-0.5, 0.0, 0.5]
    assert rows["next", "observation"][:, 0].tolist() == [0.0, 0.5, 1.0]
    assert isinstance(env.observation_spec["observation"], Unbounded)


def test_observation_norm_standard_normal_false_is_the_inverse_map():
    env = TransformedEnv(
        GymWrapper(ToyGym(length=10)), ObservationNorm(loc=1.0, scale=2.0, standard_normal=False)
    )
    assert env.rollout(2)["next", "observation"][:, 0].tolist() == [3.0, 5.0]


def test_observation_norm_init_stats_normalises_the_observations():
    norm = ObservationNorm()
    env = TransformedEnv(GymEnv("Pendulum-v1"), norm)
    env.set_seed(0)
    norm.init_stats(num_iter=400)
    assert norm.loc.shape == (3,) and norm.scale.shape == (3,)
    env.set_seed(0)  # the very steps init_stats saw, now normalised
    obs = env.rollout(400, break_when_any_done=False)["observation"]
    assert torch.allclose(obs.mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(obs.std(0), torch.ones(3), atol=1e-4)
    with pytest.raises(ConfigError, match="already set"):
        norm.init_stats(10)


def test_observation_norm_init_stats_needs_an_env():
    with pytest.raises(ConfigError, match="TransformedEnv"):
        ObservationNorm().init_stats(10)


def test_compose_applies_in_order_and_appending_updates_the_specs():
    env = TransformedEnv(GymEnv("Pendulum-v1"), Compose(StepCounter(max_steps=2)))
    assert "episode_reward" not in env.observation_spec
    env.append_transform(RewardSum())
    assert "episode_reward" in env.observation_spec
    assert len(env.transform) == 2 and isinstance(env.transform[1], RewardSum)
    rows = env.rollout(10)
    assert rows.shape == (2,)
    assert torch.allclose(rows["next", "episode_reward"][-1], rows["next", "reward"].sum(0))


def test_transformed_env_reaches_base_env_attributes_and_closes_it():
    env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter())
    assert env.gym_env is env.base_env.gym_env
    env.close()
    assert env.base_env.is_closed and env.is_closed
