"""EnvBase: rollout, step_and_maybe_reset, step_mdp, rand_action, reset carry-over, seeds."""

from __future__ import annotations

import pytest
import torch
from envs_toys import ToyGym
from tensordict import TensorDict

from rldata.envs import GymEnv, GymWrapper
from rldata.envs.common import next_seed
from rldata.errors import ConfigError
from rldata.ted import validate


def test_rollout_stacks_ted_rows_along_time():
    rows = GymEnv("Pendulum-v1").rollout(10)
    assert rows.batch_size == (10,)
    validate(rows)
    # each row starts where the previous one ended
    assert torch.equal(rows["observation"][1:], rows["next", "observation"][:-1])
    assert "reward" not in rows, "the reward lives under 'next' only"


def test_rollout_breaks_at_the_first_done_by_default():
    rows = GymWrapper(ToyGym(length=4)).rollout(100)
    assert rows.shape == (4,) and rows["next", "done"][-1].item()


def test_rollout_without_break_resets_and_keeps_the_final_transition():
    rows = GymWrapper(ToyGym(length=3)).rollout(7, break_when_any_done=False)
    steps = rows["observation"][:, 0].tolist()
    next_steps = rows["next", "observation"][:, 0].tolist()
    assert steps == [0, 1, 2, 0, 1, 2, 0]
    assert next_steps == [1, 2, 3, 1, 2, 3, 1], "final observations (3) are kept under 'next'"
    assert rows["next", "done"].squeeze(-1).tolist() == [False, False, True] * 2 + [False]
    assert not rows["done"].any(), "a root after a reset is not done"


def test_rollout_uses_the_policy_and_calls_back():
    env = GymEnv("Pendulum-v1")
    seen = []

    def policy(td):
        td["action"] = torch.full((1,), 0.25)
        return td

    rows = env.rollout(4, policy=policy, callback=lambda e, td: seen.append(td["next", "reward"]))
    assert (rows["action"] == 0.25).all()
    assert len(seen) == 4


def test_rollout_from_a_given_root_without_reset():
    env = GymWrapper(ToyGym(length=10))
    root = env.reset()
    root = env.step_mdp(env.step(env.rand_action(root)))
    rows = env.rollout(2, auto_reset=False, tensordict=root)
    assert rows["observation"][:, 0].tolist() == [1, 2]
    with pytest.raises(ConfigError, match="tensordict"):
        env.rollout(2, auto_reset=False)
    with pytest.raises(ConfigError, match="max_steps"):
        env.rollout(0)


def test_step_and_maybe_reset_returns_the_row_and_the_next_root():
    env = GymWrapper(ToyGym(length=2))
    td = env.reset()
    row, root = env.step_and_maybe_reset(env.rand_action(td))
    assert row["next", "observation"][0] == 1 and root["observation"][0] == 1
    row, root = env.step_and_maybe_reset(env.rand_action(root))
    assert row["next", "done"].item() and row["next", "observation"][0] == 2
    assert root["observation"][0] == 0 and not root["done"].item()
    assert "action" not in root and "reward" not in root


def test_step_mdp_keeps_other_root_entries_and_drops_action_and_reward():
    env = GymEnv("Pendulum-v1")
    td = env.rand_action(env.reset())
    td["loc"] = torch.zeros(1)
    root = env.step_mdp(env.step(td))
    assert set(root.keys()) == {"observation", "done", "terminated", "truncated", "loc"}
    assert root["observation"] is td["next", "observation"]


def test_reset_carries_over_entries_it_does_not_produce():
    env = GymEnv("Pendulum-v1")
    given = TensorDict({"hidden": torch.ones(4), "action": torch.zeros(1)}, batch_size=[])
    root = env.reset(given)
    assert torch.equal(root["hidden"], torch.ones(4))
    assert "action" not in root


def test_rand_action_without_input_builds_a_tensordict():
    env = GymEnv("Pendulum-v1", num_envs=2)
    td = env.rand_action()
    assert td.batch_size == (2,) and env.action_spec.is_in(td["action"])


def test_next_seed_is_deterministic_and_moves_on():
    assert next_seed(0) == next_seed(0)
    assert next_seed(0) != next_seed(1)
    assert 0 <= next_seed(12345) < 2**32


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1", "FrozenLake-v1"])
@pytest.mark.parametrize("break_when_any_done", [True, False])
@pytest.mark.parametrize("steps", [1, 64, 65, 450])
def test_random_rollout_fast_path_matches_the_step_by_step_loop(env_id, break_when_any_done, steps):
    env = GymEnv(env_id)
    env.set_seed(3)
    fast = [env.rollout(steps, break_when_any_done=break_when_any_done) for _ in range(2)]
    env.set_seed(3)
    slow = [
        env.rollout(steps, policy=env.rand_action, break_when_any_done=break_when_any_done)
        for _ in range(2)
    ]
    for a, b in zip(fast, slow):  # the second rollout checks the action stream continues alike
        assert a.batch_size == b.batch_size
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        for key in b.keys(True, True):
            assert a[key].dtype == b[key].dtype, key
            assert torch.equal(a[key], b[key]), key
