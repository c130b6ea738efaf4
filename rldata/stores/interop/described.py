"""A dataset's descriptive metadata: author, description, license, code link.

Kept in the store's provenance under Minari's names (``author``, ``author_email``,
``algorithm_name``, ``code_permalink``, ``description``, plus ``license``, which Minari
has no field for and keeps as an extra key), so a dataset carries them through
``collect``, ``convert`` (Minari both ways), ``info`` and the report.

These strings arrive with shared data: what a user gives is refused over its bound
(:func:`described`); what a file holds is cut to it (:func:`bounded`); printing them is
the printer's job (the CLI's ``echo`` and the report's HTML escape them).
"""

from __future__ import annotations

from typing import Any

from rldata.errors import ConfigError

FIELDS = (
    "author",
    "author_email",
    "algorithm_name",
    "code_permalink",
    "description",
    "license",
)
"""The descriptive fields, in the order ``info`` and the report show them."""

LISTS = ("author", "author_email")
"""Fields holding a sorted list of strings (Minari holds a set); the others hold one string."""

MAX_CHARS = {"description": 4000}
"""Longest value of a field, in characters (:data:`MAX_OTHER` for the fields not named)."""
MAX_OTHER = 300
MAX_ITEMS = 32
"""Most names in a list field."""


def limit(field: str) -> int:
    """The most characters ``field`` may hold."""
    return MAX_CHARS.get(field, MAX_OTHER)


def described(
    *,
    author: str | list[str] | tuple[str, ...] | None = None,
    description: str | None = None,
    license: str | None = None,
    code_link: str | None = None,
    algorithm_name: str | None = None,
) -> dict[str, Any]:
    """The provenance entries for what a user gave (None: not given); a value over its
    bound, empty, or not a string is refused with one line naming the option."""
    given = {
        "author": author,
        "description": description,
        "license": license,
        "code_permalink": code_link,
        "algorithm_name": algorithm_name,
    }
    names = {"code_permalink": "code_link"}
    out: dict[str, Any] = {}
    for field, value in given.items():
        if value is None:
            continue
        name = names.get(field, field)
        items = [value] if isinstance(value, str) else value
        if field not in LISTS and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{name} must be a string or a list of strings, got {value!r}")
        if len(items) > MAX_ITEMS:
            raise ConfigError(f"{name}: at most {MAX_ITEMS} names, got {len(items)}")
        for item in items:
            if not item.strip():
                raise ConfigError(f"{name} must not be empty, got {item!r}")
            if len(item) > limit(field):
                raise ConfigError(
                    f"{name} must be at most {limit(field)} characters, got {len(item)}"
                )
        out[field] = sorted(items) if field in LISTS else value
    return out


def bounded(prov: dict | None) -> dict[str, Any]:
    """The descriptive fields found in ``prov`` (data: a store's provenance, a Minari
    metadata file), each cut to its bound; values of another type are left out."""
    out: dict[str, Any] = {}
    for field in FIELDS:
        value = (prov or {}).get(field)
        if field in LISTS:
            items = [value] if isinstance(value, str) else value
            ok = isinstance(items, (list, tuple, set)) and all(isinstance(v, str) for v in items)
            if ok and items:
                out[field] = sorted(_cut(v, limit(field)) for v in items)[:MAX_ITEMS]
        elif isinstance(value, str):
            out[field] = _cut(value, limit(field))
    return out


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
