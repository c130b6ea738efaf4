"""Where a shared store lives: a local path or an fsspec URL, checked once, here.

A URL is resolved to an fsspec filesystem and a root path inside it. Schemes that fsspec
does not know, and schemes refused for safety (plain ``http``, chained URLs, file systems
that read other files' references or run code), fail with one line before anything is
read or written. Credentials come from each file system's usual places (environment,
config files); :func:`redact` keeps them out of anything rldata writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rldata.errors import MissingDependencyError, UnsupportedURLError

ALLOWED = (
    "file",
    "memory",
    "s3",
    "s3a",
    "gs",
    "gcs",
    "az",
    "abfs",
    "abfss",
    "hf",
    "https",
    "sftp",
)
"""Schemes a store may live at: object stores, local files, memory (tests), read-only https."""

_WHY_REFUSED = {
    "http": "plain http is unencrypted; use https",
    "ftp": "ftp sends credentials in clear text",
    "reference": "a reference file system reads whatever paths its references name",
    "dask": "it runs on a remote cluster",
}
_PACKAGES = {
    "s3": "s3fs (pip install 'rldata[s3]')",
    "s3a": "s3fs (pip install 'rldata[s3]')",
}


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a remote location: a scheme other than ``file`` or a drive letter."""
    text = os.fspath(path)
    if "::" in text:
        return True
    scheme = urlsplit(text).scheme
    return len(scheme) > 1 and scheme != "file"


@dataclass(frozen=True)
class Location:
    """A store's root inside one fsspec file system."""

    fs: Any
    root: str
    url: str

    @property
    def local(self) -> bool:
        """Whether the bytes sit on this machine's disk (hashing them costs no transfer)."""
        return "file" in _protocols(self.fs)

    @property
    def s3(self) -> bool:
        """Whether the file system is S3 (its ETag is the MD5 of what the server received)."""
        return bool({"s3", "s3a"} & set(_protocols(self.fs)))

    def path(self, rel: str) -> str:
        """The full path of the object ``rel`` (a ``/``-separated path inside the store)."""
        return f"{self.root}/{rel}" if rel else self.root


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def location(path: str | os.PathLike[str], storage_options: dict | None = None) -> Location:
    """Resolve a local path or URL to a :class:`Location`.

    Raises:
        UnsupportedURLError: fsspec does not know the scheme, or it is refused for safety.
        MissingDependencyError: the scheme's file system package is not installed.
    """
    import fsspec
    from fsspec.registry import known_implementations

    text = os.fspath(path)
    if "::" in text:
        raise UnsupportedURLError(
            f"store URL {redact(text)!r}: chained URLs ('::') are refused for safety; give one scheme"
        )
    scheme = urlsplit(text).scheme
    if len(scheme) <= 1:  # a local path (or a Windows drive letter)
        fs = fsspec.filesystem("file")
        root = os.path.abspath(os.path.expanduser(text))
        return Location(fs, root.rstrip("/") or "/", root)
    if scheme not in known_implementations:
        raise UnsupportedURLError(
            f"store URL {redact(text)!r}: scheme {scheme!r} is not a file system fsspec knows; "
            f"use one of {', '.join(ALLOWED)}"
        )
    if scheme not in ALLOWED:
        why = _WHY_REFUSED.get(scheme, "it is not an object store or local file system")
        raise UnsupportedURLError(
            f"store URL {redact(text)!r}: scheme {scheme!r} is refused for safety ({why}); "
            f"use one of {', '.join(ALLOWED)}"
        )
    try:
        fs, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except ImportError as exc:
        need = _PACKAGES.get(scheme, str(exc).split("\n")[0])
        raise MissingDependencyError(
            f"store URL {redact(text)!r}: scheme {scheme!r} needs {need}"
        ) from None
    return Location(fs, str(root).rstrip("/"), text)


def redact(url: str) -> str:
    """``url`` without user info, query or fragment (where tokens and passwords hide)."""
    parts = urlsplit(url)
    if len(parts.scheme) <= 1:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
