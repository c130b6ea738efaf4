"""``rldata convert SRC DST [--backend B]``: copy a dataset between backends, Minari, D4RL, TorchRL."""

from __future__ import annotations

import click
from rich.markup import escape as markup_escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli._terminal import echo, escape
from rldata import api


class _Bar:
    """A rich progress bar of rows copied."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}{task.fields[of]} rows"),  # total may be unknown
            TimeElapsedColumn(),
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task(markup_escape(escape(label)), total=None, of="")
        self._started = False

    def __call__(self, done: int, total: int) -> None:
        if not self._started:  # only once every input was checked and copying began
            self._started = True
            self.progress.start()
        of = f"/{total:,.0f}" if total is not None else ""
        self.progress.update(self.task, completed=done, total=total, of=of)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            self.progress.stop()


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--backend",
    default=None,
    help="Backend of a new rldata store (default: the source's, else memmap).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing DST that is provably a store (or Minari dataset).",
)
def convert(src: str, dst: str, backend: str | None, quiet: bool, force: bool) -> None:
    """Copy the dataset SRC into the new DST.

    SRC: an rldata store, minari:NAMESPACE/NAME-vN, d4rl:FILE.hdf5 or a TorchRL memmap
    storage directory. DST: a new rldata store path or minari:NAMESPACE/NAME-vN.
    """
    with _Bar(f"{src} -> {dst}", enabled=not quiet) as bar:
        summary = api.convert(src, dst, backend=backend, progress=bar, force=force)
    echo(
        f"converted {summary.rows} rows ({summary.episodes} episodes) from {summary.src} "
        f"into {summary.dst} [{summary.backend}] in {summary.seconds:.2f} s"
    )
