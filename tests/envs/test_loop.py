"""The step loop's numpy path equals its generic path for ``rollout``, random and policy-driven."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule

from rldata.envs import GymEnv, SerialEnv
from rldata.envs._gym_loop import GymLoop
from rldata.envs._loop import StepLoop, make_loop

ENVS = {
    "pendulum single": lambda: GymEnv("Pendulum-v1", max_episode_steps=9),
    "cartpole vector of 3": lambda: GymEnv("CartPole-v1", num_envs=3),
    "pendulum SerialEnv of 2": lambda: SerialEnv(
        2, GymEnv, {"env_id": "Pendulum-v1", "max_episode_steps": 7}
    ),
}


class Linear(torch.nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(n_in, n_out)

    def forward(self, obs):
        out = self.layer(obs)
        if out.shape[-1] > 1:  # CartPole: one-hot of the argmax
            return torch.nn.functional.one_hot(out.argmax(-1), out.shape[-1])
        return out.tanh() * 2


def _policy(env):
    n_in = env.observation_spec["observation"].shape[-1]
    n_out = env.action_spec.shape[-1]
    return TensorDictModule(Linear(n_in, n_out), in_keys=["observation"], out_keys=["action"])


@pytest.mark.parametrize("break_when_any_done", [False, True])
@pytest.mark.parametrize("driven", ["random", "policy"])
@pytest.mark.parametrize("name", ENVS, ids=list(ENVS))
def test_rollout_numpy_path_equals_generic_path(name, driven, break_when_any_done):
    env = ENVS[name]()
    policy = None if driven == "random" else _policy(env)
    assert isinstance(make_loop(env, policy), GymLoop)
    runs = []
    for callback in (None, lambda env, td: None):  # a callback keeps the generic path
        env.set_seed(3)
        with torch.no_grad():
            runs.append(
                [
                    env.rollout(
                        30, policy, break_when_any_done=break_when_any_done, callback=callback
                    )
                    for _ in range(2)  # the second run checks the action stream continues alike
                ]
            )
    for fast, generic in zip(*runs):
        assert fast.batch_size == generic.batch_size
        assert set(fast.keys(True, True)) == set(generic.keys(True, True))
        for key in generic.keys(True, True):
            assert fast[key].dtype == generic[key].dtype, key
            assert torch.equal(fast[key], generic[key]), key
    first = runs[0][0]
    if break_when_any_done and first.shape[-1] < 30:  # it stopped: at a done, not before
        assert first["next", "done"][..., -1, :].any()
        assert not first["next", "done"][..., :-1, :].any()
    if break_when_any_done and driven == "random":
        assert first.shape[-1] < 30, "random episodes of these envs end within 30 steps"


def test_rollout_with_extra_root_entries_takes_the_generic_path():
    env = GymEnv("Pendulum-v1")
    assert isinstance(make_loop(env, None, fast=False), StepLoop)
    root = env.reset()
    root["hidden"] = torch.ones(4)
    rows = env.rollout(5, auto_reset=False, tensordict=root, break_when_any_done=False)
    assert torch.equal(rows["hidden"], torch.ones(5, 4))


def test_rollout_keeps_every_output_of_a_policy_that_writes_more_than_the_action():
    from tensordict.nn import NormalParamExtractor
    from torch.distributions import Normal

    from rldata.modules import MLP, ProbabilisticActor

    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    net = TensorDictModule(
        torch.nn.Sequential(MLP(in_features=3, out_features=2), NormalParamExtractor()),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    policy = ProbabilisticActor(
        net, in_keys=["loc", "scale"], distribution_class=Normal, return_log_prob=True
    )
    rollout = env.rollout(max_steps=5, policy=policy)
    assert {"loc", "scale", "action_log_prob"} <= set(rollout.keys())
    assert rollout["loc"].shape == (5, 1)
