"""Discrete actions end to end: ``dqn`` online, ``discrete_cql`` and ``bc`` offline, in the CLI.

Datasets come in both encodings a user brings: one-hot rows (``rldata collect
--one-hot-actions``, TorchRL's ``GymEnv`` default) and integer indices (``rldata collect``'s
default: gymnasium / Minari / d3rlpy, ``categorical_action_encoding``).
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from tensordict import TensorDict

import rldata
from rldata.collectors.policy_checkpoint import load_policy
from rldata.envs import GymEnv
from rldata.errors import ConfigError, SpecError
from rldata.specs import Bounded, Categorical, Composite, OneHot, Unbounded
from rldata.trainers import TrainConfig, Trainer
from rldata.trainers import run as run_module
from rldata.trainers.algorithms import ALGORITHMS
from rldata.trainers.networks import EnvSpecs, action_values, greedy_actor
from rldata.trainers.setup import _check_match as check_match
from rldata_cli.main import rldata as cli

TINY = ["--hidden", "32,32", "--batch-size", "32", "--eval-episodes", "1", "--quiet"]
DISCRETE = sorted(name for name, algo in ALGORITHMS.items() if algo.discrete)
OFFLINE_DISCRETE = sorted(n for n in DISCRETE if ALGORITHMS[n].offline)
CONTINUOUS = sorted(name for name, algo in ALGORITHMS.items() if not algo.discrete)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    """300 random CartPole rows one-hot (``rldata collect --one-hot-actions``) and as indices."""
    root = tmp_path_factory.mktemp("cartpole")
    result = run("collect", "CartPole-v1", "--frames", 300, "--out", root / "one_hot",
                 "--one-hot-actions", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    env.set_seed(0)
    rldata.record(env, root / "index", frames=300)
    return root


def test_the_recorded_encodings_are_the_two_the_losses_read(cartpole):
    with rldata.open(cartpole / "one_hot") as store:
        assert isinstance(store.specs["action"], OneHot)
    with rldata.open(cartpole / "index") as store:
        assert isinstance(store.specs["action"], Categorical)


def test_dqn_online_from_the_cli(tmp_path):
    out = tmp_path / "run"
    result = run(
        "train", "--algo", "dqn", "--env", "CartPole-v1", "--frames", 1300, "--log-every", 50,
        "--store", tmp_path / "store", "--out", out, *TINY,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    # rl-zoo's schedule: 256 frames a round, 0.5 updates a frame after the first 1000
    assert summary["env_steps"] == 1536 and summary["updates"] == (1536 - 1000) // 2
    rows = [r for r in csv.DictReader((out / "metrics.csv").open()) if r["kind"] == "train"]
    assert rows and float(rows[-1]["eps"]) == pytest.approx(0.04)  # decayed over 16% of 1300
    assert float(rows[-1]["loss_qvalue"]) >= 0.0
    with rldata.open(tmp_path / "store") as store:
        actions = store.column("action")
        assert len(store) == 1536 and set(actions.sum(-1).tolist()) == {1}  # one-hot rows
    policy = load_policy(out, env=GymEnv("CartPole-v1"))
    assert policy(rldata.envs.GymEnv("CartPole-v1").reset())["action"].sum() == 1
    again = run("collect", "CartPole-v1", "--frames", 50, "--policy", out, "--out",
                tmp_path / "by_dqn", "--quiet")  # fmt: skip
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("encoding", ["one_hot", "index"])
@pytest.mark.parametrize("algo", OFFLINE_DISCRETE)
def test_offline_discrete_from_either_encoding(cartpole, tmp_path, algo, encoding):
    out = tmp_path / "run"
    result = run("train", "--algo", algo, "--dataset", cartpole / encoding, "--steps", 30,
                 "--eval-every", 15, "--out", out, *TINY)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["updates"] == 30 and summary["eval_env"] == "CartPole-v1"
    assert len(summary["evaluations"]) == 2
    assert load_policy(out, env=GymEnv("CartPole-v1")) is not None


def test_dqn_hard_copies_its_target_every_interval(cartpole, monkeypatch):
    cfg = TrainConfig(algo="dqn", dataset=str(cartpole / "one_hot"), steps=7,
                      target_update_interval=3, hidden=[16], batch_size=16,
                      eval_episodes=1, eval_every=100)  # fmt: skip
    seen: list[bool] = []
    update = run_module.Run.update

    def watched(self):
        update(self)
        online = self.agent.loss.value_network.module[0].weight
        seen.append(torch.equal(online, self.agent.loss.target_value_network.module[0].weight))

    monkeypatch.setattr(run_module.Run, "update", watched)
    Trainer(cfg).fit()
    assert seen == [False, False, True, False, False, True, False]


@pytest.mark.parametrize("spec", [OneHot(3), Categorical(3), Categorical(3, shape=(1,))])
def test_the_greedy_actor_writes_the_envs_encoding(spec):
    specs = EnvSpecs(obs_dim=4, action_spec=spec)
    actor = greedy_actor(action_values(specs, [8]), specs)
    td = TensorDict({"observation": torch.randn(5, 4)}, batch_size=[5])
    out = actor(td)
    assert out["action"].shape == (5, *spec.shape)
    index = out["action_value"].argmax(-1)
    want = spec.to_one_hot(index) if isinstance(spec, OneHot) else index.reshape(5, *spec.shape)
    torch.testing.assert_close(out["action"], want)


@pytest.mark.parametrize("algo", DISCRETE)
def test_a_discrete_algorithm_refuses_a_box_env(algo, tmp_path):
    result = run("train", "--algo", algo, "--env", "Pendulum-v1", "--frames", 10,
                 "--out", tmp_path / "r", "--quiet")  # fmt: skip
    assert result.exit_code == 1
    assert f"algorithm {algo!r} needs a Discrete action space" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize("algo", CONTINUOUS)
def test_a_continuous_algorithm_refuses_a_discrete_env(algo):
    with pytest.raises(ConfigError, match=f"algorithm {algo!r} needs a continuous"):
        Trainer(TrainConfig(algo=algo, env="CartPole-v1", frames=10)).fit()


@pytest.mark.parametrize("recorded", [OneHot(3), Categorical(3), Categorical(2, shape=(1,)),
                                      Bounded(-1.0, 1.0, (2,))])  # fmt: skip
def test_a_dataset_whose_actions_do_not_fit_is_refused(recorded):
    store = SimpleNamespace(specs=Composite({"observation": Unbounded((4,)), "action": recorded}))
    specs = EnvSpecs(obs_dim=4, action_spec=OneHot(2))
    if isinstance(recorded, Categorical) and recorded.n == 2:
        check_match(store, specs, "CartPole-v1", "ds")  # indices of the same 2 actions fit
        return
    with pytest.raises(SpecError, match="^dataset 'ds' has action spec .* 2 discrete actions$"):
        check_match(store, specs, "CartPole-v1", "ds")


@pytest.mark.parametrize("field, value", [("eps_init", 1.5), ("eps_end", -0.1),
                                          ("exploration_fraction", 0.0),
                                          ("target_update_interval", 0)])  # fmt: skip
def test_exploration_and_target_fields_are_checked(field, value):
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        TrainConfig(algo="dqn", **{field: value})
