"""Dict observations end to end: each leaf flattened and concatenated in sorted key order.

A small gymnasium env (:mod:`tests.trainers.dict_env`) observes ``{"goal": (2,),
"observation": {"pos": (2,), "vel": (1,)}}`` (nested keys ``("observation", "pos")``), with
a Box or a Discrete action. Every algorithm
family trains a few hundred steps on it (offline from a store, online in the env), saves,
and its ``policy.pt`` reloads, takes the env's Dict observation and acts.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

import rldata
from rldata.envs import GymEnv
from rldata.errors import ConfigError, SpecError
from rldata.specs import Bounded, Categorical, Composite, Unbounded
from rldata.trainers import Trainer, evaluate_run
from rldata.trainers.checkpoint import load_checkpoint
from rldata.trainers.observations import observation_leaves
from rldata.trainers.setup import _check_match as check_match
from rldata.trainers.setup import env_specs
from tests.trainers.conftest import tiny
from tests.trainers.dict_env import BOX_ENV, DISCRETE_ENV, IMAGE_ENV, MODE_ENV

LEAVES = ["goal", ("observation", "pos"), ("observation", "vel")]  # sorted by key


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """300 random rows of each env (Box and Discrete actions)."""
    root = tmp_path_factory.mktemp("dict_obs")
    for name, env_id in (("box", BOX_ENV), ("discrete", DISCRETE_ENV)):
        env = GymEnv(env_id)
        env.set_seed(0)
        rldata.record(env, root / name, frames=300)
    return root


def acts_in_the_env(run, env_id: str) -> torch.Tensor:
    """The run's ``policy.pt`` reloaded (``rldata.load_policy``) driving one episode."""
    env = GymEnv(env_id)
    policy = rldata.load_policy(run, env=env)
    assert policy.in_keys == LEAVES
    rollout = env.rollout(20, policy)
    assert rollout.batch_size == torch.Size([20])
    return rollout["action"]


@pytest.mark.parametrize("algo", ["td3bc", "iql", "cql"])
def test_offline_continuous_algorithms_train_on_a_dict_observation_store(algo, stores, tmp_path):
    run = tmp_path / algo
    summary = Trainer(tiny(algo=algo, dataset=str(stores / "box"), steps=200), run).fit()
    assert summary.updates == 200 and np.isfinite(summary.eval_return_mean)
    actions = acts_in_the_env(run, BOX_ENV)
    assert bool((actions.abs() <= 1).all())
    # the exported policy is the trained one (concatenation and normalization included)
    assert evaluate_run(str(run), episodes=1)["mean"] == pytest.approx(summary.eval_return_mean)


@pytest.mark.parametrize("algo", ["bc", "discrete_cql"])
def test_offline_discrete_algorithms_train_on_a_dict_observation_store(algo, stores, tmp_path):
    run = tmp_path / algo
    summary = Trainer(tiny(algo=algo, dataset=str(stores / "discrete"), steps=200), run).fit()
    assert summary.updates == 200
    actions = acts_in_the_env(run, DISCRETE_ENV)
    assert bool((actions.sum(-1) == 1).all())  # one action of three per step (one-hot)
    assert evaluate_run(str(run), episodes=1)["mean"] == pytest.approx(summary.eval_return_mean)


@pytest.mark.parametrize(("algo", "env_id"), [("sac", BOX_ENV), ("dqn", DISCRETE_ENV)])
def test_online_algorithms_train_in_a_dict_observation_env_and_record_its_leaves(
    algo, env_id, tmp_path
):
    run, store = tmp_path / "run", tmp_path / "store"
    cfg = tiny(
        algo=algo, env=env_id, frames=300, init_random_frames=50, learning_starts=50, frames_per_batch=50,
        store=str(store),
    )  # fmt: skip
    summary = Trainer(cfg, run).fit()
    assert summary.env_steps == 300 and summary.updates > 0
    acts_in_the_env(run, env_id)
    with rldata.open(store) as recorded:  # the raw leaves, not the concatenation
        keys = set(recorded.specs.keys(True, True))
        assert {"goal", ("observation", "pos"), ("observation", "vel")} <= keys
        assert recorded.get(torch.arange(3))["observation", "pos"].shape == (3, 2)


def test_the_saved_policy_acts_on_the_dict_gymnasium_returns(stores, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="td3bc", dataset=str(stores / "box"), steps=20), run).fit()
    policy = rldata.load_policy(run)  # no env: the keys come from the checkpoint
    obs, _ = gym.make(BOX_ENV).reset(seed=1)
    td = TensorDict(
        {
            "goal": torch.as_tensor(obs["goal"]),
            "observation": {k: torch.as_tensor(v) for k, v in obs["observation"].items()},
        },
        batch_size=[],
    )
    action = policy(td)["action"]
    assert action.shape == (1,) and bool(action.abs().le(1).all())


