"""Names inside a store directory: the manifest, the lock, temporary files, paths a manifest names.

Pure path arithmetic on a local directory, no I/O beyond resolving symlinks: the format core
and every backend use it; where a store lives (a path or a URL) is
:mod:`rldata.stores.location.places`.
"""

from __future__ import annotations

import os
from pathlib import Path

from rldata.errors import CorruptStoreError

MANIFEST = "rldata.json"
LOCK = "rldata.lock"
TMP_MARK = ".tmp-"


def manifest_path(root: Path) -> Path:
    """The manifest of the store at ``root``."""
    return root / MANIFEST


def is_temp(name: str) -> bool:
    """Whether a file name is a leftover temporary file (ignored by readers, removed by writers)."""
    return TMP_MARK in name


def inside(root: Path, rel: object, what: str) -> Path:
    """``root / rel`` for a path named by an untrusted manifest, refused unless it stays inside.

    ``rel`` must be a relative POSIX path without ``..`` components whose real location
    (symlinks followed) is under the real ``root``, and not ``root`` itself.

    Raises:
        CorruptStoreError: ``rel`` is not a string, is absolute, climbs out, or a symlink
            leads out of the store.
    """
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise CorruptStoreError(f"{root}: manifest names {what} {rel!r}; expected a relative path")
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise CorruptStoreError(
            f"{root}: manifest names {what} {rel!r}, which leaves the store or is not a plain "
            f"relative path"
        )
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise CorruptStoreError(
            f"{root}: manifest names {what} {rel!r}, which resolves to {real}, outside the store"
        )
    return path
