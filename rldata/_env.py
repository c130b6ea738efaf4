"""Sizes a user sets through the environment (``RLDATA_*_BYTES``, ``RLDATA_JSON_LIMIT``,
``RLDATA_MEMORY_BUDGET``): read when used, so a bad value is one :class:`ConfigError` line
naming the variable (and, in the CLI, exit 1), not a traceback while importing rldata."""

from __future__ import annotations

import os
import re
from pathlib import Path

from rldata.errors import ConfigError

_DIGITS = re.compile(r"[0-9][0-9_]{0,24}")  # at most ~10**25: int() is safe, no digit bomb
_MAX = 1 << 62


def env_bytes(name: str, default: int, *, minimum: int = 0) -> int:
    """The size in bytes environment variable ``name`` sets (unset or blank: ``default``).

    Raises:
        ConfigError: the value is not a whole number of bytes in ``[minimum, 2**62]``.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not minimum <= value <= _MAX:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ConfigError(
            f"environment variable {name} must be a whole number of bytes from {minimum:,} "
            f"to 2**62 (default {default:,}), got {shown!r}"
        )
    return value


MAP_BYTES = 512 << 20
"""Bytes of store files a reader gathers through memory maps before it reads rows with
``pread`` (memmap) or drops mapped pages after each batch (parquet), unless
``RLDATA_MAP_BYTES`` sets another: a random row read through a mapping maps the page-cache
folio around it, so a sampler's resident memory would grow towards the store's size."""


def map_bytes() -> int:
    """:data:`MAP_BYTES`, or what ``RLDATA_MAP_BYTES`` sets (read at each use)."""
    return env_bytes("RLDATA_MAP_BYTES", MAP_BYTES)


def cache_root() -> Path:
    """Where rldata keeps what it caches on this machine (copies of stores at URLs, streamed
    units, blocks proven on read): ``$RLDATA_CACHE``, else ``~/.cache/rldata``."""
    return Path(os.environ.get("RLDATA_CACHE") or "~/.cache/rldata").expanduser().absolute()
