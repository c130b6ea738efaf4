"""One rule for every command: a user's mistake is one line on stderr and a non-zero exit.

:class:`RldataGroup` turns any :class:`~rldata.errors.RldataError` raised by a command into
a ``click.ClickException`` (``Error: <message>``, exit 1), so no traceback reaches the user
for a bad input. Bugs (other exceptions) still show their traceback.
"""

from __future__ import annotations

from typing import Any

import click

from rldata._untrusted import escape
from rldata.errors import RldataError


def one_line(err: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined), control characters
    from data escaped (:func:`rldata._untrusted.escape`)."""
    text = escape(" ".join(str(err).split("\n")).strip())
    return text or type(err).__name__


class RldataGroup(click.Group):
    """A click group whose commands report :class:`RldataError` as one line, exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RldataError as err:
            raise click.ClickException(one_line(err)) from None
        except click.ClickException as err:  # raised by a command with data in its message
            err.message = one_line(click.ClickException(err.message))
            raise
