"""The one progress convention of every long command: stderr, a bar on a terminal, lines in logs.

:class:`Bar` draws a rich progress bar on stderr when stderr is a terminal; when it is not
(a log file, a pipe, CI), it writes plain lines instead, whole (a label is never cut to a
terminal's width), one each time the work passes another tenth of its total or
:data:`PLAIN_EVERY_S` seconds, and a last one when it ends. Disabled (``--quiet``), it prints
nothing. Results stay on stdout; the progress never goes there. Every CLI bar (collect,
convert, train, push, pull) and ``rldata.sharing``'s byte bar go through it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from rldata._untrusted import escape

PLAIN_EVERY_S = 30.0  # without a terminal: at most this long between two lines
PLAIN_STEPS = 10  # ... and a line each time another 1/PLAIN_STEPS of the total is done


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


class Bar:
    """Progress of one piece of work: ``update(done, total=..., extra=[...])``, then close.

    Args:
        label: what is being done (printed whole; control characters escaped).
        total: the amount of work, or ``None`` when unknown.
        unit: what ``done`` counts ("frames", "rows", "bytes": sizes then print as KB/MB).
        enabled: ``False`` for ``--quiet``: nothing is printed.
        stream: where it goes (default: ``sys.stderr`` at the first update).
    """

    def __init__(
        self,
        label: str,
        *,
        total: int | None,
        unit: str,
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.label = escape(label)
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream
        self.done = 0
        self.extra: list[str] = []
        self._rich: Any = None
        self._task: Any = None
        self._started: float | None = None
        self._printed: tuple[int, float] | None = None  # (done, time) of the last plain line

    # -- the caller's side -------------------------------------------------------------
    def update(
        self, done: int, *, total: int | None = None, extra: Sequence[str] | None = None
    ) -> None:
        """Set how much is done (and the total, and the extra fields, when given)."""
        if not self.enabled:
            return
        self.done = done
        if total is not None:
            self.total = total
        if extra is not None:
            self.extra = [escape(e) for e in extra]
        if self._started is None:  # only once the work began (every input was checked)
            self._start()
        if self._rich is not None:
            self._rich.update(
                self._task, completed=done, total=self.total, extra="  ".join(self.extra)
            )
        elif self._due():
            self._line()

    def advance(self, n: int) -> None:
        """``n`` more are done."""
        self.update(self.done + n)

    def close(self) -> None:
        """Stop the bar, or print the last plain line (once)."""
        if self._started is None:
            return
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self._printed is None or self._printed[0] != self.done:
            self._line()
        self._started = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- drawing -------------------------------------------------------------------------
    def _start(self) -> None:
        self._started = time.monotonic()
        stream = self.stream if self.stream is not None else sys.stderr
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        if isatty is not None and isatty():
            self._rich = self._rich_progress(stream)
            self._rich.start()

    def _rich_progress(self, stream: TextIO) -> Any:
        from rich.console import Console
        from rich.markup import escape as markup_escape
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        if self.unit == "bytes":
            counts: tuple[Any, ...] = (DownloadColumn(), TransferSpeedColumn())
        else:
            counts = (TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + self.unit),)
            if self.total is None:
                counts = (TextColumn("{task.completed:,.0f} " + self.unit),)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            *counts,
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
        )
        self._task = progress.add_task(
            markup_escape(self.label), total=self.total, extra="  ".join(self.extra)
        )
        return progress

    def _due(self) -> bool:
        if self._printed is None:
            return True
        last_done, last_time = self._printed
        if time.monotonic() - last_time >= PLAIN_EVERY_S:
            return True
        if not self.total:
            return False
        step = self.total / PLAIN_STEPS
        return int(self.done / step) > int(last_done / step)

    def _line(self) -> None:
        assert self.stream is not None and self._started is not None
        if self.unit == "bytes":
            count = _size(self.done) + (f"/{_size(self.total)}" if self.total else "")
        else:
            count = f"{self.done:,}" + (f"/{self.total:,}" if self.total else "") + f" {self.unit}"
        elapsed = time.monotonic() - self._started
        parts = [f"{self.label}: {count}", *self.extra, f"{elapsed:.1f} s"]
        print(", ".join(parts), file=self.stream, flush=True)
        self._printed = (self.done, time.monotonic())
