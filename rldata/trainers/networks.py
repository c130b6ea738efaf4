"""The networks the registry builds: MLP actors (deterministic or tanh-Gaussian) and critics.

Every actor's trunk is an :class:`~rldata.modules.MLP` reading ``"observation"`` whose
first ``action_dim`` outputs, squashed by ``low + (tanh(x) + 1) / 2 (high - low)``, are
the deterministic action. That is exactly the policy-checkpoint format of
:mod:`rldata.collectors.policies`, so a trained run exports a policy that
``rldata collect --policy RUN`` can run without knowing the algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
from rldata.specs import Bounded


@dataclass(frozen=True)
class EnvSpecs:
    """What the networks need to know of an environment (or of a dataset's recorded specs)."""

    obs_dim: int
    action_spec: Bounded

    @property
    def action_dim(self) -> int:
        return int(self.action_spec.shape[-1])

    @property
    def low(self) -> float:
        return float(self.action_spec.low.min())

    @property
    def high(self) -> float:
        return float(self.action_spec.high.max())


class BoundedTanh(nn.Module):
    """``low + (tanh(x) + 1) / 2 * (high - low)``: an output squashed into the action box."""

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("low", low.detach().clone().to(torch.float32))
        self.register_buffer("high", high.detach().clone().to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.get_buffer("low"), self.get_buffer("high")
        return low + (torch.tanh(x) + 1.0) * 0.5 * (high - low)


def deterministic_actor(specs: EnvSpecs, hidden: list[int]) -> Actor:
    """``mu(s)`` in the action box (DDPG, TD3, TD3+BC)."""
    net = MLP(specs.obs_dim, specs.action_dim, hidden, activation_class=nn.ReLU)
    head = BoundedTanh(specs.action_spec.low, specs.action_spec.high)
    return Actor(nn.Sequential(net, head), spec=specs.action_spec)


def gaussian_actor(specs: EnvSpecs, hidden: list[int]) -> ProbabilisticActor:
    """A tanh-squashed Gaussian policy (SAC, REDQ, IQL, CQL); its mode is the squashed mean."""
    net = nn.Sequential(
        MLP(specs.obs_dim, 2 * specs.action_dim, hidden, activation_class=nn.ReLU),
        NormalParamExtractor(),
    )
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": specs.low, "high": specs.high},
        spec=specs.action_spec,
    )


def qvalue(specs: EnvSpecs, hidden: list[int]) -> ValueOperator:
    """``Q(s, a)``."""
    return ValueOperator(
        MLP(specs.obs_dim + specs.action_dim, 1, hidden, activation_class=nn.ReLU),
        in_keys=["observation", "action"],
    )


def state_value(specs: EnvSpecs, hidden: list[int]) -> ValueOperator:
    """``V(s)`` (IQL)."""
    return ValueOperator(
        MLP(specs.obs_dim, 1, hidden, activation_class=nn.ReLU), in_keys=["observation"]
    )


def actor_trunk(actor: nn.Module) -> MLP:
    """The MLP at the bottom of an actor built here (for the policy export)."""
    for module in actor.modules():
        if isinstance(module, MLP):
            return module
    raise ConfigError(f"no MLP found in the actor {type(actor).__name__}")
