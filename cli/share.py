"""``rldata push | pull | diff | merge | report``: move, compare, combine and show shared stores."""

from __future__ import annotations

import click

from rldata import api
from rldata.errors import RldataError
from rldata_cli._errors import one_line
from rldata_cli._progress import quiet_option
from rldata_cli._terminal import echo


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _transfer_line(verb: str, s: object) -> str:
    return (
        f"{verb} {s.source} -> {s.destination}: {s.copied} of {s.objects} objects copied "  # type: ignore[attr-defined]
        f"({_size(s.bytes_copied)}), {s.skipped} already there, {s.seconds:.1f} s; "  # type: ignore[attr-defined]
        f"digest {s.content_digest}"  # type: ignore[attr-defined]
    )


@click.command()
@click.argument("src", type=click.Path())
@click.argument("url")
@click.option(
    "--force", is_flag=True, help="Replace an existing destination that is provably a store."
)
@quiet_option
def push(src: str, url: str, force: bool, quiet: bool) -> None:
    """Publish the store at SRC to URL (s3://, gs://, file://, ...), verified and resumable."""
    echo(_transfer_line("pushed", api.push(src, url, progress=not quiet, force=force)))


@click.command()
@click.argument("url")
@click.argument("dst", type=click.Path())
@click.option(
    "--force", is_flag=True, help="Replace an existing destination that is provably a store."
)
@quiet_option
def pull(url: str, dst: str, force: bool, quiet: bool) -> None:
    """Fetch the store at URL into DST, verified and resumable."""
    echo(_transfer_line("pulled", api.pull(url, dst, progress=not quiet, force=force)))


@click.command()
@click.argument("a")
@click.argument("b")
@quiet_option
@click.pass_context
def diff(ctx: click.Context, a: str, b: str, quiet: bool) -> None:
    """Compare stores A and B: schema, specs, then episodes only in A, only in B and shared.

    Episodes are listed by content (hash, length, return). Exits 0 when the stores hold the
    same schema, specs and episodes, 1 when they differ (as diff(1) does), 2 on an error."""
    try:
        result = api.diff(a, b)
    except RldataError as err:  # 1 means "they differ": trouble is 2, as for diff(1)
        trouble = click.ClickException(one_line(err))
        trouble.exit_code = 2
        raise trouble from None
    echo(result.lines())
    if not result.identical:
        ctx.exit(1)


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", required=True, help="Where the merged store goes (a new path or URL).")
@click.option(
    "--backend",
    default="memmap",
    show_default=True,
    help="Backend of the merged store.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing destination that is provably a store."
)
@click.option(
    "--allow-mixed-envs",
    is_flag=True,
    help="Merge stores of different env ids (the merged provenance lists each source's env).",
)
@quiet_option
def merge(
    sources: tuple[str, ...],
    out: str,
    backend: str,
    force: bool,
    allow_mixed_envs: bool,
    quiet: bool,
) -> None:
    """Merge the stores SOURCES into a new store at --out (trajectory ids renumbered)."""
    s = api.merge(
        list(sources), out, backend=backend, force=force, allow_mixed_envs=allow_mixed_envs
    )
    echo(
        f"merged {s.sources} stores into {s.out}: {s.transitions:,} rows, "
        f"{s.episodes:,} episodes; digest {s.content_digest}"
    )


@click.command()
@click.argument("path_or_url")
@click.option("--out", default="report.html", show_default=True, help="Where the HTML page goes.")
@click.option("--force", is_flag=True, help="Replace an existing report rldata wrote.")
@quiet_option
def report(path_or_url: str, out: str, force: bool, quiet: bool) -> None:
    """Write a self-contained HTML report (dataset card and plots) of the store at PATH_OR_URL."""
    echo(f"wrote {api.report(path_or_url, out, force=force)}")
