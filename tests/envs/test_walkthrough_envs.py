"""The walkthrough's environment part (cells In[1]-In[14]) with ``torchrl`` replaced by ``rldata``.

Each test is one cell or a few; the assertions are what the walkthrough prints: keys,
shapes, dtypes, and the truncation at step 10. The walkthrough runs on ``cuda`` when
present; the suite runs on the CPU (see ``fetch_device``).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict import TensorDict

FLAGS = {"done", "terminated", "truncated"}


def fetch_device() -> str:
    """In[4], pinned to the CPU for the test suite."""
    return "cpu"


def _check(td, key, shape, dtype):
    value = td[key]
    assert tuple(value.shape) == shape, (key, tuple(value.shape))
    assert value.dtype == dtype, (key, value.dtype)
    assert value.device.type == fetch_device()


def test_cells_1_to_3_tensordict_basics():
    batch_size = 5
    tensordict = TensorDict(
        source={
            "key 1": torch.zeros(batch_size, 3),
            "key 2": torch.zeros(batch_size, 5, 6, dtype=torch.bool),
        },
        batch_size=[batch_size],
    )
    assert tensordict.batch_size == (5,)
    assert tensordict[2]["key 1"].shape == (3,) and tensordict[2]["key 2"].shape == (5, 6)
    assert tensordict["key 1"] is tensordict.get("key 1")


@pytest.fixture
def env():
    # In[5]
    from rldata.envs import GymEnv

    warnings.filterwarnings("ignore")
    return GymEnv("Pendulum-v1", device=fetch_device())


def test_cells_5_to_11_reset_rand_action_step_step_mdp(env):
    # In[6]
    reset = env.reset()
    assert set(reset.keys()) == {"observation", *FLAGS}
    assert reset.batch_size == ()
    _check(reset, "observation", (3,), torch.float32)
    for flag in FLAGS:
        _check(reset, flag, (1,), torch.bool)

    # In[7], In[8]
    reset_with_action = env.rand_action(reset)
    assert set(reset_with_action.keys()) == {"action", "observation", *FLAGS}
    _check(reset_with_action, "action", (1,), torch.float32)
    assert -2.0 <= reset_with_action["action"].item() <= 2.0

    # In[9]
    stepped_data = env.step(reset_with_action)
    assert set(stepped_data.keys()) == {"action", "next", "observation", *FLAGS}
    assert set(stepped_data["next"].keys()) == {"observation", "reward", *FLAGS}
    _check(stepped_data["next"], "observation", (3,), torch.float32)
    _check(stepped_data["next"], "reward", (1,), torch.float32)
    for flag in FLAGS:
        _check(stepped_data["next"], flag, (1,), torch.bool)

    # In[10]
    stepped_data = env.step(reset_with_action)
    _check(stepped_data["next"], "observation", (3,), torch.float32)

    # In[11]
    from rldata.envs import step_mdp

    data = step_mdp(stepped_data)
    assert set(data.keys()) == {"observation", *FLAGS}
    assert torch.equal(data["observation"], stepped_data["next", "observation"])


def test_cell_12_rollout_of_ten_steps(env):
    rollout = env.rollout(max_steps=10)
    assert rollout.batch_size == (10,)
    assert set(rollout.keys()) == {"action", "next", "observation", *FLAGS}
    assert set(rollout["next"].keys()) == {"observation", "reward", *FLAGS}
    assert rollout["next"].batch_size == (10,)
    _check(rollout, "action", (10, 1), torch.float32)
    _check(rollout, "observation", (10, 3), torch.float32)
    _check(rollout["next"], "observation", (10, 3), torch.float32)
    _check(rollout["next"], "reward", (10, 1), torch.float32)
    for flag in FLAGS:
        _check(rollout, flag, (10, 1), torch.bool)
        _check(rollout["next"], flag, (10, 1), torch.bool)
    assert rollout[3].batch_size == ()


def test_cells_13_and_14_step_counter_truncates_at_ten(env):
    from rldata.envs import StepCounter, TransformedEnv

    transformed_env = TransformedEnv(env, StepCounter(max_steps=10))
    rollout = transformed_env.rollout(max_steps=100)
    assert rollout.batch_size == (10,)
    assert set(rollout["next"].keys()) == {"observation", "reward", "step_count", *FLAGS}
    _check(rollout["next"], "step_count", (10, 1), torch.int64)
    _check(rollout["next"], "truncated", (10, 1), torch.bool)

    # In[14]
    truncated = rollout["next", "truncated"]
    assert truncated.tolist() == [[False]] * 9 + [[True]]
    assert rollout["next", "step_count"].squeeze(-1).tolist() == list(range(1, 11))
