"""Exploration modules: noise only in RANDOM mode, annealing, bounds, OU reset per trajectory."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rldata.errors import ConfigError
from rldata.exploration import ExplorationType, set_exploration_type
from rldata.modules import AdditiveGaussianModule, EGreedyModule, OrnsteinUhlenbeckModule
from rldata.specs import Bounded, Categorical, OneHot

BOX = Bounded(-1.0, 1.0, shape=(2,))
MAKERS = {
    "egreedy": lambda: EGreedyModule(BOX, eps_init=1.0, eps_end=1.0),
    "gaussian": lambda: AdditiveGaussianModule(BOX, sigma_init=0.5),
    "ou": lambda: OrnsteinUhlenbeckModule(BOX, eps_init=1.0, eps_end=1.0, sigma=5.0),
}


def greedy_td(n=256):
    return TensorDict(action=torch.full((n, 2), 0.25), batch_size=[n])


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize(
    "kind", [ExplorationType.MEAN, ExplorationType.MODE, ExplorationType.DETERMINISTIC]
)
def test_inert_outside_random_mode(name, kind):
    with set_exploration_type(kind):
        out = MAKERS[name]()(greedy_td())
    assert torch.equal(out["action"], torch.full((256, 2), 0.25))


@pytest.mark.parametrize("name", list(MAKERS))
def test_noisy_and_in_bounds_in_random_mode(name):
    with set_exploration_type(ExplorationType.RANDOM):
        out = MAKERS[name]()(greedy_td())
    assert not torch.equal(out["action"], torch.full((256, 2), 0.25))
    assert BOX.is_in(out["action"])


def test_egreedy_annealing():
    mod = EGreedyModule(OneHot(4), eps_init=0.5, eps_end=0.1, annealing_num_steps=100)
    mod.step(50)
    assert mod.eps == pytest.approx(0.3)
    mod.step(1000)
    assert mod.eps == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("spec", "greedy"),
    [(OneHot(4), torch.tensor([1, 0, 0, 0])), (Categorical(4), torch.tensor(0))],
    ids=["one-hot", "categorical"],
)
def test_egreedy_random_fraction_and_encoding(spec, greedy):
    n = 4000
    td = TensorDict(action=greedy.expand(n, *greedy.shape).clone(), batch_size=[n])
    torch.manual_seed(0)
    with set_exploration_type(ExplorationType.RANDOM):
        out = EGreedyModule(spec, eps_init=0.4, eps_end=0.4)(td)
    assert spec.is_in(out["action"])
    changed = (out["action"] != greedy).reshape(n, -1).any(-1).float().mean().item()
    assert changed == pytest.approx(0.4 * 3 / 4, abs=0.03)  # a random draw can equal the greedy one


def test_ou_eps_anneals():
    mod = OrnsteinUhlenbeckModule(BOX, eps_init=1.0, eps_end=0.5, annealing_num_steps=10)
    mod.step(4)
    assert mod.eps == pytest.approx(0.8)


def test_gaussian_sigma_anneals():
    mod = AdditiveGaussianModule(BOX, sigma_init=1.0, sigma_end=0.2, annealing_num_steps=10)
    mod.step(5)
    assert mod.sigma == pytest.approx(0.6)


def test_ou_noise_is_correlated_and_reset_per_trajectory():
    mod = OrnsteinUhlenbeckModule(Bounded(-100.0, 100.0, shape=(1,)), sigma=1.0, dt=1.0)
    with set_exploration_type(ExplorationType.RANDOM):
        td = mod(TensorDict(action=torch.zeros(2000, 1), batch_size=[2000]))
        first = td["_ou_prev_noise"].clone()
        td.set("action", torch.zeros(2000, 1))
        second = mod(td)["_ou_prev_noise"]
        corr = torch.corrcoef(torch.stack([first[:, 0], second[:, 0]]))[0, 1]
        assert corr > 0.5  # the state carries over within a trajectory
        fresh = TensorDict(
            action=torch.zeros(2000, 1),
            _ou_prev_noise=second.clone(),
            is_init=torch.ones(2000, 1, dtype=torch.bool),
            batch_size=[2000],
        )
        restarted = mod(fresh)["_ou_prev_noise"]
    assert abs(torch.corrcoef(torch.stack([second[:, 0], restarted[:, 0]]))[0, 1]) < 0.1


def test_needs_a_spec():
    with pytest.raises(ConfigError, match="spec"):
        EGreedyModule(None)


def test_egreedy_one_coin_per_row_with_a_batched_spec():
    spec = OneHot(3).expand(500)  # an env batch of 500 in the spec's leading dims
    greedy = torch.tensor([1, 0, 0]).expand(500, 3).clone()
    torch.manual_seed(0)
    with set_exploration_type(ExplorationType.RANDOM):
        out = EGreedyModule(spec, eps_init=0.5, eps_end=0.5)(
            TensorDict(action=greedy, batch_size=[500])
        )
    changed = (out["action"] != greedy).any(-1).float().mean().item()
    assert 0.2 < changed < 0.5  # per-row coins, not one coin for the whole batch
