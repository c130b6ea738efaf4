"""SerialEnv, ParallelEnv (2 workers) and GymEnv(num_envs=n): ``[n]`` batches that reset per row."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from envs_toys import ToyGym
from tensordict import TensorDict

from rldata.envs import (
    GymEnv,
    GymWrapper,
    ParallelEnv,
    SerialEnv,
    StepCounter,
    TransformedEnv,
)
from rldata.errors import ConfigError, EnvClosedError, EnvNotFoundError, SpecError
from rldata.ted import validate

CARTPOLE = partial(GymEnv, "CartPole-v1")

BATCHED = {
    "serial": lambda: SerialEnv(2, CARTPOLE),
    "parallel": lambda: ParallelEnv(2, CARTPOLE),
    "gym-vector": lambda: GymEnv("CartPole-v1", num_envs=2),
}


@pytest.fixture(params=sorted(BATCHED))
def batched(request):
    env = BATCHED[request.param]()
    yield env
    env.close()


def test_batched_specs_and_rollout_shapes(batched):
    assert batched.batch_size == (2,)
    assert batched.observation_spec["observation"].shape == (2, 4)
    assert batched.action_spec.shape == (2, 2)
    assert batched.done_spec["done"].shape == (2, 1)
    rows = batched.rollout(5)
    assert rows.batch_size[0] == 2 and rows.batch_size[1] <= 5
    validate(rows.reshape(-1))


def test_finished_sub_envs_reset_alone_and_keep_their_final_transition(batched):
    batched.set_seed(1)
    rows = batched.rollout(120, break_when_any_done=False)
    assert rows.batch_size == (2, 120)
    done = rows["next", "done"].squeeze(-1)
    assert done.sum() >= 4, "CartPole with random actions ends episodes every ~20 steps"
    obs, next_obs = rows["observation"], rows["next", "observation"]
    for i in range(2):
        for t in range(119):
            if done[i, t]:
                # the final observation is the real terminal state (pole or cart out of bounds)
                x, theta = next_obs[i, t, 0].abs(), next_obs[i, t, 2].abs()
                assert x > 2.4 or theta > 0.2095, (i, t)
                assert not torch.equal(obs[i, t + 1], next_obs[i, t])
                assert not rows["done"][i, t + 1].any()
            else:
                assert torch.equal(obs[i, t + 1], next_obs[i, t]), (i, t)
    # the two sub-envs do not end their episodes in lockstep
    assert not torch.equal(done[0], done[1])


def test_partial_reset_touches_only_the_masked_rows(batched):
    root = batched.reset()
    for _ in range(3):
        root = batched.step_mdp(batched.step(batched.rand_action(root)))
    root["_reset"] = torch.tensor([[True], [False]])
    fresh = batched.reset(root)
    assert torch.equal(fresh["observation"][1], root["observation"][1])
    assert not torch.equal(fresh["observation"][0], root["observation"][0])
    assert fresh["observation"][0].abs().max() <= 0.05, "CartPole starts within +-0.05"


def test_reset_with_only_a_mask_gives_a_full_batch(batched):
    batched.reset()
    fresh = batched.reset(TensorDict({"_reset": torch.tensor([[False], [True]])}, batch_size=[2]))
    assert fresh["observation"].shape == (2, 4)


def test_set_seed_makes_batched_rollouts_reproducible(batched):
    batched.set_seed(7)
    first = batched.rollout(30, break_when_any_done=False)
    batched.set_seed(7)
    second = batched.rollout(30, break_when_any_done=False)
    assert (first == second).all()
    assert not torch.equal(first["observation"][0], first["observation"][1])


def test_parallel_env_matches_serial_env_step_for_step():
    serial, parallel = SerialEnv(2, CARTPOLE), ParallelEnv(2, CARTPOLE)
    try:
        assert serial.set_seed(5) == parallel.set_seed(5)
        a = serial.rollout(40, break_when_any_done=False)
        b = parallel.rollout(40, break_when_any_done=False)
        assert (a == b).all()
    finally:
        serial.close()
        parallel.close()


def test_parallel_env_runs_transforms_inside_the_workers():
    def make():
        return TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=3))

    env = ParallelEnv(2, make)
    try:
        assert "step_count" in env.observation_spec
        rows = env.rollout(7, break_when_any_done=False)
        assert rows["next", "step_count"][0].squeeze(-1).tolist() == [1, 2, 3, 1, 2, 3, 1]
        assert rows["next", "truncated"][1].squeeze(-1).tolist() == [False, False, True] * 2 + [
            False
        ]
    finally:
        env.close()


@pytest.mark.parametrize("batched_cls", [SerialEnv, ParallelEnv])
def test_transformed_batched_env_counts_per_row(batched_cls):
    env = TransformedEnv(batched_cls(2, lambda: GymWrapper(ToyGym(length=3))), StepCounter())
    try:
        rows = env.rollout(5, break_when_any_done=False)
        assert rows["step_count"].squeeze(-1).tolist() == [[0, 1, 2, 0, 1]] * 2
        assert rows["next", "done"].squeeze(-1).tolist() == [[False, False, True, False, False]] * 2
    finally:
        env.close()


def test_parallel_env_reports_worker_errors_in_the_parent():
    with pytest.raises(EnvNotFoundError, match="Pendulm-v1"):
        ParallelEnv(2, partial(GymEnv, "Pendulm-v1"))
    env = ParallelEnv(2, partial(GymEnv, "Pendulum-v1", validate_actions=True))
    try:
        td = env.reset()
        td["action"] = torch.full((2, 1), 9.0)
        with pytest.raises(SpecError, match="outside the action spec"):
            env.step(td)
        # the workers survive a refused action
        assert env.rollout(2).batch_size == (2, 2)
    finally:
        env.close()


def test_parallel_env_workers_share_memory_and_stop_on_close():
    env = ParallelEnv(2, partial(GymEnv, "Pendulum-v1"))
    assert env._root_buf.is_shared() and env._next_buf.is_shared()
    procs = list(env._procs)
    assert len(procs) == 2 and all(p.is_alive() for p in procs)
    env.close()
    assert all(not p.is_alive() for p in procs)
    with pytest.raises(EnvClosedError):
        env.reset()


def test_batched_envs_refuse_bad_sizes():
    with pytest.raises(ConfigError, match="num_workers must be >= 1"):
        SerialEnv(0, CARTPOLE)
    with pytest.raises(ConfigError, match="unbatched sub-envs"):
        SerialEnv(2, partial(GymEnv, "CartPole-v1", num_envs=2))


def test_reset_with_an_all_false_mask_changes_nothing(batched):
    root = batched.reset()
    root["_reset"] = torch.zeros(2, 1, dtype=torch.bool)
    same = batched.reset(root)
    assert torch.equal(same["observation"], root["observation"])
    assert "_reset" not in same


@pytest.mark.slow
def test_parallel_env_with_spawned_workers():
    env = ParallelEnv(2, partial(GymEnv, "Pendulum-v1"), mp_start_method="spawn")
    try:
        assert env.rollout(3).batch_size == (2, 3)
    finally:
        env.close()
