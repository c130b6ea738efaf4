"""Replay buffers: storages (how rows are kept), samplers (which rows), writers (where).

Also importable under the walkthrough's path, ``rldata.data.replay_buffers``.
"""

from __future__ import annotations

from rldata.data.backend_storages import H5Storage, ParquetStorage, ZarrStorage
from rldata.data.buffer import ReplayBuffer, TensorDictReplayBuffer
from rldata.data.load import load
from rldata.data.mixing import MixingBuffer
from rldata.data.rate_limiter import SampleToInsertRatio
from rldata.data.ray_dataset import to_ray_dataset
from rldata.data.samplers import (
    PrioritizedSampler,
    RandomSampler,
    Sampler,
    SamplerWithoutReplacement,
    SliceSampler,
)
from rldata.data.storages import LazyMemmapStorage, LazyTensorStorage, Storage, StoreStorage
from rldata.data.streaming import Loader, StoreDataset, no_collate
from rldata.data.writers import AppendOnlyWriter, RoundRobinWriter, Writer

__all__ = [
    "AppendOnlyWriter",
    "H5Storage",
    "LazyMemmapStorage",
    "LazyTensorStorage",
    "Loader",
    "MixingBuffer",
    "ParquetStorage",
    "PrioritizedSampler",
    "RandomSampler",
    "ReplayBuffer",
    "RoundRobinWriter",
    "Sampler",
    "SampleToInsertRatio",
    "SamplerWithoutReplacement",
    "SliceSampler",
    "Storage",
    "StoreDataset",
    "StoreStorage",
    "TensorDictReplayBuffer",
    "Writer",
    "ZarrStorage",
    "load",
    "no_collate",
    "to_ray_dataset",
]
