"""What one call of the step loop asks for: shared by its generic and numpy paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tensordict import TensorDictBase


class IdSource(Protocol):
    """Where new trajectory ids come from (``rldata.collectors.TrajCounter``)."""

    def take(self, n: int) -> torch.Tensor: ...

    def take_one(self) -> int: ...


@dataclass(frozen=True)
class Run:
    """One call of a loop's ``rollout``.

    Attributes:
        frames: steps per env.
        counter: trajectory ids for ``("collector", "traj_ids")``; None writes none.
        max_steps: truncate (and reset) an episode after this many steps.
        random: act at random (the env's action stream), even with a policy.
        break_when_any_done: stop after the first step where any env is done, without
            resetting it.
        callback: called as ``callback(env, row)`` after each step (generic path only).
    """

    frames: int
    counter: IdSource | None = None
    max_steps: int | None = None
    random: bool = False
    break_when_any_done: bool = False
    callback: Callable[[Any, TensorDictBase], object] | None = None
