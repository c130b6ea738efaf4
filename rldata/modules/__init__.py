"""Policies, value networks, distributions and exploration modules (the walkthrough's names)."""

from __future__ import annotations

from rldata.modules.actors import Actor, ProbabilisticActor, ValueOperator
from rldata.modules.distributions import TanhNormal, tanh_normal_rsample
from rldata.modules.ensemble import FuncEnsemble, QEnsemble
from rldata.modules.exploration import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckModule,
)
from rldata.modules.mlp import MLP, ConvNet
from rldata.modules.observations import FlatConcat
from rldata.modules.qvalue import QValueModule

__all__ = [
    "MLP",
    "Actor",
    "AdditiveGaussianModule",
    "ConvNet",
    "EGreedyModule",
    "FlatConcat",
    "OrnsteinUhlenbeckModule",
    "ProbabilisticActor",
    "FuncEnsemble",
    "QEnsemble",
    "QValueModule",
    "TanhNormal",
    "ValueOperator",
    "tanh_normal_rsample",
]