def test_normalization_is_per_key_laid_out_as_the_concatenation(stores, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="iql", dataset=str(stores / "box"), steps=10), run).fit()  # normalizes
    payload = torch.load(run / "policy.pt", weights_only=True)
    arch = json.loads(payload["arch"])
    with rldata.open(stores / "box") as store:
        stats = store.stats()
    names = ["goal", "observation.pos", "observation.vel"]
    want = [m for name in names for m in stats[name]["mean"]]
    assert arch["obs_norm"]["mean"] == pytest.approx(want)
    assert [leaf["key"] for leaf in arch["obs_keys"]] == [["goal"], ["observation", "pos"],
                                                         ["observation", "vel"]]  # fmt: skip
    assert arch["obs_shape"] == [5]


def test_an_interrupted_dict_observation_run_resumes(stores, tmp_path):
    class Interrupt(Exception):
        pass

    def stop_at_50(progress):
        if progress.updates >= 50:
            raise Interrupt

    run = tmp_path / "run"
    cfg = tiny(algo="td3bc", dataset=str(stores / "box"), steps=100, eval_every=40)
    with pytest.raises(Interrupt):
        Trainer(cfg, run, progress=stop_at_50).fit()
    assert load_checkpoint(run)[1]["updates"] == 40
    summary = Trainer(tiny(algo="td3bc", steps=100), run, resume=True).fit()
    assert summary.updates == 100
    acts_in_the_env(run, BOX_ENV)


def test_an_image_shaped_leaf_is_refused_in_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        Trainer(tiny(algo="sac", env=IMAGE_ENV, frames=10), tmp_path / "run").fit()
    message = str(err.value)
    assert "observation key 'pixels' cannot be concatenated" in message
    assert "(8, 8, 3) torch.uint8" in message and "\n" not in message
    assert not (tmp_path / "run").exists()


def test_a_non_numeric_leaf_is_refused():
    spec = Composite({"pos": Unbounded((2,)), "phase": Unbounded((1,), dtype=torch.complex64)})
    with pytest.raises(ConfigError, match=r"key 'phase' cannot be concatenated.*complex64"):
        observation_leaves(spec, "env 'X'")


def test_keys_are_sorted_scalars_give_one_feature_and_a_discrete_leaf_one_per_category():
    spec = Composite({"b": Unbounded(()), "a": Bounded(0, 1, (2, 3)), "c": Categorical(4, ())})
    leaves = observation_leaves(spec, "env 'X'")
    assert [leaf.key for leaf in leaves] == [("a",), ("b",), ("c",)]
    assert [leaf.size for leaf in leaves] == [6, 1, 4]


def test_a_discrete_leaf_is_one_hot_in_training_and_in_the_saved_policy(tmp_path):
    env = GymEnv(MODE_ENV)
    env.set_seed(0)
    rldata.record(env, tmp_path / "store", frames=300)
    run = tmp_path / "run"
    summary = Trainer(tiny(algo="td3bc", dataset=str(tmp_path / "store"), steps=200), run).fit()
    arch = json.loads(torch.load(run / "policy.pt", weights_only=True)["arch"])
    mode = [leaf for leaf in arch["obs_keys"] if leaf["key"] == ["mode"]]
    assert mode == [{"key": ["mode"], "shape": [], "dtype": "int64", "categories": 3}]
    assert arch["obs_shape"] == [8]  # goal 2 + mode 3 + pos 2 + vel 1
    assert arch["obs_norm"]["mean"][2:5] == [0.0, 0.0, 0.0]  # the one-hot keeps its 0/1
    policy = rldata.load_policy(run, env=GymEnv(MODE_ENV))
    assert policy.in_keys == ["goal", "mode", ("observation", "pos"), ("observation", "vel")]
    assert GymEnv(MODE_ENV).rollout(20, policy)["action"].shape == (20, 1)
    assert evaluate_run(str(run), episodes=1)["mean"] == pytest.approx(summary.eval_return_mean)


def test_a_store_of_another_dict_env_is_refused_naming_the_key():
    specs = env_specs(GymEnv(BOX_ENV), BOX_ENV, "td3bc")
    assert specs.obs_dim == 5
    recorded = Composite({"goal": Unbounded((3,)), "action": specs.action_spec})
    recorded[("observation", "pos")] = Unbounded((2,))
    recorded[("observation", "vel")] = Unbounded((1,))
    with pytest.raises(SpecError, match=r"observation key 'goal' of shape \(3,\).*\(2,\)"):
        check_match(SimpleNamespace(specs=recorded), specs, BOX_ENV, "S")


def test_a_tampered_policy_layout_is_refused(stores, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="td3bc", dataset=str(stores / "box"), steps=5), run).fit()
    payload = torch.load(run / "policy.pt", weights_only=True)
    arch = json.loads(payload["arch"])
    arch["obs_keys"][0]["shape"] = [3]  # sizes no longer add up to the first layer
    payload["arch"] = json.dumps(arch)
    torch.save(payload, run / "policy.pt")
    with pytest.raises(ConfigError, match="arch.obs_keys"):
        rldata.load_policy(run)
