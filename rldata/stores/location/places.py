"""Where a store lives: a local path or an fsspec URL, checked once, here.

:func:`local_dir` turns a user's path (or ``file://`` URL) into a local directory. A URL is resolved to an fsspec filesystem and a root path inside it; :class:`Location`
gives the few object operations a store needs there (read, write, put-if-absent, list). Schemes that fsspec
does not know, and schemes refused for safety (plain ``http``, chained URLs, file systems
that read other files' references or run code), fail with one line before anything is
read or written. Credentials come from each file system's usual places (environment,
config files); :func:`redact` keeps them out of anything rldata writes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from rldata._env import cache_root as cache_root  # re-exported: callers import it here
from rldata.errors import MissingDependencyError, StoreError, UnsupportedURLError
from rldata.stores.location.remote_names import read_capped

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

    @property
    def exclusive_create(self) -> bool:
        """Whether :meth:`put_if_absent` is atomic here (the object-store commit needs it)."""
        return bool({"s3", "s3a", "memory", "file", "local"} & set(_protocols(self.fs)))

    def cat(self, rel: str, *, limit: int | None = None) -> bytes | None:
        """The bytes of object ``rel``, or None when there is none. With ``limit``, at most
        ``limit + 1`` bytes are read, in chunks: a caller tells an object over ``limit``
        without downloading it (an untrusted remote can put a huge object where a small
        one belongs).

        Raises:
            StoreError: the file system refused the read (permissions, no such bucket, ...).
        """
        try:
            if limit is None:
                return bytes(self.fs.cat_file(self.path(rel)))
            return read_capped(self.fs, self.path(rel), limit + 1, where=rel, exact=False)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._io_error("read", rel, exc) from None

    def put(self, rel: str, data: bytes) -> Any:
        """Write object ``rel`` (whole-object PUT: readers see the old bytes or the new).

        Raises:
            StoreError: the file system refused the write.
        """
        try:
            return self.fs.pipe_file(self.path(rel), data)
        except OSError as exc:
            raise self._io_error("write", rel, exc) from None

    def _io_error(self, what: str, rel: str, exc: OSError) -> StoreError:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return StoreError(f"store URL {redact(self.url)}: cannot {what} {rel} ({reason})")

    def check_exclusive_create(self) -> None:
        """Refuse, in one line, a file system without an atomic put-if-absent.

        Raises:
            StoreError: writing a store there could not tell two racing writers apart.
        """
        if not self.exclusive_create:
            raise StoreError(
                f"store URL {redact(self.url)}: file system {_protocols(self.fs)[0]!r} has no "
                f"put-if-absent rldata trusts, so writing a store there is refused; write on "
                f"s3:// (or a local path) and rldata push"
            )

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Create object ``rel`` holding ``data`` unless it exists; return whether it did.

        Atomic against any other writer: S3's conditional ``PUT`` (``If-None-Match: *``,
        through s3fs's ``mode="create"``), a hard link on a local disk (``link`` fails on an
        existing name), and one process-wide lock for ``memory://`` (which lives in this
        process). Other file systems are refused rather than raced.

        Raises:
            StoreError: the file system has no atomic exclusive create rldata trusts.
        """
        self.check_exclusive_create()
        path = self.path(rel)
        try:
            if self.local:
                return _link_create(path, data)
            if "memory" in _protocols(self.fs):
                with _MEMORY_LOCK:
                    self.fs.pipe_file(path, data, mode="create")
                return True
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._io_error("write", rel, exc) from None
        return True

    def names(self, rel: str) -> list[str]:
        """Names of the objects directly under ``rel`` (empty when there are none)."""
        try:
            found = self.fs.ls(self.path(rel), detail=False, refresh=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except TypeError:  # file systems without a listings cache take no ``refresh``
            found = self.fs.ls(self.path(rel), detail=False)
        except OSError as exc:
            raise self._io_error("list", rel, exc) from None
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in found)


_MEMORY_LOCK = threading.Lock()


