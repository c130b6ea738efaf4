"""Trajectory-id counters: every episode a collector starts gets an id no other episode has.

Ids are what let a store, a sampler or a reader cut a flat stream of rows back into
episodes, so they must stay unique across batches, resets, worker processes, Ray actors
and resumed recordings. One counter hands out ids from an arithmetic sequence
``start + offset + k * stride``: a single collector uses ``stride=1``; ``W`` workers use
``stride=W`` and ``offset=w`` so their ids never collide without any coordination, and a
resumed recording starts at ``store.next_traj_id()``.
"""

from __future__ import annotations

import torch

from rldata.errors import ConfigError


class TrajCounter:
    """Hands out increasing, unique trajectory ids.

    Args:
        start: the first id of the sequence (``store.next_traj_id()`` when resuming).
        stride: distance between consecutive ids (the number of workers sharing the space).
        offset: this counter's place in the stride, ``0 <= offset < stride``.

    Examples:
        >>> c = TrajCounter(start=10, stride=2, offset=1)
        >>> c.take(3).tolist()
        [11, 13, 15]
        >>> c.peek()
        17
    """

    def __init__(self, start: int = 0, stride: int = 1, offset: int = 0) -> None:
        if stride < 1:
            raise ConfigError(f"traj-id stride must be >= 1, got {stride}")
        if not 0 <= offset < stride:
            raise ConfigError(f"traj-id offset must be in [0, {stride}), got {offset}")
        if start < 0:
            raise ConfigError(f"traj-id start must be >= 0, got {start}")
        self.start = int(start)
        self.stride = int(stride)
        self.offset = int(offset)
        self._taken = 0

    def peek(self) -> int:
        """The id the next call to :meth:`take_one` returns."""
        return self.start + self.offset + self._taken * self.stride

    def take_one(self) -> int:
        """One fresh id."""
        out = self.peek()
        self._taken += 1
        return out

    def take(self, n: int) -> torch.Tensor:
        """``n`` fresh ids, increasing, as an int64 tensor."""
        first = self.peek()
        self._taken += int(n)
        return torch.arange(n, dtype=torch.int64) * self.stride + first

    def state_dict(self) -> dict[str, int]:
        """The counter's position, JSON-able, for resuming a collection."""
        return {
            "start": self.start,
            "stride": self.stride,
            "offset": self.offset,
            "taken": self._taken,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.start = int(state["start"])
        self.stride = int(state["stride"])
        self.offset = int(state["offset"])
        self._taken = int(state["taken"])
