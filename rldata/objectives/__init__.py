"""Losses (one per file) and target-network updaters."""

from __future__ import annotations

from rldata.objectives.bc import DiscreteBCLoss
from rldata.objectives.common import LossModule
from rldata.objectives.cql import CQLLoss
from rldata.objectives.ddpg import DDPGLoss
from rldata.objectives.discrete_cql import DiscreteCQLLoss
from rldata.objectives.dqn import DQNLoss
from rldata.objectives.iql import IQLLoss
from rldata.objectives.redq import REDQLoss
from rldata.objectives.sac import SACLoss
from rldata.objectives.targets import HardUpdate, SoftUpdate
from rldata.objectives.td3 import TD3Loss
from rldata.objectives.td3_bc import TD3BCLoss

__all__ = [
    "CQLLoss",
    "DDPGLoss",
    "DQNLoss",
    "DiscreteBCLoss",
    "DiscreteCQLLoss",
    "HardUpdate",
    "IQLLoss",
    "LossModule",
    "REDQLoss",
    "SACLoss",
    "SoftUpdate",
    "TD3BCLoss",
    "TD3Loss",
]
