"""One step loop: ``env.rollout`` gives the collector's batch (without traj ids), on both paths.

Random and policy-driven, single, vector and SerialEnv-batched environments, with episodes
that end inside the batch; the numpy path and the generic TensorDict path each.
"""

from __future__ import annotations

import pytest
import torch

from rldata.collectors import SyncDataCollector
from rldata.collectors.policy_checkpoint import mlp_policy
from rldata.envs import GymEnv, ParallelEnv, SerialEnv

STEPS = 40

ENVS = {
    "pendulum single": lambda: GymEnv("Pendulum-v1", max_episode_steps=13),
    "cartpole vector of 2": lambda: GymEnv("CartPole-v1", num_envs=2),
    "pendulum SerialEnv of 2": lambda: SerialEnv(
        2, GymEnv, {"env_id": "Pendulum-v1", "max_episode_steps": 11}
    ),
    "cartpole categorical single": lambda: GymEnv(
        "CartPole-v1", categorical_action_encoding=True, max_episode_steps=15
    ),
}


def _policy(env, driven):
    if driven == "random":
        return None
    torch.manual_seed(0)
    return mlp_policy(
        env.observation_spec, env.action_spec, num_cells=[8], batch_dims=len(env.batch_size)
    )


def _assert_same(a, b):
    assert a.batch_size == b.batch_size
    assert sorted(map(str, a.keys(True, True))) == sorted(map(str, b.keys(True, True)))
    for key in b.keys(True, True):
        assert a.get(key).dtype == b.get(key).dtype, key
        assert torch.equal(a.get(key), b.get(key)), f"{key} differs"


@pytest.mark.parametrize("fast", [True, False], ids=["numpy path", "generic path"])
@pytest.mark.parametrize("driven", ["random", "policy"])
@pytest.mark.parametrize("name", ENVS, ids=list(ENVS))
def test_rollout_equals_the_collectors_batch(name, driven, fast):
    env = ENVS[name]()
    policy = _policy(env, driven)
    rows = env.batch_size.numel() if env.batch_size else 1
    collector = SyncDataCollector(env, policy, frames_per_batch=STEPS * rows, fast=fast)
    assert collector.fast is fast
    collector.set_seed(5)
    batch = collector.next()
    assert batch["next", "done"].any(), "episodes end inside the batch"

    env.set_seed(5)
    # a callback keeps rollout on the generic path, as fast=False keeps the collector there
    callback = None if fast else (lambda env, td: None)
    with torch.no_grad():
        rolled = env.rollout(STEPS, policy, break_when_any_done=False, callback=callback)
    _assert_same(rolled, batch.exclude("collector"))


@pytest.mark.parametrize("driven", ["random", "policy"])
def test_parallel_env_rollout_equals_the_collectors_batch(driven):
    env = ParallelEnv(2, GymEnv, {"env_id": "CartPole-v1"})
    try:
        policy = _policy(env, driven)
        collector = SyncDataCollector(env, policy, frames_per_batch=2 * STEPS)
        assert not collector.fast
        collector.set_seed(5)
        batch = collector.next()
        env.set_seed(5)
        with torch.no_grad():
            rolled = env.rollout(STEPS, policy, break_when_any_done=False)
        _assert_same(rolled, batch.exclude("collector"))
    finally:
        env.close()
