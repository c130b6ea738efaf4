"""``--quiet`` for every command, and the progress callbacks the long commands hand the API.

Every bar is a :class:`rldata._progress.Bar`: on stderr (results stay on stdout), a rich bar
when stderr is a terminal, plain whole lines when it is not, nothing with ``--quiet``.
"""

from __future__ import annotations

from typing import Any

import click

from rldata._progress import Bar

__all__ = ["Bar", "TrainBar", "quiet_option"]


def quiet_option(func: Any) -> Any:
    """The ``--quiet`` flag every command takes: no progress display on stderr."""
    return click.option(
        "--quiet",
        is_flag=True,
        help="No progress display on stderr (results still print on stdout).",
    )(func)


class TrainBar:
    """The train callback: units, rate, last evaluation return and every loss by its full key."""

    def __init__(self, label: str, *, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.bar: Bar | None = None

    def __call__(self, p: Any) -> None:  # rldata.trainers.TrainProgress
        if self.bar is None:  # the unit ("frames" or "updates") comes with the first report
            self.bar = Bar(self.label, total=p.total, unit=p.unit, enabled=self.enabled)
        ret = "-" if p.last_eval is None else f"{p.last_eval:.1f}"
        extra = [f"{p.per_s:,.0f} {p.unit}/s", f"eval {ret}"]
        extra += [f"{k} {v:.3g}" for k, v in p.losses.items()]
        self.bar.update(p.done, total=p.total, extra=extra)

    def __enter__(self) -> TrainBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
