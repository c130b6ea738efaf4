"""Everything the CLI prints goes through here: control characters from data are escaped.

A store, a run directory or a remote names env ids, provenance, keys and paths; printed raw,
an ESC sequence could clear the screen or set the window title, a CR or LF could forge a
``check ok`` line. :func:`echo` escapes each line it is given (so a newline inside one
line is data, shown as ``\\n``) with :func:`rldata._untrusted.escape`, the same rule the
error lines of :mod:`cli._errors` follow.
"""

from __future__ import annotations

from collections.abc import Iterable

import click

from rldata._untrusted import escape

__all__ = ["echo", "escape"]


def echo(lines: str | Iterable[str], *, err: bool = False) -> None:
    """Print ``lines`` (one string is one line), each with control characters escaped."""
    items = [lines] if isinstance(lines, str) else list(lines)
    click.echo("\n".join(escape(line) for line in items), err=err)
