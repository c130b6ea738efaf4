"""Collectors: run a policy in environments and hand out TED batches with trajectory ids.

Collectors never write to disk; ``rldata.record`` joins a collector to a store.
"""

from __future__ import annotations

from rldata.collectors._ray import RayCollector
from rldata.collectors.multi import MultiaSyncDataCollector, MultiSyncDataCollector
from rldata.collectors.sync import SyncDataCollector, split_trajectories
from rldata.collectors.trajectories import TrajCounter

__all__ = [
    "MultiSyncDataCollector",
    "MultiaSyncDataCollector",
    "RayCollector",
    "SyncDataCollector",
    "TrajCounter",
    "split_trajectories",
]
