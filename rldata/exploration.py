"""The exploration mode shared by environments, collectors and modules.

It lives at the bottom of the package so that ``modules`` (which must not
import ``envs``) and ``envs.utils`` (which re-exports it under the walkthrough's
name) agree on one switch. Setting it also sets tensordict's interaction type,
so tensordict's own probabilistic modules follow it.
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tensordict.nn import InteractionType, set_interaction_type

F = TypeVar("F", bound=Callable[..., Any])


class ExplorationType(enum.Enum):
    """How stochastic modules act: sample (RANDOM) or take a point estimate."""

    RANDOM = "random"
    MEAN = "mean"
    MODE = "mode"
    DETERMINISTIC = "deterministic"


_TO_INTERACTION = {
    ExplorationType.RANDOM: InteractionType.RANDOM,
    ExplorationType.MEAN: InteractionType.MEAN,
    ExplorationType.MODE: InteractionType.MODE,
    ExplorationType.DETERMINISTIC: InteractionType.DETERMINISTIC,
}

DEFAULT_EXPLORATION_TYPE = ExplorationType.RANDOM
_state = threading.local()


def exploration_type() -> ExplorationType:
    """Return the exploration type in force (RANDOM unless set)."""
    return getattr(_state, "value", DEFAULT_EXPLORATION_TYPE)


class set_exploration_type:  # noqa: N801 - named like the walkthrough's context manager
    """Set the exploration type for a block or a function.

    Examples:
        >>> with set_exploration_type(ExplorationType.DETERMINISTIC):
        ...     exploration_type()
        <ExplorationType.DETERMINISTIC: 'deterministic'>
    """

    def __init__(self, kind: ExplorationType | str) -> None:
        self.kind = ExplorationType(kind) if isinstance(kind, str) else kind
        self._prev: list[ExplorationType] = []
        self._td_ctx: list[Any] = []

    def __enter__(self) -> set_exploration_type:
        self._prev.append(exploration_type())
        _state.value = self.kind
        ctx = set_interaction_type(_TO_INTERACTION[self.kind])
        ctx.__enter__()
        self._td_ctx.append(ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        self._td_ctx.pop().__exit__(*exc)
        _state.value = self._prev.pop()

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_exploration_type(self.kind):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


def is_exploring() -> bool:
    """True when exploration noise should be added (RANDOM mode)."""
    return exploration_type() is ExplorationType.RANDOM
