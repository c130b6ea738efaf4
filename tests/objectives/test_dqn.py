"""DQNLoss: the double-DQN target by hand, both action encodings, target updates, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictSequential

from rldata.errors import TedFormatError
from rldata.modules import QValueModule
from rldata.objectives import DQNLoss, HardUpdate, SoftUpdate
from rldata.objectives.common import action_indices
from rldata.specs import OneHot
from tests.objectives.discrete_helpers import (
    ENCODINGS,
    OBS,
    B,
    N,
    discrete_batch,
    encode,
    huber,
    linear_q,
)

GAMMA = 0.9


def _weights(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, OBS, generator=g), torch.randn(N, OBS, generator=g)


def _loss(
    seed: int, double: bool, loss_function: str = "smooth_l1"
) -> tuple[DQNLoss, torch.Tensor]:
    """A loss whose target net holds ``w_target`` and whose online net holds ``w_online``."""
    w_target, w_online = _weights(seed)
    loss = DQNLoss(linear_q(w_target), double_dqn=double, loss_function=loss_function, gamma=GAMMA)
    with torch.no_grad():
        loss.value_network.module.weight.copy_(w_online)
    return loss, w_target


def _by_hand(td, w_online, w_target, index, double: bool, kind: str) -> float:
    """The loss row by row in Python floats."""
    total = 0.0
    for i in range(td.shape[0]):
        s, s2 = td["observation"][i], td["next", "observation"][i]
        q = [float(w_online[a] @ s) for a in range(N)]
        q2_online = [float(w_online[a] @ s2) for a in range(N)]
        q2_target = [float(w_target[a] @ s2) for a in range(N)]
        pick = q2_online if double else q2_target
        a_next = max(range(N), key=lambda a: pick[a])
        live = 0.0 if bool(td["next", "terminated"][i]) else 1.0
        y = float(td["next", "reward"][i]) + GAMMA * live * q2_target[a_next]
        err = q[int(index[i])] - y
        total += huber(err) if kind == "smooth_l1" else err * err
    return total / td.shape[0]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("double", [True, False])
@pytest.mark.parametrize("kind", ["smooth_l1", "l2"])
@pytest.mark.parametrize("seed", range(3))
def test_loss_matches_hand_computed_target(
    encoding: str, double: bool, kind: str, seed: int
) -> None:
    index = torch.randint(0, N, (B,), generator=torch.Generator().manual_seed(seed + 100))
    td = discrete_batch(index, encoding, seed)
    loss, w_target = _loss(seed, double, kind)
    out = loss(td)
    want = _by_hand(td, loss.value_network.module.weight.detach(), w_target, index, double, kind)
    assert float(out["loss_qvalue"]) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_double_and_vanilla_targets_differ_where_the_argmaxes_differ() -> None:
    # online prefers action 0 at s', the target prefers action 1 and values action 0 at 10
    w_online = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    w_target = torch.tensor([[10.0, 0.0], [20.0, 0.0], [0.0, 0.0]])
    index = torch.tensor([0, 1, 2, 0])
    td = discrete_batch(index, "index")
    td["next", "observation"] = torch.tensor([[1.0, 0.0]]).expand(B, OBS).clone()
    td["next", "reward"] = torch.zeros(B, 1)
    targets = {}
    for double in (True, False):
        loss = DQNLoss(linear_q(w_target), double_dqn=double, gamma=GAMMA)
        with torch.no_grad():
            loss.value_network.module.weight.copy_(w_online)
        targets[double] = loss._target(td).squeeze(-1)
    live = (~td["next", "terminated"].squeeze(-1)).float()
    torch.testing.assert_close(targets[True], GAMMA * 10.0 * live)
    torch.testing.assert_close(targets[False], GAMMA * 20.0 * live)


def test_gradient_reaches_the_online_network_only() -> None:
    loss, _ = _loss(0, True)
    loss(discrete_batch(torch.tensor([0, 1, 2, 0]), "one_hot"))["loss_qvalue"].backward()
    assert loss.value_network.module.weight.grad is not None
    assert [n for n, _ in loss.named_parameters()] == ["value_network.module.weight"]


def test_hard_update_copies_every_interval() -> None:
    loss, w_target = _loss(1, True)
    updater = HardUpdate(loss, value_network_update_interval=3)
    online = loss.value_network.module.weight
    target = loss.target_value_network.module.weight
    for _ in range(2):
        updater.step()
        torch.testing.assert_close(target, w_target)
    updater.step()
    torch.testing.assert_close(target, online.detach())


def test_soft_update_moves_a_fraction_tau() -> None:
    loss, w_target = _loss(2, True)
    online = loss.value_network.module.weight.detach().clone()
    SoftUpdate(loss, tau=0.25).step()
    torch.testing.assert_close(
        loss.target_value_network.module.weight, w_target + 0.25 * (online - w_target)
    )


def test_accepts_a_q_value_actor() -> None:
    w_target, _ = _weights(0)
    actor = TensorDictSequential(linear_q(w_target), QValueModule(spec=OneHot(N)))
    loss = DQNLoss(actor, gamma=GAMMA)
    td = discrete_batch(torch.tensor([0, 1, 2, 0]), "index")
    want = _by_hand(td, w_target, w_target, td["action"], True, "smooth_l1")
    assert float(loss(td)["loss_qvalue"]) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_action_indices_reads_every_encoding(n: int, encoding: str) -> None:
    index = torch.arange(11) % n
    torch.testing.assert_close(action_indices(encode(index, n, encoding), n), index)


@pytest.mark.parametrize(
    "action, problem",
    [
        (torch.zeros(4, 2, dtype=torch.int64), "shape (4, 2)"),
        (torch.zeros(4, 3, 1, dtype=torch.int64), "shape (4, 3, 1)"),
        (torch.tensor([0, 1, 3, 0]), "[0, 3)"),
        (torch.tensor([0, -1, 2, 0]), "[0, 3)"),
        (torch.tensor([0.5, 1.0, 2.0, 0.0]), "float32"),
        (torch.tensor([[1, 1, 0]] * 4), "must be one-hot"),
        (torch.tensor([[0.2, 0.5, 0.3]] * 4), "must be one-hot"),
    ],
)
def test_bad_actions_are_refused_in_one_line(action: torch.Tensor, problem: str) -> None:
    td = discrete_batch(torch.zeros(B, dtype=torch.long), "index")
    td["action"] = action
    loss, _ = _loss(0, True)
    with pytest.raises(TedFormatError) as err:
        loss(td)
    assert "'action'" in str(err.value) and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_nested_keys_through_set_keys() -> None:
    index = torch.tensor([0, 1, 2, 0])
    td = discrete_batch(index, "one_hot", 3)
    loss, _ = _loss(3, True)
    plain = loss(td)
    nested = td.clone()
    nested["agent", "act"] = nested.pop("action")
    nested["next", "agent", "r"] = nested["next"].pop("reward")
    nested["next", "agent", "end"] = nested["next"].pop("terminated")
    loss.set_keys(action=("agent", "act"), reward=("agent", "r"), terminated=("agent", "end"))
    torch.testing.assert_close(loss(nested)["loss_qvalue"], plain["loss_qvalue"])
    with pytest.raises(TedFormatError, match="'agent.act'"):
        loss(td)
