"""GymEnv / GymWrapper: TED output, space conversions, time limits, errors, vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from envs_toys import ToyGym
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rldata.envs import GymEnv, GymWrapper
from rldata.errors import (
    ConfigError,
    EnvClosedError,
    EnvNotFoundError,
    RldataError,
    SpecError,
    TedFormatError,
)
from rldata.specs import Binary, Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot

FLAGS = ("done", "terminated", "truncated")


def test_reset_and_step_follow_ted():
    env = GymEnv("Pendulum-v1")
    root = env.reset()
    assert set(root.keys()) == {"observation", *FLAGS}
    assert root["observation"].shape == (3,) and root["observation"].dtype == torch.float32
    for flag in FLAGS:
        assert root[flag].shape == (1,) and root[flag].dtype == torch.bool
        assert not root[flag].any()
    td = env.step(env.rand_action(root))
    assert td is root, "step writes into and returns its input"
    assert set(td["next"].keys()) == {"observation", "reward", *FLAGS}
    assert td["next", "reward"].shape == (1,) and td["next", "reward"].dtype == torch.float32
    assert not torch.equal(td["next", "observation"], td["observation"])


def test_float64_box_observations_become_float32():
    env = GymWrapper(ToyGym())
    assert env.observation_spec["observation"].dtype == torch.float32
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "observation"].dtype == torch.float32
    assert td["next", "observation"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("categorical", "spec_type", "shape", "action", "gym_action"),
    [
        ("one-hot (default)", OneHot, (3,), torch.tensor([0, 0, 1]), 2),
        ("categorical", Categorical, (), torch.tensor(1), 1),
    ],
)
def test_discrete_actions_are_one_hot_or_categorical(
    categorical, spec_type, shape, action, gym_action
):
    toy = ToyGym(action_space=spaces.Discrete(3))
    env = GymWrapper(toy, categorical_action_encoding=categorical == "categorical")
    assert isinstance(env.action_spec, spec_type)
    assert env.action_spec.shape == shape and env.action_spec.dtype == torch.int64
    td = env.reset()
    td["action"] = action
    env.step(td)
    assert toy.last_action == gym_action
    assert env.action_spec.is_in(env.rand_action(td)["action"])


def test_cartpole_one_hot_action_is_int64_like_the_walkthrough():
    env = GymEnv("CartPole-v1")
    action = env.rand_action(env.reset())["action"]
    assert action.dtype == torch.int64 and action.shape == (2,) and action.sum() == 1


def test_discrete_with_start_offset_reaches_gym_with_the_offset():
    toy = ToyGym(action_space=spaces.Discrete(3, start=-1))
    env = GymWrapper(toy, categorical_action_encoding=True)
    td = env.reset()
    td["action"] = torch.tensor(0)
    env.step(td)
    assert toy.last_action == -1


@pytest.mark.parametrize(
    ("space", "categorical", "spec_type", "action", "expected"),
    [
        (spaces.MultiDiscrete([2, 3]), False, MultiOneHot, [0, 1, 0, 0, 1], [1, 2]),
        (spaces.MultiDiscrete([2, 3]), True, MultiCategorical, [1, 2], [1, 2]),
        (spaces.MultiBinary(3), False, Binary, [1, 0, 1], [1, 0, 1]),
        (spaces.Box(-1.0, 1.0, (2,), dtype=np.float64), False, Bounded, [0.5, -0.5], [0.5, -0.5]),
    ],
    ids=["multi-one-hot", "multi-categorical", "multi-binary", "box-float64"],
)
def test_other_action_spaces_convert_both_ways(space, categorical, spec_type, action, expected):
    toy = ToyGym(action_space=space)
    env = GymWrapper(toy, categorical_action_encoding=categorical)
    assert isinstance(env.action_spec, spec_type)
    td = env.reset()
    td["action"] = torch.tensor(action, dtype=env.action_spec.dtype)
    env.step(td)
    assert np.asarray(toy.last_action).tolist() == expected
    assert np.asarray(toy.last_action).dtype == space.dtype
    assert env.action_spec.is_in(env.rand_action(td)["action"])


def test_dict_observation_space_gives_one_entry_per_key():
    obs_space = spaces.Dict(
        {"position": spaces.Box(-10, 10, (2,), dtype=np.float64), "mode": spaces.Discrete(2)}
    )
    env = GymWrapper(ToyGym(observation_space=obs_space))
    assert set(env.observation_spec.keys()) == {"position", "mode"}
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "position"].dtype == torch.float32
    assert td["next", "mode"].dtype == torch.int64 and td["next", "mode"].shape == ()
    assert td["next", "mode"].item() == 1


def test_time_limit_sets_truncated_and_done():
    env = GymEnv("Pendulum-v1", max_episode_steps=5)
    rows = env.rollout(50)
    assert rows.shape == (5,)
    assert rows["next", "truncated"].squeeze(-1).tolist() == [False] * 4 + [True]
    assert not rows["next", "terminated"].any()
    assert torch.equal(rows["next", "done"], rows["next", "truncated"])


def test_termination_sets_terminated_and_done():
    env = GymWrapper(ToyGym(length=3))
    rows = env.rollout(10)
    assert rows["next", "terminated"].squeeze(-1).tolist() == [False, False, True]
    assert rows["next", "done"].squeeze(-1).tolist() == [False, False, True]
    assert not rows["next", "truncated"].any()


def test_frame_skip_repeats_the_action_and_sums_rewards():
    env = GymWrapper(ToyGym(length=100), frame_skip=3)
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "observation"].tolist() == [3.0, 3.0, 3.0]
    assert td["next", "reward"].item() == 1.0 + 2.0 + 3.0


def test_frame_skip_stops_at_the_end_of_the_episode():
    env = GymWrapper(ToyGym(length=2), frame_skip=3)
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "observation"].tolist() == [2.0, 2.0, 2.0]
    assert td["next", "done"].item()


def test_from_pixels_observes_rendered_frames():
    env = GymWrapper(ToyGym(), from_pixels=True)
    assert set(env.observation_spec.keys()) == {"pixels"}
    td = env.step(env.rand_action(env.reset()))
    assert td["pixels"].dtype == torch.uint8 and td["pixels"].shape == (8, 6, 3)
    assert int(td["next", "pixels"][0, 0, 0]) == 1


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["Pendulm-v1", "Pendulum-v9", "pendulum-v1"])
def test_unknown_env_id_names_it_and_the_closest_ids(env_id):
    with pytest.raises(
        EnvNotFoundError, match=rf"'{env_id}'.*closest registered ids: \['Pendulum-v1'"
    ):
        GymEnv(env_id)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "action", "match"),
    [
        (
            "Pendulum-v1",
            {"validate_actions": True},
            torch.tensor([5.0]),
            r"action \[5\.0\].*\[-2\.0\]",
        ),
        ("Pendulum-v1", {}, torch.tensor([0.0, 0.0]), r"action: expected shape \(1,\)"),
        ("CartPole-v1", {}, torch.tensor([1, 1]), "one-hot vector of length 2"),
        (
            "CartPole-v1",
            {"categorical_action_encoding": True},
            torch.tensor(7),
            r"index in \[0, 2\)",
        ),
    ],
    ids=["box-out-of-range", "wrong-shape", "not-one-hot", "index-too-large"],
)
def test_action_outside_the_spec_is_a_spec_error(env_id, kwargs, action, match):
    env = GymEnv(env_id, **kwargs)
    td = env.reset()
    td["action"] = action
    with pytest.raises(SpecError, match=match):
        env.step(td)


def test_out_of_bounds_continuous_action_goes_to_gymnasium_by_default():
    env = GymEnv("Pendulum-v1")  # as in TorchRL: gymnasium's Pendulum clips the torque
    assert env.validate_actions is False
    td = env.reset()
    td["action"] = torch.tensor([5.0])
    out = env.step(td)
    assert out["action"].item() == 5.0
    assert torch.isfinite(out["next", "reward"]).all()


def test_missing_action_names_the_key():
    env = GymEnv("Pendulum-v1")
    with pytest.raises(TedFormatError, match="'action'"):
        env.step(env.reset())


@pytest.mark.parametrize("call", ["reset", "step", "rollout", "set_seed"])
def test_closed_env_refuses_work(call):
    env = GymEnv("Pendulum-v1")
    td = env.rand_action(env.reset())
    env.close()
    env.close()  # closing twice is fine
    args = {"reset": (), "step": (td,), "rollout": (3,), "set_seed": (0,)}[call]
    with pytest.raises(EnvClosedError, match=f"{call}\\(\\) called on GymEnv after close"):
        getattr(env, call)(*args)


# --- seeding -----------------------------------------------------------------------------


def test_set_seed_returns_the_next_seed_and_makes_rollouts_reproducible():
    env_a, env_b = GymEnv("Pendulum-v1"), GymEnv("Pendulum-v1")
    next_a = env_a.set_seed(3)
    assert next_a == env_b.set_seed(3) and next_a != 3 and isinstance(next_a, int)
    rows_a, rows_b = env_a.rollout(20), env_b.rollout(20)
    assert (rows_a == rows_b).all()
    env_a.set_seed(4)
    assert not torch.equal(env_a.rollout(20)["observation"], rows_a["observation"])


# --- vector envs -------------------------------------------------------------------------


def test_vector_env_batches_everything():
    env = GymEnv("Pendulum-v1", num_envs=3)
    assert env.batch_size == (3,)
    assert env.observation_spec["observation"].shape == (3, 3)
    assert env.action_spec.shape == (3, 1)
    root = env.reset()
    assert root.batch_size == (3,) and root["done"].shape == (3, 1)
    rows = env.rollout(7)
    assert rows.batch_size == (3, 7)
    assert rows["next", "reward"].shape == (3, 7, 1)


def test_vector_env_refuses_to_step_a_finished_sub_env():
    env = GymWrapper(
        gym.vector.SyncVectorEnv(
            [lambda: ToyGym(length=1)] * 2, autoreset_mode=AutoresetMode.DISABLED
        )
    )
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "done"].all()
    td = env.rand_action(env.step_mdp(td))
    with pytest.raises(RldataError, match=r"sub-envs \[0, 1\] that finished"):
        env.step(td)


def test_wrapper_refuses_vector_envs_that_reset_themselves():
    vec = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(ConfigError, match="AutoresetMode.DISABLED"):
        GymWrapper(vec)


@pytest.mark.gpu
def test_cuda_device_puts_tensors_on_the_gpu():
    env = GymEnv("Pendulum-v1", device="cuda")
    rows = env.rollout(5)
    assert rows["next", "observation"].device.type == "cuda"
    assert rows["action"].device.type == "cuda"


def test_the_device_move_path_keeps_the_ted_layout():
    # exercised on the CPU: the same code moves tensors to "cuda" on a GPU machine
    env = GymEnv("Pendulum-v1", device="cpu")
    env._move = True
    fast = env.rollout(3)
    slow = env.rollout(3, policy=env.rand_action)
    for rows in (fast, slow):
        assert rows["next", "observation"].shape == (3, 3)
        assert rows.device == torch.device("cpu")
