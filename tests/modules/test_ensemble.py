"""QEnsemble: one batched call equals N separate networks; subsets, detach, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import MLP, FuncEnsemble, QEnsemble


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_batched_call_equals_each_member(act):
    torch.manual_seed(0)
    ens = QEnsemble(MLP(4, 1, [8, 8], activation_class=act), num_nets=5)
    x, a = torch.randn(7, 3), torch.randn(7, 1)
    out = ens(x, a)
    assert out.shape == (5, 7, 1)
    for i in range(5):
        torch.testing.assert_close(out[i], ens.member(i)(torch.cat([x, a], -1)))


def test_per_member_inputs_and_weight_subsets():
    ens = QEnsemble(MLP(2, 1, [4]), num_nets=4)
    x = torch.randn(4, 3, 2)
    full = ens(x)
    idx = torch.tensor([2, 0])
    sub = ens(x[idx], weights=[w[idx] for w in ens.weights()])
    torch.testing.assert_close(sub, full[idx])


def test_detach_blocks_weight_gradients_not_input_gradients():
    ens = QEnsemble(MLP(2, 1, [4]), num_nets=3)
    x = torch.randn(5, 2, requires_grad=True)
    ens(x, detach=True).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in ens.parameters())


@pytest.mark.parametrize(
    "template",
    [
        MLP(out_features=1, num_cells=[4]),
        nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1)),
    ],
    ids=["lazy", "layer-with-parameters"],
)
def test_unstackable_networks_are_refused(template):
    with pytest.raises(ConfigError, match="QEnsemble"):
        QEnsemble(template, 2)


class TwoInputCritic(nn.Module):
    """Not an MLP: a layer norm, and two inputs handled by the module itself."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([obs, action], -1))


def test_func_ensemble_equals_each_member_of_any_module():
    torch.manual_seed(0)
    ens = FuncEnsemble(TwoInputCritic(), num_nets=3)
    obs, act = torch.randn(6, 3), torch.randn(6, 1)
    out = ens(obs, act)
    assert out.shape == (3, 6, 1)
    for i in range(3):
        member = TwoInputCritic()
        member.load_state_dict(
            {n: getattr(ens, n.replace(".", "__"))[i] for n, _ in member.named_parameters()}
        )
        torch.testing.assert_close(out[i], member(obs, act))
    assert not torch.allclose(out[0], out[1])


def test_func_ensemble_subsets_and_detach():
    ens = FuncEnsemble(TwoInputCritic(), num_nets=4)
    obs, act = torch.randn(5, 3), torch.randn(5, 1, requires_grad=True)
    idx = torch.tensor([3, 1])
    torch.testing.assert_close(
        ens(obs, act, weights=[w[idx] for w in ens.weights()]), ens(obs, act)[idx]
    )
    ens(obs, act, detach=True).sum().backward()
    assert act.grad is not None and all(p.grad is None for p in ens.parameters())
