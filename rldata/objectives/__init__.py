"""Losses (one per file) and target-network updaters."""

from __future__ import annotations

from rldata.objectives.common import LossModule
from rldata.objectives.ddpg import DDPGLoss
from rldata.objectives.redq import REDQLoss
from rldata.objectives.sac import SACLoss
from rldata.objectives.targets import HardUpdate, SoftUpdate

__all__ = ["DDPGLoss", "HardUpdate", "LossModule", "REDQLoss", "SACLoss", "SoftUpdate"]
