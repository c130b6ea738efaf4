"""Collecting from gymnasium envs: the numpy fast path equals the generic TensorDict path,
and trajectories keep TED invariants for single and batched (vector) envs."""

from __future__ import annotations

import pytest
import torch
from ted_checks import assert_ted_trajectories, per_env_streams

from rldata.collectors import SyncDataCollector
from rldata.collectors.policy_checkpoint import mlp_policy
from rldata.envs import GymEnv, ParallelEnv, SerialEnv


def serial(n, **kwargs):
    return SerialEnv(n, GymEnv, kwargs)


CASES = {
    # name: (env maker, kwargs)
    "pendulum single": (GymEnv, {"env_id": "Pendulum-v1", "max_episode_steps": 13}),
    "pendulum vector of 3": (
        GymEnv,
        {"env_id": "Pendulum-v1", "num_envs": 3, "max_episode_steps": 9},
    ),
    "cartpole one-hot": (GymEnv, {"env_id": "CartPole-v1"}),
    "cartpole categorical vector": (
        GymEnv,
        {"env_id": "CartPole-v1", "num_envs": 2, "categorical_action_encoding": True},
    ),
    "pendulum SerialEnv of 2": (serial, {"n": 2, "env_id": "Pendulum-v1", "max_episode_steps": 11}),
}


def _collect(make, kwargs, policy, fast, batches=3, max_frames_per_traj=None, **options):
    env = make(**kwargs)
    rows = env.batch_size.numel() if env.batch_size else 1
    collector = SyncDataCollector(
        env,
        policy,
        frames_per_batch=24 * rows,
        total_frames=24 * rows * batches,
        fast=fast,
        max_frames_per_traj=max_frames_per_traj,
        **options,
    )
    collector.set_seed(3)
    out = list(collector)
    assert collector.fast is fast
    return out, env


@pytest.mark.parametrize("driven", ["random", "policy", "policy after random frames"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_fast_path_equals_generic_path(case, driven):
    """One loop, two inner paths: the numpy path gives the generic path's batches exactly."""
    make, kwargs = CASES[case]
    probe = make(**kwargs)
    torch.manual_seed(0)
    policy = mlp_policy(
        probe.observation_spec, probe.action_spec, num_cells=[8], batch_dims=len(probe.batch_size)
    )
    if driven == "random":
        policy = None
    init_random = 24 * (probe.batch_size.numel() if probe.batch_size else 1)
    extra = {"init_random_frames": init_random} if driven.endswith("random frames") else {}
    fast, _ = _collect(make, kwargs, policy, fast=True, **extra)
    slow, _ = _collect(make, kwargs, policy, fast=False, **extra)
    assert len(fast) == len(slow) == 3
    for a, b in zip(fast, slow):
        assert a.batch_size == b.batch_size
        assert sorted(map(str, a.keys(True, True))) == sorted(map(str, b.keys(True, True)))
        for key in b.keys(True, True):
            assert a.get(key).dtype == b.get(key).dtype, key
            torch.testing.assert_close(a.get(key), b.get(key), msg=f"{key} differs")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_trajectories_are_continuous_and_cut_at_dones(case, fast):
    make, kwargs = CASES[case]
    batches, env = _collect(make, kwargs, None, fast=fast, batches=4)
    streams = per_env_streams(batches)
    assert_ted_trajectories(streams)
    assert sum(int(s["next", "done"].sum()) for s in streams) >= 2  # boundaries were exercised


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_max_frames_per_traj_truncates(fast):
    batches, _ = _collect(
        GymEnv, {"env_id": "Pendulum-v1"}, None, fast=fast, batches=2, max_frames_per_traj=5
    )
    stream = per_env_streams(batches)[0]
    assert_ted_trajectories([stream])
    assert stream["next", "truncated"].reshape(-1).nonzero().flatten().tolist() == list(
        range(4, 48, 5)
    )


def test_parallel_env_goes_through_the_generic_loop():
    env = ParallelEnv(2, GymEnv, {"env_id": "Pendulum-v1", "max_episode_steps": 6})
    try:
        collector = SyncDataCollector(env, None, frames_per_batch=20, total_frames=60)
        assert not collector.fast
        batches = list(collector)
    finally:
        env.close()
    assert batches[0].batch_size == torch.Size([2, 10])
    assert_ted_trajectories(per_env_streams(batches))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
@pytest.mark.parametrize("how", ["env.set_seed", "collector.set_seed"])
def test_seeded_collections_repeat_exactly(fast, how):
    from rldata.envs.utils import RandomPolicy

    def once():
        torch.manual_seed(0)
        env = GymEnv("CartPole-v1", num_envs=2)
        if how == "env.set_seed":
            env.set_seed(7)
        c = SyncDataCollector(env, RandomPolicy(env.action_spec), frames_per_batch=40, fast=fast)
        if how == "collector.set_seed":
            c.set_seed(7)
        return c.next()

    a, b = once(), once()
    assert (a == b).all()


class Fixed(torch.nn.Module):
    def __init__(self, value) -> None:
        super().__init__()
        self.value = value

    def forward(self, obs):
        return torch.full((*obs.shape[:-1], 1), self.value)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "generic"])
def test_out_of_bounds_actions_pass_to_gymnasium_unless_validated(fast):
    from tensordict.nn import TensorDictModule

    from rldata.errors import SpecError

    policy = TensorDictModule(Fixed(5.0), in_keys=["observation"], out_keys=["action"])
    # default, as in TorchRL: the action goes to gymnasium (Pendulum clips it) and is recorded
    collector = SyncDataCollector(GymEnv("Pendulum-v1"), policy, frames_per_batch=4, fast=fast)
    assert collector.fast is fast
    assert torch.all(collector.next()["action"] == 5.0)
    checked = GymEnv("Pendulum-v1", validate_actions=True)
    assert checked.validate_actions is True
    collector = SyncDataCollector(checked, policy, frames_per_batch=4, fast=fast)
    assert collector.fast is fast
    with pytest.raises(SpecError, match="outside the action spec"):
        collector.next()
