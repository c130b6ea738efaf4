"""One rule for every command: a user's mistake is one line on stderr and a non-zero exit.

:class:`RldataGroup` turns any :class:`~rldata.errors.RldataError` raised by a command into
a ``click.ClickException`` (``Error: <message>``, exit 1), so no traceback reaches the user
for a bad input. An :class:`OSError` that names a path and says the file system refused it
(a name too long, no space left, a read-only file system, no permission, a link loop) is
the user's machine, not a bug: one line too, and so is an object store's client finding no
credentials (botocore's ``NoCredentialsError`` reaches us through s3fs unwrapped). Bugs
(other exceptions) still show their traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import Any

import click

from rldata._untrusted import escape
from rldata.errors import RldataError


def one_line(err: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined), control characters
    from data escaped (:func:`rldata._untrusted.escape`)."""
    text = escape(" ".join(str(err).split("\n")).strip())
    return text or type(err).__name__


ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENAMETOOLONG",
        "ENOSPC",
        "EDQUOT",
        "EROFS",
        "EACCES",
        "EPERM",
        "ELOOP",
        "EFBIG",
    )
    if hasattr(errno, name)
)
"""The file system's refusals of a path: said in one line, since no code change fixes them."""


def environment_error(err: OSError) -> str | None:
    """One line for an OSError the file system raised about a named path, else None."""
    if err.errno is None or err.errno not in ENVIRONMENT_ERRNOS or err.filename is None:
        return None
    name = err.filename if isinstance(err.filename, str) else repr(err.filename)
    return one_line(OSError(f"{name}: {err.strerror or os.strerror(err.errno)}"))


def as_flag(err: RldataError, names: Iterable[str]) -> click.ClickException:
    """One line for a range error about a value the user typed as an option: the message
    (``batch_size must be an integer in [1, 2**24], got 0``) names the flag
    (``--batch-size``) instead of the keyword, so the line points at what to retype."""
    text = one_line(err)
    name, _, rest = text.partition(" ")
    if name in names and rest.startswith("must be"):
        text = f"--{name.replace('_', '-')} {rest}"
    return click.ClickException(text)


CREDENTIAL_ERRORS = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
)


def credentials_error(err: Exception) -> str | None:
    """One line for an object-store client that found no (or partial) credentials."""
    kind = type(err)
    if kind.__name__ not in CREDENTIAL_ERRORS or not kind.__module__.startswith("botocore"):
        return None
    return one_line(
        RuntimeError(
            f"no usable credentials for the object store ({err}); set them as its client "
            "expects (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
        )
    )


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
        except OSError as err:
            line = environment_error(err)
            if line is None:
                raise
            raise click.ClickException(line) from None
        except Exception as err:
            line = credentials_error(err)
            if line is None:
                raise
            raise click.ClickException(line) from None
