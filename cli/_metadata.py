"""The options that describe a new dataset: ``--author``, ``--description``, ``--license``,
``--code-link`` (``collect`` and ``convert`` take them; ``info`` and the report show them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["metadata_kwargs", "metadata_options"]

_OPTIONS = (
    click.option(
        "--author",
        "authors",
        multiple=True,
        metavar="NAME",
        help="The dataset's author (repeat for several); kept as Minari's author.",
    ),
    click.option(
        "--description", default=None, metavar="TEXT", help="What the dataset holds, for users."
    ),
    click.option(
        "--license",
        "license_",
        default=None,
        metavar="TEXT",
        help="The dataset's license, e.g. CC-BY-4.0.",
    ),
    click.option(
        "--code-link",
        default=None,
        metavar="URL",
        help="Link to the code that made the dataset (Minari's code_permalink).",
    ),
)


def metadata_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the four metadata options to a command (in the order ``--help`` lists them)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def metadata_kwargs(
    authors: tuple[str, ...], description: str | None, license_: str | None, code_link: str | None
) -> dict[str, Any]:
    """The options as ``rldata.record`` / ``api.convert`` keyword arguments."""
    return {
        "author": list(authors) or None,
        "description": description,
        "license": license_,
        "code_link": code_link,
    }
