"""A byte progress bar (bytes done, total, rate) for long transfers, or nothing when quiet."""

from __future__ import annotations

from typing import Any


class Bar:
    """Advance a rich progress bar by bytes; a no-op when ``enabled`` is false."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def advance(self, nbytes: int, label: str | None = None) -> None:
        """Count ``nbytes`` more as done (and optionally relabel)."""
        if self._progress is not None:
            self._progress.update(self._task, advance=nbytes, description=label or self.label)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
