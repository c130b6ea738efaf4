"""Each loss learns: on a one-step bandit, reward = -(a - 0.5)^2, the policy moves to 0.5.

The data are uniform random actions (offline, like a store); every transition ends in a
terminal state, so the critic's target is the reward. A few hundred updates suffice.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor

from rldata.exploration import ExplorationType, set_exploration_type
from rldata.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
from rldata.objectives import (
    CQLLoss,
    DDPGLoss,
    IQLLoss,
    REDQLoss,
    SACLoss,
    SoftUpdate,
    TD3BCLoss,
    TD3Loss,
)
from rldata.specs import Bounded

BEST, N = 0.5, 512
SPEC = Bounded(-2.0, 2.0, shape=(1,))


def bandit() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    action = torch.rand(N, 1, generator=g) * 4 - 2
    end = torch.ones(N, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.randn(N, 3, generator=g),
            "action": action,
            "next": {
                "observation": torch.randn(N, 3, generator=g),
                "reward": -((action - BEST) ** 2),
                "terminated": end,
                "done": end,
            },
        },
        batch_size=[N],
    )


def q():
    return ValueOperator(
        MLP(4, 1, [32, 32], activation_class=torch.nn.ReLU), in_keys=["observation", "action"]
    )


def det():
    return Actor(MLP(3, 1, [32], activation_class=torch.nn.ReLU), spec=SPEC)


def prob():
    head = TensorDictModule(
        torch.nn.Sequential(
            MLP(3, 2, [32], activation_class=torch.nn.ReLU), NormalParamExtractor()
        ),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(
        head,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0},
    )


CASES = {
    "ddpg": lambda: DDPGLoss(det(), q()),
    "td3": lambda: TD3Loss(det(), q()),
    "td3_bc": lambda: TD3BCLoss(det(), q(), alpha=10.0),
    "sac": lambda: SACLoss(prob(), q(), alpha_init=0.05),
    "redq": lambda: REDQLoss(prob(), q(), num_qvalue_nets=4, alpha_init=0.05),
    "iql": lambda: IQLLoss(prob(), q(), ValueOperator(MLP(3, 1, [32])), temperature=10.0),
    "cql": lambda: CQLLoss(prob(), q(), alpha_init=0.05, min_q_weight=0.5, num_random=3),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: one thread is fastest, and immune to a busy second core."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", list(CASES))
def test_policy_moves_to_the_best_action(name):
    torch.manual_seed(0)
    loss = CASES[name]()
    optim = torch.optim.Adam(loss.parameters(), lr=3e-3)
    updater = SoftUpdate(loss, tau=0.05)
    data = bandit()
    for _ in range(300):
        out = loss(data[torch.randint(N, (64,))])
        optim.zero_grad()
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        optim.step()
        updater.step()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        action = loss.actor_network(data[:64].select("observation"))["action"]
    assert (action.mean() - BEST).abs() < 0.25, float(action.mean())
