"""Offline-to-online replay: every batch mixes dataset rows and fresh rows at a set ratio.

Symmetric sampling as in RLPD (Ball et al. 2023, "Efficient Online Reinforcement
Learning with Offline Data"): half of each batch comes from the offline dataset and half
from the online buffer, whatever their sizes, so the fresh rows are not drowned by a
large dataset and the dataset is not forgotten. New rows go to the online buffer only:
the dataset (often a read-only store shared by a team) is never written to.

Examples:
    >>> from rldata.data.storages import LazyTensorStorage
    >>> from rldata.data.buffer import ReplayBuffer
    >>> from rldata.testing import ted_transitions
    >>> offline = ReplayBuffer(storage=LazyTensorStorage(1000))
    >>> _ = offline.extend(ted_transitions(100))
    >>> online = ReplayBuffer(storage=LazyTensorStorage(1000))
    >>> mixed = MixingBuffer(offline, online, offline_ratio=0.5, batch_size=8)
    >>> _ = mixed.extend(ted_transitions(10))
    >>> mixed.sample().batch_size, len(offline), len(online)
    (torch.Size([8]), 100, 10)
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from rldata.data.buffer import ReplayBuffer
from rldata.errors import ConfigError, EmptyBufferError, TedFormatError
from rldata.ted import NestedKey, key_name


class MixingBuffer:
    """Sample ``offline_ratio`` of each batch from ``offline``, the rest from ``online``.

    Args:
        offline: the dataset's buffer (e.g. ``rldata.load(path)``); only ever sampled.
        online: the buffer fresh rows are written to.
        offline_ratio: share of each batch drawn from the dataset (0.5: RLPD's symmetric
            sampling). The split is exact: ``round(offline_ratio * batch_size)`` rows.
        batch_size: the default for :meth:`sample`.

    A batch holds the keys both sources share (a dataset recorded with a random policy
    has no ``loc``/``scale``, for example); a shared key whose per-row shape or dtype
    differs is an error naming it. Until the online buffer holds a row, batches come from
    the dataset alone.
    """

    def __init__(
        self,
        offline: ReplayBuffer,
        online: ReplayBuffer,
        offline_ratio: float = 0.5,
        batch_size: int | None = None,
    ) -> None:
        if not 0.0 <= offline_ratio <= 1.0:
            raise ConfigError(f"offline_ratio must lie in [0, 1], got {offline_ratio}")
        if offline is online:
            raise ConfigError("MixingBuffer: offline and online must be different buffers")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.offline = offline
        self.online = online
        self.offline_ratio = float(offline_ratio)
        self.batch_size = batch_size
        self._keys: list[NestedKey] | None = None

    def __len__(self) -> int:
        return len(self.offline) + len(self.online)

    def extend(self, data: TensorDictBase) -> torch.Tensor:
        """Write fresh rows to the online buffer (never to the dataset)."""
        return self.online.extend(data)

    def split(self, batch_size: int) -> tuple[int, int]:
        """``(offline_rows, online_rows)`` of a batch of ``batch_size``."""
        if len(self.online) == 0:
            return batch_size, 0
        n_off = int(round(self.offline_ratio * batch_size))
        return n_off, batch_size - n_off

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        """One batch: dataset rows first, then online rows (``[batch_size]``)."""
        batch_size = batch_size if batch_size is not None else self.batch_size
        if batch_size is None:
            raise ConfigError("sample: batch_size is needed (pass it here or to MixingBuffer)")
        n_off, n_on = self.split(batch_size)
        if n_off and len(self.offline) == 0:
            raise EmptyBufferError("MixingBuffer: the offline dataset holds no rows")
        parts = []
        if n_off:
            parts.append(self.offline.sample(n_off))
        if n_on:
            parts.append(self.online.sample(n_on))
        if len(parts) == 1:
            return parts[0]
        keys = self._common_keys(parts[0], parts[1])
        out: TensorDictBase = torch.cat([p.select(*keys) for p in parts], 0)  # type: ignore[assignment]
        return out

    def _common_keys(self, a: TensorDictBase, b: TensorDictBase) -> list[NestedKey]:
        if self._keys is None:
            kb = set(b.keys(True, True))
            keys = [k for k in a.keys(True, True) if k in kb]
            for k in keys:
                x, y = a.get(k), b.get(k)
                if x.shape[1:] != y.shape[1:] or x.dtype != y.dtype:
                    raise TedFormatError(
                        f"MixingBuffer: key {key_name(k)!r} is {tuple(x.shape[1:])} {x.dtype} "
                        f"in the dataset but {tuple(y.shape[1:])} {y.dtype} online"
                    )
            self._keys = keys
        return self._keys
