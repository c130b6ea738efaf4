"""Actor, ValueOperator and ProbabilisticActor keys; exploration type picks sample or mean."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torch.distributions import Normal

from rldata.errors import ConfigError
from rldata.exploration import ExplorationType, set_exploration_type
from rldata.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator


def obs(n=6):
    return TensorDict(observation=torch.randn(n, 3), batch_size=[n])


def test_actor_maps_observation_to_action():
    out = Actor(MLP(3, 2, [4]))(obs())
    assert out["action"].shape == (6, 2)


@pytest.mark.parametrize(
    ("in_keys", "out_key"),
    [(["observation", "action"], "state_action_value"), (None, "state_value")],
)
def test_value_operator_default_out_key(in_keys, out_key):
    n_in = 4 if in_keys else 3
    td = obs().set("action", torch.randn(6, 1))
    out = ValueOperator(MLP(n_in, 1, [4]), in_keys=in_keys)(td)
    assert out[out_key].shape == (6, 1)


def policy(dist=Normal, **kwargs):
    head = TensorDictModule(
        torch.nn.Sequential(MLP(3, 2, [8]), NormalParamExtractor()),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(
        head, in_keys=["loc", "scale"], distribution_class=dist, return_log_prob=True, **kwargs
    )


def test_probabilistic_actor_writes_loc_scale_action_and_log_prob():
    p = policy()
    out = p(obs())
    for key in ("loc", "scale", "action", p.log_prob_key):
        assert key in out, key
    expected = Normal(out["loc"], out["scale"]).log_prob(out["action"])
    torch.testing.assert_close(out[p.log_prob_key].reshape(expected.shape), expected)


@pytest.mark.parametrize("kind", [ExplorationType.MEAN, ExplorationType.DETERMINISTIC])
def test_point_estimate_outside_random_mode(kind):
    p = policy(TanhNormal, distribution_kwargs={"low": -2.0, "high": 2.0})
    td = obs()
    with set_exploration_type(kind):
        out = p(td.clone())
        again = p(td.clone())
    torch.testing.assert_close(out["action"], 2.0 * torch.tanh(out["loc"]))
    torch.testing.assert_close(out["action"], again["action"])


def test_random_mode_samples():
    p = policy()
    td = obs(64)
    with set_exploration_type(ExplorationType.RANDOM):
        a, b = p(td.clone())["action"], p(td.clone())["action"]
    assert not torch.allclose(a, b)


def test_probabilistic_actor_needs_a_tensordict_module():
    with pytest.raises(ConfigError, match="TensorDictModule"):
        ProbabilisticActor(MLP(3, 2), in_keys=["loc", "scale"])
