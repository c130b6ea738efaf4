"""Open a store given as a local path or a URL (a URL reads its verified local cached copy)."""

from __future__ import annotations

import os
from typing import Any

from rldata import stores
from rldata.sharing.cache import open_url
from rldata.sharing.urls import is_url


def local_path(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``path`` itself, or the cached local copy of the store at a URL."""
    return open_url(os.fspath(path)) if is_url(path) else path


def open_source(path: str | os.PathLike[str]) -> Any:
    """The store at ``path`` or URL, read-only."""
    return stores.open(local_path(path))
