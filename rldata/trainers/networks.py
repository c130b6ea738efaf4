"""The networks the registry builds: MLP actors (deterministic or tanh-Gaussian) and critics.

Every actor's trunk is an :class:`~rldata.modules.MLP` reading ``"observation"`` whose
first ``action_dim`` outputs, squashed by ``low + (tanh(x) + 1) / 2 (high - low)``, are
the deterministic action. That is exactly the policy-checkpoint format of
:mod:`rldata.collectors.policies`, so a trained run exports a policy that
``rldata collect --policy RUN`` can run without knowing the algorithm.

For a discrete action space (``OneHot`` or ``Categorical``) the trunk's ``n`` outputs are
per-action values (DQN, discrete CQL) or logits (behaviour cloning), and the action is
their argmax, again exactly the checkpoint format's discrete head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import MLP, Actor, ProbabilisticActor, QValueModule, TanhNormal, ValueOperator
from rldata.specs import Bounded, Categorical, OneHot, TensorSpec
from rldata.trainers.observations import ObsLeaf


@dataclass(frozen=True)
class EnvSpecs:
    """What the networks need to know of an environment (or of a dataset's recorded specs)."""

    obs_dim: int
    action_spec: TensorSpec
    """``Bounded`` (continuous algorithms) or ``OneHot`` / ``Categorical`` (discrete ones)."""
    obs_leaves: tuple[ObsLeaf, ...] = ()
    """A Dict observation's leaves, concatenated into ``obs_dim`` features in this order;
    empty when the env observes one flat ``"observation"``."""

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_spec, (OneHot, Categorical))

    @property
    def n_actions(self) -> int:
        """The number of discrete actions."""
        if not isinstance(self.action_spec, (OneHot, Categorical)):
            raise ConfigError(f"expected a discrete action spec, got {self.action_spec!r}")
        return int(self.action_spec.n)

    @property
    def box(self) -> Bounded:
        """The continuous action box."""
        if not isinstance(self.action_spec, Bounded):
            raise ConfigError(
                f"expected a continuous (Bounded) action spec, got {self.action_spec!r}"
            )
        return self.action_spec

    @property
    def action_dim(self) -> int:
        return int(self.box.shape[-1])

    @property
    def low(self) -> float:
        return float(self.box.low.min())

    @property
    def high(self) -> float:
        return float(self.box.high.max())


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
    head = BoundedTanh(specs.box.low, specs.box.high)
    return Actor(nn.Sequential(net, head), spec=specs.box)


class ClampedLogStd(nn.Module):
    """``(loc, exp(clamp(log_std, -20, 2)))`` from one output: Stable-Baselines3's SAC head."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_std = x.chunk(2, -1)
        return loc, log_std.clamp(-20.0, 2.0).exp()


def gaussian_actor(
    specs: EnvSpecs, hidden: list[int], *, log_std_head: bool = False
) -> ProbabilisticActor:
    """A tanh-squashed Gaussian policy (SAC, REDQ, IQL, CQL); its mode is the squashed mean.

    The scale is ``softplus`` of the second half of the outputs (TorchRL's default), or with
    ``log_std_head`` their clamped exponential (Stable-Baselines3's).
    """
    head = ClampedLogStd() if log_std_head else NormalParamExtractor()
    net = nn.Sequential(
        MLP(specs.obs_dim, 2 * specs.action_dim, hidden, activation_class=nn.ReLU), head
    )
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": specs.low, "high": specs.high},
        spec=specs.action_spec,
    )


def unit_box_target_entropy(specs: EnvSpecs) -> float:
    """SAC's ``-action_dim`` target measured in the squashed ``[-1, 1]`` box, in the env's units.

    Rescaling the box by ``(high - low) / 2`` adds its log to the entropy, so a policy acting in
    ``[-2, 2]`` meets the unit-box target at ``-1 + log 2``, as SB3's SAC (which acts in the
    unit box) does.
    """
    half = (specs.box.high - specs.box.low).to(torch.float64) / 2
    return float(-specs.action_dim + half.log().sum())


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


def action_values(specs: EnvSpecs, hidden: list[int]) -> TensorDictModule:
    """``Q(s, .)``: one value (or logit) per discrete action, at ``"action_value"``."""
    return TensorDictModule(
        MLP(specs.obs_dim, specs.n_actions, hidden, activation_class=nn.ReLU),
        in_keys=["observation"],
        out_keys=["action_value"],
    )


def greedy_actor(values: TensorDictModule, specs: EnvSpecs) -> TensorDictSequential:
    """``argmax_a values(s)``, written in the env's encoding (one-hot or index)."""
    return TensorDictSequential(values, QValueModule(spec=specs.action_spec))


def actor_trunk(actor: nn.Module) -> MLP:
    """The MLP at the bottom of an actor built here (for the policy export)."""
    for module in actor.modules():
        if isinstance(module, MLP):
            return module
    raise ConfigError(f"no MLP found in the actor {type(actor).__name__}")
