"""Policy checkpoints: a weights-only format that round-trips and refuses anything else."""

from __future__ import annotations

import json

import pytest
import torch

from rldata.collectors.policy_checkpoint import load_policy, mlp_policy, save_policy
from rldata.envs import GymEnv
from rldata.errors import ConfigError, SpecError


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
def test_round_trip_gives_the_same_actions(tmp_path, env_id):
    env = GymEnv(env_id)
    policy = mlp_policy(env.observation_spec, env.action_spec, num_cells=[8, 8])
    save_policy(policy, tmp_path / "pi.pt")
    loaded = load_policy(tmp_path / "pi.pt", env=env)
    td = env.reset()
    assert torch.equal(policy(td.clone())["action"], loaded(td.clone())["action"])
    env.action_spec.assert_is_in(loaded(td.clone())["action"])


def test_batched_env_specs_match_an_unbatched_checkpoint(tmp_path):
    save_policy(
        mlp_policy(GymEnv("Pendulum-v1").observation_spec, GymEnv("Pendulum-v1").action_spec),
        tmp_path / "pi.pt",
    )
    env = GymEnv("Pendulum-v1", num_envs=2)
    policy = load_policy(tmp_path / "pi.pt", env=env)
    assert policy(env.reset())["action"].shape == (2, 1)


def test_a_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(3, 1), tmp_path / "module.pt")  # needs unpickling to load
    with pytest.raises(ConfigError, match="weights_only"):
        load_policy(tmp_path / "module.pt")


def test_a_foreign_dict_is_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an rldata policy checkpoint"):
        load_policy(tmp_path / "other.pt")


def test_mismatched_action_bounds_are_a_spec_error(tmp_path):
    env = GymEnv("Pendulum-v1")
    policy = mlp_policy(env.observation_spec, env.action_spec)
    save_policy(policy, tmp_path / "pi.pt")
    payload = torch.load(tmp_path / "pi.pt", weights_only=True)
    arch = json.loads(payload["arch"])
    arch["action_spec"]["high"] = {"fill": 1.0}
    payload["arch"] = json.dumps(arch)
    torch.save(payload, tmp_path / "pi.pt")
    with pytest.raises(SpecError, match="action spec"):
        load_policy(tmp_path / "pi.pt", env=env)


def test_only_mlp_policies_can_be_saved(tmp_path):
    from tensordict.nn import TensorDictModule

    with pytest.raises(ConfigError):
        save_policy(
            TensorDictModule(torch.nn.Linear(3, 1), ["observation"], ["action"]), tmp_path / "x.pt"
        )
