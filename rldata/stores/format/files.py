"""Where a store lives: the one place that turns a user's path or URL into a location.

Stores written here are local directories; a store at an fsspec URL (``s3://``,
``memory://``) is written through a local working copy by :mod:`rldata.stores.location.remote_commit`,
and :mod:`rldata.stores.location.places` resolves URLs.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from rldata.errors import StoreError
from rldata.stores.location.places import redact

MANIFEST = "rldata.json"
LOCK = "rldata.lock"
TMP_MARK = ".tmp-"


def local_dir(path: str | os.PathLike[str]) -> Path:
    """The local directory of a store given as a path or a ``file://`` URL.

    Raises:
        StoreError: the URL scheme needs a remote filesystem, which no local backend handles.
    """
    text = os.fspath(path)
    scheme = urlparse(text).scheme
    if scheme == "file":
        text = urlparse(text).path
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise StoreError(
            f"store URL {redact(text)!r}: this takes a local path or file://; stores at a URL are "
            f"created, opened and recorded into by rldata.create / open / collect --out"
        )
    return Path(text).expanduser().absolute()


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
    from rldata.errors import CorruptStoreError

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
