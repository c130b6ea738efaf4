"""The TorchRL environment names users port code with (docs/TORCHRL.md, one test per row)."""

from __future__ import annotations

import torch

from rldata.envs import GymEnv, SerialEnv, TransformedEnv
from rldata.envs.transforms import StepCounter
from rldata.envs.utils import RandomPolicy, step_mdp


def test_reset_step_and_step_mdp_follow_the_ted_layout():
    env = GymEnv("Pendulum-v1")
    td = env.reset()
    td = env.rand_action(td)
    td = env.step(td)
    assert td["next", "reward"].shape == (1,)
    nxt = step_mdp(td)
    assert torch.equal(nxt["observation"], td["next", "observation"])
    out, root = env.step_and_maybe_reset(env.rand_action(nxt))
    assert "next" in out and "observation" in root


def test_rollout_keywords_and_seeding():
    env = GymEnv("Pendulum-v1")
    env.set_seed(3)
    a = env.rollout(5, policy=RandomPolicy(env.action_spec), break_when_any_done=False)
    env.set_seed(3)
    b = env.rollout(5, policy=RandomPolicy(env.action_spec), break_when_any_done=False)
    assert a.batch_size == (5,)
    assert torch.equal(a["observation"][0], b["observation"][0])


def test_specs_keys_batch_size_and_close():
    env = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    assert env.batch_size == (2,) and env.action_spec.shape == (2, 1)
    assert env.observation_spec["observation"].shape == (2, 3)
    assert env.reward_spec.shape == (2, 1) and env.done_spec is not None
    assert env.action_key == "action" and env.reward_key == "reward"
    assert "observation" in env.observation_keys and "done" in env.done_keys
    env.close()
    assert env.is_closed


def test_transformed_env_wraps_an_env():
    env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter())
    rows = env.rollout(3)
    assert rows["next", "step_count"].reshape(-1).tolist() == [1, 2, 3]