def _link_create(path: str, data: bytes) -> bool:
    """Write ``data`` to a temporary file, fsync it, and hard-link it to ``path`` unless
    ``path`` exists (``link`` never replaces a name, so one of two racers wins)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(
        folder, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    )
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return True


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
    if len(scheme) <= 1 or scheme == "file":  # a local path (or a Windows drive letter)
        fs = fsspec.filesystem("file")
        root = os.path.abspath(os.path.expanduser(file_url_path(text)))
        return Location(fs, root.rstrip("/") or "/", root if scheme != "file" else text)
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
    if not urlsplit(text).netloc and scheme != "memory":
        raise UnsupportedURLError(
            f"store URL {scheme}://{urlsplit(text).path}: names no bucket or host (expected "
            f"{scheme}://BUCKET/PATH)"
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


def local_dir(path: str | os.PathLike[str]) -> Path:
    """The local directory of a store given as a path or a ``file://`` URL.

    Raises:
        StoreError: the URL scheme needs a remote filesystem, which no local backend handles.
    """
    text = os.fspath(path)
    scheme = urlsplit(text).scheme
    if len(scheme) > 1 and scheme != "file":  # one letter is a Windows drive
        raise StoreError(
            f"store URL {redact(text)!r}: this takes a local path or file://; stores at a URL are "
            f"created, opened and recorded into by rldata.create / open / collect --out"
        )
    local = file_url_path(text)
    _check_utf8(local)
    # os.path.expanduser leaves an unknown ~user as it is (Path.expanduser raises RuntimeError)
    return Path(os.path.expanduser(local)).absolute()


def file_url_path(text: str) -> str:
    """The local path a ``file:`` URL names (RFC 8089), or ``text`` itself when it is a path.

    One reading for every command: the scheme in any case, the path percent-decoded (what
    ``Path.as_uri()`` writes, ``file:///tmp/my%20runs``), the host empty or ``localhost``.
    ``file://data/a`` names the host ``data``, not the folder ``data/a``, and a ``?query`` or
    ``#fragment`` has no meaning for a folder: both are refused rather than read as another
    path (before, ``info`` read the working directory and ``push`` wrote ``./localhost/...``).

    Raises:
        UnsupportedURLError: a host other than this machine, a query or fragment, no path.
    """
    parts = urlsplit(text)
    if parts.scheme != "file":
        return text
    if parts.netloc not in ("", "localhost"):
        raise UnsupportedURLError(
            f"file URL {text!r}: host {parts.netloc!r} is not this machine; give an absolute "
            f"path as file:///PATH (three slashes) or a plain path"
        )
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        extra = text[cut:]
        raise UnsupportedURLError(
            f"file URL {text!r}: a query or fragment ({extra!r}) names no folder; give the "
            f"path alone (a '?' or '#' in a folder's name is written %3F or %23)"
        )
    if not parts.path:
        raise UnsupportedURLError(f"file URL {text!r} names no path (expected file:///PATH)")
    return unquote(parts.path, errors="surrogateescape")


def _check_utf8(local: str) -> None:
    """Refuse a path torch's memmaps and pyarrow cannot open: they take UTF-8 names only, so
    a name that is not UTF-8 (a Latin-1 folder) or any non-ASCII name under a locale that is
    not UTF-8 (``LC_ALL=C`` without Python's UTF-8 mode) failed mid-write, leaving a half store.

    Raises:
        StoreError: the path cannot be handed over as UTF-8, with what to change.
    """
    try:
        local.encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(local)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            why = (
                "is not valid UTF-8 (torch's memmaps and pyarrow open UTF-8 names only); rename it"
            )
        else:
            why = (
                f"cannot be passed on as UTF-8 under this locale (file system encoding "
                f"{sys.getfilesystemencoding()!r}); set LC_ALL=C.UTF-8 or PYTHONUTF8=1"
            )
        raise StoreError(f"path {raw!r} {why}") from None
