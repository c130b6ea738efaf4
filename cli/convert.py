"""``rldata convert SRC DST [--backend B]``: copy a dataset between backends, Minari, D4RL, TorchRL."""

from __future__ import annotations

import click

from rldata import api
from rldata_cli._metadata import metadata_kwargs, metadata_options
from rldata_cli._progress import Bar, quiet_option
from rldata_cli._terminal import echo


class _Bar(Bar):
    """Rows copied (the total may be unknown)."""

    def __init__(self, label: str, enabled: bool) -> None:
        super().__init__(label, total=None, unit="rows", enabled=enabled)

    def __call__(self, done: int, total: int | None) -> None:
        self.update(done, total=total)


@click.command()
@click.argument("src")
@click.argument("dst")
@click.option(
    "--backend",
    default=None,
    help="Backend of a new rldata store (default: the source's, else memmap).",
)
@quiet_option
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing DST that is provably a store (or Minari dataset).",
)
@metadata_options
def convert(
    src: str,
    dst: str,
    backend: str | None,
    quiet: bool,
    force: bool,
    authors: tuple[str, ...],
    description: str | None,
    license_: str | None,
    code_link: str | None,
) -> None:
    """Copy the dataset SRC into the new DST.

    SRC: an rldata store, minari:NAMESPACE/NAME-vN, d4rl:FILE.hdf5 or a TorchRL memmap
    storage directory. DST: a new rldata store path or minari:NAMESPACE/NAME-vN.
    --author/--description/--license/--code-link replace the source's in DST.
    """
    meta = metadata_kwargs(authors, description, license_, code_link)
    with _Bar(f"{src} -> {dst}", enabled=not quiet) as bar:
        summary = api.convert(src, dst, backend=backend, progress=bar, force=force, **meta)
    echo(
        f"converted {summary.rows} rows ({summary.episodes} episodes) from {summary.src} "
        f"into {summary.dst} [{summary.backend}] in {summary.seconds:.2f} s"
    )
