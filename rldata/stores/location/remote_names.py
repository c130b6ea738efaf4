"""What rldata accepts from a remote store: its object names and its bytes, both bounded.

A remote store is untrusted input. Every name it hands over (a key in a listing, an object
index or a numbered manifest) goes through :func:`check_name` before it is used, and every
local path built from one goes through :func:`contained_name`, which also resolves it and
refuses one that lands outside the root. Every object is read by :func:`read_capped`:
chunk by chunk, never more than its declared size plus one byte, so a 600 MiB object
declared as 4 kB stops after 4 kB and one chunk.

Examples:
    >>> check_name("data/action.memmap", "s3://b/ds")
    'data/action.memmap'
    >>> check_name("trav/../../x", "s3://b/ds")
    Traceback (most recent call last):
    ...
    rldata.errors.CorruptStoreError: s3://b/ds: object name 'trav/../../x' is refused (a '..' segment); a store's names stay inside it
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from rldata.errors import CorruptStoreError, TransferError

MAX_NAME_BYTES = 1024  # S3's longest key
MAX_SEGMENT_BYTES = 255  # the longest file name of common local file systems
CHUNK = 1 << 20
T = TypeVar("T")
R = TypeVar("R")


def _why(name: object) -> str | None:
    """Why ``name`` is not a plain relative object name, or None when it is one."""
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    if not name:
        return "empty"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a NUL or control character"
    if "\\" in name:
        return "a backslash"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MAX_NAME_BYTES:
        return f"{size} bytes long, over {MAX_NAME_BYTES}"
    for part in name.split("/"):
        if part == "":
            return "an empty segment"
        if part in (".", ".."):
            return f"a {part!r} segment"
        if len(part.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment over {MAX_SEGMENT_BYTES} bytes"
    return None


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 80 else f"{text[:60]}…({len(text)} chars)"


def check_name(name: object, where: str) -> str:
    """``name`` if it is a plain ``/``-separated relative object name inside a store.

    Raises:
        CorruptStoreError: an absolute name, a ``..`` or ``.`` or empty segment, a NUL or
            control character, a backslash, or a name or segment that is too long.
    """
    why = _why(name)
    if why is not None:
        raise CorruptStoreError(
            f"{where}: object name {_shown(name)} is refused ({why}); a store's names stay inside it"
        )
    return str(name)


def contained_name(root: str | os.PathLike[str], name: object, where: str) -> Path:
    """The local path of the remote object ``name`` under ``root``, checked to stay there.

    Raises:
        CorruptStoreError: ``name`` fails :func:`check_name`, or resolves outside ``root``
            (through a symbolic link already there).
    """
    rel = check_name(name, where)
    base = Path(root).resolve()
    target = base.joinpath(*rel.split("/"))
    if not target.resolve().is_relative_to(base):
        raise CorruptStoreError(
            f"{where}: object name {_shown(rel)} is refused (it resolves outside {base})"
        )
    return target


def read_capped(fs: Any, path: str, cap: int, *, where: str, exact: bool = True) -> bytes | None:
    """The bytes of the object at ``path``, read in chunks, at most ``cap`` of them.

    With ``exact`` the object must hold exactly ``cap`` bytes: the read fails on the first
    byte past it, and on a short object. Without it, the first ``cap`` bytes are returned
    (a memmap payload's sparse tail is not data).

    Returns None when there is no object at ``path``.

    Raises:
        TransferError: the object holds more (or fewer) bytes than declared.
    """
    out = io.BytesIO()  # grows in place: about one copy of the bytes at the peak, not two
    try:
        for block in read_chunks(fs, path, cap, where=where, exact=exact):
            out.write(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return out.getvalue()


def read_chunks(fs: Any, path: str, cap: int, *, where: str, exact: bool = True) -> Iterator[bytes]:
    """:func:`read_capped` one :data:`CHUNK` at a time (memory: a chunk, whatever the object's
    size). A missing object raises ``FileNotFoundError`` on the first step; a size other than
    declared raises ``TransferError`` once the read reaches it."""
    got = 0
    want = cap + 1 if exact else cap
    with fs.open(path, "rb", block_size=CHUNK) as f:
        while got < want:
            block = f.read(min(CHUNK, want - got))
            if not block:
                break
            got += len(block)
            if got <= cap:
                yield block
    if exact and got != cap:
        held = f"more (stopped at byte {got})" if got > cap else str(got)
        raise TransferError(f"{where}: declared {cap} bytes, holds {held}; refused")


def fetch_to_file(
    fs: Any, path: str, want: tuple[int, str], target: Path, *, where: str
) -> tuple[int, str] | None:
    """Stream the object at ``path`` into a temporary sibling of ``target``, hashed as it
    arrives (memory: a chunk, whatever its size; at most one byte past the declared size is
    read), and rename it to ``target`` only when it holds ``want`` (size, SHA-256). Returns
    the bytes read and their SHA-256 for the caller's check, or None when there is no object."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    h, got = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as f:
            for block in read_chunks(fs, path, want[0] + 1, where=where, exact=False):
                h.update(block)
                f.write(block)
                got += len(block)
        if (got, h.hexdigest()) == want:
            os.replace(tmp, target)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return got, h.hexdigest()


def each_in_turn(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """``fn(item)`` of every item on ``pool``, at most ``window`` at a time, results as they
    finish. The first failure is raised at once and nothing more is started, so an index
    naming 100,000 missing objects fails after about ``window`` lookups, not 100,000."""
    todo = iter(items)
    pending = {pool.submit(fn, item) for item in itertools.islice(todo, max(1, window))}
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                for item in itertools.islice(todo, 1):
                    pending.add(pool.submit(fn, item))
    finally:
        for fut in pending:
            fut.cancel()
