"""Every file of a run is written whole or not at all, and a full disk is one line.

A run's files (``config.json``, ``metrics.csv``, ``checkpoint/*``, ``policy.pt``,
``summary.json``) go through a temporary name, ``os.write`` and ``fsync``, then a rename:
when the disk is full (``ENOSPC``), the quota is spent (``EDQUOT``) or the file size limit
is reached (``EFBIG``) the temporary file is removed, the previous version of the file is
left as it was, and :class:`~rldata.errors.DiskFullError` names the path. Serialization
(``torch.save``) happens in memory first: torch's own file writer reports a full disk as
an opaque ``RuntimeError`` without the path.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from rldata.errors import DiskFullError
from rldata.stores.format.commit import atomic_write

DISK_FULL = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name)
)
"""The errnos that mean "no room for these bytes": the user frees space, no code change."""


def disk_full(err: OSError, path: str | os.PathLike) -> DiskFullError:
    """The one-line error for a write of ``path`` the file system refused for lack of room."""
    code = err.errno if err.errno is not None else errno.ENOSPC
    reason = os.strerror(code)
    error = DiskFullError(
        f"{os.fspath(path)}: {reason} while writing the run; files written before are "
        "intact (free space, then rerun; --resume continues from the last complete checkpoint)"
    )
    error.errno = code  # a message of its own: str() is the one line, not "[Errno ...]"
    return error


@contextlib.contextmanager
def refusing_full_disk(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full-disk ``OSError`` raised inside the block into :class:`DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as err:
        if err.errno in DISK_FULL:
            raise disk_full(err, path) from None
        raise


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Replace ``path`` with ``data`` atomically (temporary file, fsync, rename).

    Raises:
        DiskFullError: no room for the bytes; ``path`` keeps its previous content.
    """
    path = Path(path)
    with refusing_full_disk(path):
        atomic_write(path, bytes(data))  # the store's own temp-fsync-rename
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`write_bytes` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def save_tensors(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` into ``path`` through :func:`write_bytes` (serialized in memory)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_bytes(path, buf.getbuffer())


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path``; on a full disk the file is cut back to its old length,
    so no half line is left.

    Raises:
        DiskFullError: no room for the bytes; ``path`` is as it was.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            with refusing_full_disk(path):
                _write_all(fd, text.encode("utf-8"))
        except DiskFullError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
