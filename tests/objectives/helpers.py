"""Tiny networks, a fixed TED batch, and a hand-written MLP for reference values."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor

from rldata.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
from rldata.specs import Bounded

OBS, ACT, B = 3, 1, 4
LOW, HIGH = -2.0, 2.0
SPEC = Bounded(LOW, HIGH, shape=(ACT,))


def batch(seed: int = 0) -> TensorDict:
    """Four rows: ongoing, terminated, truncated (done but not terminated), ongoing."""
    g = torch.Generator().manual_seed(seed)
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.tensor([[False], [False], [True], [False]])
    false = torch.zeros(B, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": torch.rand(B, ACT, generator=g) * 3.0 - 1.5,
            "done": false,
            "terminated": false,
            "truncated": false,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "done": terminated | truncated,
                "terminated": terminated,
                "truncated": truncated,
            },
        },
        batch_size=[B],
    )


def q_net(hidden: int = 5) -> ValueOperator:
    return ValueOperator(MLP(OBS + ACT, 1, [hidden]), in_keys=["observation", "action"])


class _LayerNormCritic(torch.nn.Module):
    """Not an MLP (a layer norm; two inputs): the loss must fall back to vmap."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(OBS + ACT, 8),
            torch.nn.LayerNorm(8),
            torch.nn.ReLU(),
            torch.nn.Linear(8, 1),
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([obs, action], -1))


def layer_norm_q_net() -> TensorDictModule:
    return TensorDictModule(
        _LayerNormCritic(), in_keys=["observation", "action"], out_keys=["state_action_value"]
    )


def v_net(hidden: int = 5) -> ValueOperator:
    return ValueOperator(MLP(OBS, 1, [hidden]))


def det_actor(hidden: int = 5) -> Actor:
    return Actor(MLP(OBS, ACT, [hidden]), spec=SPEC)


def prob_actor(hidden: int = 5) -> ProbabilisticActor:
    head = TensorDictModule(
        torch.nn.Sequential(MLP(OBS, 2 * ACT, [hidden]), NormalParamExtractor()),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    return ProbabilisticActor(
        head,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": LOW, "high": HIGH},
    )


# --- reference computations, written out by hand -------------------------------------


def mlp_ref(linears: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """``tanh`` between layers, as MLP's default; weights as ``(W[out, in], b[out])``."""
    for i, (w, b) in enumerate(linears):
        x = x @ w.t() + b
        if i < len(linears) - 1:
            x = torch.tanh(x)
    return x


def linears(module: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(weight, bias)`` pairs of an MLP (or any module with Linear layers), detached."""
    return [
        (m.weight.detach().clone(), m.bias.detach().clone())
        for m in module.modules()
        if isinstance(m, torch.nn.Linear)
    ]


def ensemble_linears(ens: torch.nn.Module, i: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Member ``i`` of a QEnsemble (or of its target) as ``(W[out, in], b[out])`` pairs."""
    out = []
    for j in range(ens.num_linear):
        w = getattr(ens, f"weight_{j}")[i].detach().t().clone()
        b = getattr(ens, f"bias_{j}")[i, 0].detach().clone()
        out.append((w, b))
    return out


def tanh_normal_ref(loc: torch.Tensor, scale: torch.Tensor, eps: torch.Tensor):
    """Sample ``LOW..HIGH``-squashed Gaussian and its log-prob via the change of variables."""
    u = loc + scale * eps
    half, mid = (HIGH - LOW) / 2, (HIGH + LOW) / 2
    a = torch.tanh(u) * half + mid
    normal = torch.distributions.Normal(loc, scale).log_prob(u)
    log_det = torch.log(half * (1 - torch.tanh(u) ** 2))
    return a, (normal - log_det).sum(-1)


def policy_params(actor: ProbabilisticActor, obs: torch.Tensor):
    """``(loc, scale)`` from the actor's parameter network (the network, not the loss)."""
    with torch.no_grad():
        loc, scale = actor.module[0].module(obs)
    return loc, scale


def grads_by_group(loss: torch.nn.Module, groups: dict[str, list[torch.Tensor]]) -> dict[str, bool]:
    """Which parameter groups received a non-zero gradient."""
    return {
        name: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
        for name, params in groups.items()
    }
