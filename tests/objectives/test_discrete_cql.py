"""DiscreteCQLLoss (the conservative term by hand, its sign) and DiscreteBCLoss (cross-entropy)."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict.nn import TensorDictModule

from rldata.errors import ConfigError
from rldata.objectives import DiscreteBCLoss, DiscreteCQLLoss, DQNLoss
from tests.objectives.discrete_helpers import ENCODINGS, OBS, B, N, discrete_batch, linear_q


def _weight(seed: int) -> torch.Tensor:
    return torch.randn(N, OBS, generator=torch.Generator().manual_seed(seed))


def _index(seed: int) -> torch.Tensor:
    return torch.randint(0, N, (B,), generator=torch.Generator().manual_seed(seed + 50))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 4.0])
@pytest.mark.parametrize("seed", range(3))
def test_conservative_term_by_hand(encoding: str, alpha: float, seed: int) -> None:
    w, index = _weight(seed), _index(seed)
    td = discrete_batch(index, encoding, seed)
    out = DiscreteCQLLoss(linear_q(w), alpha=alpha, gamma=0.9)(td)
    gap = 0.0
    for i in range(B):
        q = [float(w[a] @ td["observation"][i]) for a in range(N)]
        gap += math.log(sum(math.exp(v) for v in q)) - q[int(index[i])]
    gap /= B
    assert float(out["cql_gap"]) == pytest.approx(gap, rel=1e-5)
    assert float(out["loss_cql"].detach()) == pytest.approx(alpha * gap, rel=1e-5, abs=1e-7)
    dqn = DQNLoss(linear_q(w), gamma=0.9)(td)
    assert float(out["loss_qvalue"].detach()) == pytest.approx(float(dqn["loss_qvalue"].detach()))


class _Table(torch.nn.Module):
    """``Q(s_i, .)`` as a free table (one row per batch row): gradients read off directly."""

    def __init__(self, q: torch.Tensor) -> None:
        super().__init__()
        self.q = torch.nn.Parameter(q.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q


@pytest.mark.parametrize("alpha", [0.5, 2.0])
@pytest.mark.parametrize("seed", range(10))
def test_penalty_is_positive_and_pushes_the_data_action_up(alpha: float, seed: int) -> None:
    index = _index(seed)
    q = torch.randn(B, N, generator=torch.Generator().manual_seed(seed)) * 3
    table = _Table(q)
    loss = DiscreteCQLLoss(TensorDictModule(table, ["observation"], ["action_value"]), alpha=alpha)
    out = loss(discrete_batch(index, "one_hot", seed))
    assert float(out["cql_gap"]) > 0.0  # logsumexp_a Q > Q(a_data) always
    out["loss_cql"].backward()
    grad = loss.value_network.module.q.grad
    data = torch.nn.functional.one_hot(index, N).bool()
    # d/dQ [alpha mean(logsumexp Q - Q_data)] = alpha (softmax(Q) - onehot) / B
    torch.testing.assert_close(grad, alpha * (torch.softmax(q, -1) - data.float()) / B)
    assert bool((grad[data] < 0).all()) and bool((grad[~data] > 0).all())


def test_negative_alpha_is_refused() -> None:
    with pytest.raises(ConfigError, match="alpha must be >= 0, got -1"):
        DiscreteCQLLoss(linear_q(_weight(0)), alpha=-1.0)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("seed", range(3))
def test_bc_is_the_cross_entropy_of_the_data_action(encoding: str, seed: int) -> None:
    w, index = _weight(seed), _index(seed)
    td = discrete_batch(index, encoding, seed)
    out = DiscreteBCLoss(linear_q(w))(td)
    nll, hits = 0.0, 0
    for i in range(B):
        logits = [float(w[a] @ td["observation"][i]) for a in range(N)]
        nll += math.log(sum(math.exp(v) for v in logits)) - logits[int(index[i])]
        hits += int(max(range(N), key=lambda a: logits[a]) == int(index[i]))
    assert float(out["loss_bc"].detach()) == pytest.approx(nll / B, rel=1e-5)
    assert float(out["accuracy"]) == pytest.approx(hits / B)


def test_bc_has_no_targets() -> None:
    loss = DiscreteBCLoss(linear_q(_weight(0)))
    assert loss.target_pairs() == ([], [])
    assert [n for n, _ in loss.named_parameters()] == ["actor_network.module.weight"]
