"""The one reader for files that arrive with data: bounded work for small hostile files.

Every manifest, episode index, JSON run file (``config.json``, ``summary.json``,
``trainer.json``, ``metrics.csv``), Minari metadata file and policy checkpoint is read
through this module. It

- opens regular files only (a FIFO, a device or a link to ``/dev/zero`` is refused after
  ``fstat``, and the open is non-blocking so a FIFO cannot hang it);
- reads at most ``limit + 1`` bytes, so a file over its size limit is refused without
  being read whole;
- refuses JSON nested deeper than :data:`MAX_JSON_DEPTH` before parsing it, so a
  100,000-deep document is one line instead of a ``RecursionError``;
- offers :func:`check_budget` for declared shapes and sizes: callers check what a file
  declares against :data:`MEMORY_BUDGET` before they allocate or decode it.

Each refusal is one line naming the file, what it is and the limit, raised as the error
class the caller names (default :class:`UntrustedFileError`).
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from typing import IO, Any

from rldata._env import env_bytes
from rldata.errors import UntrustedFileError

__all__ = [
    "JSON_LIMIT",
    "MAX_JSON_DEPTH",
    "MEMORY_BUDGET",
    "check_budget",
    "check_depth",
    "escape",
    "json_limit",
    "loads_json",
    "memory_budget",
    "open_regular",
    "read_bytes",
    "read_json",
    "ram_budget",
    "read_text",
]

#: Largest JSON file (manifest, index, run file, metadata) read, in bytes, unless
#: ``RLDATA_JSON_LIMIT`` sets another (:func:`json_limit`).
JSON_LIMIT = 256 * 2**20
#: Deepest JSON nesting accepted (rldata's own files nest fewer than 12 levels).
MAX_JSON_DEPTH = 64
#: Largest allocation a file may make rldata perform from what it declares, in bytes,
#: unless ``RLDATA_MEMORY_BUDGET`` sets another (:func:`memory_budget`).
MEMORY_BUDGET = 2 * 2**30


def json_limit() -> int:
    """:data:`JSON_LIMIT`, or what ``RLDATA_JSON_LIMIT`` sets (read at each use)."""
    return env_bytes("RLDATA_JSON_LIMIT", JSON_LIMIT, minimum=1)


def memory_budget() -> int:
    """:data:`MEMORY_BUDGET`, or what ``RLDATA_MEMORY_BUDGET`` sets (read at each use)."""
    return env_bytes("RLDATA_MEMORY_BUDGET", MEMORY_BUDGET, minimum=1)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def open_regular(
    path: str | os.PathLike[str],
    what: str = "file",
    *,
    limit: int | None = None,
    error: type[Exception] = UntrustedFileError,
) -> IO[bytes]:
    """Open ``path`` for binary reading if it is a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError, NotADirectoryError, PermissionError: as ``open`` does.
        error: the path is a directory, FIFO, socket or device (also through a link), or
            larger than ``limit``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise error(f"{path}: {what} is a directory, not a regular file") from None
    except OSError as err:  # a Unix socket cannot be opened at all (ENXIO): name what it is
        mode = _mode_or_none(path)
        if mode is None or stat.S_ISREG(mode) or isinstance(err, FileNotFoundError):
            raise
        raise error(
            f"{path}: {what} is {_kind(mode)}, not a regular file; refusing to read it"
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _kind(st.st_mode)
            raise error(f"{path}: {what} is {kind}, not a regular file; refusing to read it")
        if limit is not None and st.st_size > limit:
            raise error(
                f"{path}: {what} is {_human(st.st_size)}, over the {_human(limit)} limit "
                "for this kind of file"
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _mode_or_none(path: str | os.PathLike[str]) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bytes(
    path: str | os.PathLike[str],
    what: str = "file",
    *,
    limit: int | None = None,
    error: type[Exception] = UntrustedFileError,
) -> bytes:
    """The bytes of the regular file ``path``, refused when over ``limit`` bytes (default
    :func:`json_limit`).

    At most ``limit + 1`` bytes are read, so a file that grows while read (or lies in
    ``st_size``) is refused without being read whole.
    """
    limit = json_limit() if limit is None else limit
    with open_regular(path, what, limit=limit, error=error) as f:
        buf = io.BytesIO()  # a chunk at a time: f.read(limit + 1) reserves the whole limit
        while buf.tell() <= limit and (block := f.read(min(1 << 20, limit + 1 - buf.tell()))):
            buf.write(block)
        data = buf.getvalue()
    if len(data) > limit:
        raise error(f"{path}: {what} is over the {_human(limit)} limit for this kind of file")
    return data


def read_text(
    path: str | os.PathLike[str],
    what: str = "file",
    *,
    limit: int | None = None,
    error: type[Exception] = UntrustedFileError,
) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`read_bytes`)."""
    data = read_bytes(path, what, limit=limit, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def check_depth(
    data: bytes | str,
    where: object,
    what: str = "JSON",
    *,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[Exception] = UntrustedFileError,
) -> None:
    """Refuse JSON text nested deeper than ``max_depth`` without parsing it."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    depth = deepest = 0
    for m in re.finditer(rb"[\[\]{}]", _STRING.sub(b"", raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > max_depth:
                    raise error(
                        f"{where}: {what} nests deeper than {max_depth} levels; refusing to parse it"
                    )
        else:
            depth -= 1


def loads_json(
    data: bytes | str,
    where: object,
    what: str = "JSON",
    *,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[Exception] = UntrustedFileError,
    finite: bool = False,
) -> Any:
    """Parse JSON that came with data: depth-checked first, one line on any failure.

    ``finite=True`` refuses ``NaN`` / ``Infinity``, which Python's parser accepts but strict
    JSON (and a manifest rldata wrote: its checksum is taken with ``allow_nan=False``) never
    holds.
    """
    check_depth(data, where, what, max_depth=max_depth, error=error)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(data, parse_constant=no_constant) if finite else json.loads(data)
    except UnicodeDecodeError as exc:
        raise error(
            f"{where}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise error(f"{where}: {what} is not valid JSON ({exc})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 100,000 digits
        raise error(f"{where}: {what} is not valid JSON ({_first_line(exc)})") from None


def read_json(
    path: str | os.PathLike[str],
    what: str = "JSON file",
    *,
    limit: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[Exception] = UntrustedFileError,
) -> Any:
    """Read and parse the JSON file ``path`` within the size and depth limits."""
    data = read_bytes(path, what, limit=limit, error=error)
    return loads_json(data, path, what, max_depth=max_depth, error=error)


def text_stream(
    path: str | os.PathLike[str],
    what: str = "file",
    *,
    limit: int | None = None,
    error: type[Exception] = UntrustedFileError,
) -> io.StringIO:
    """A text stream over the regular file ``path`` (for ``csv`` readers), within ``limit``."""
    return io.StringIO(read_text(path, what, limit=limit, error=error), newline="")


def check_budget(
    nbytes: float,
    where: object,
    what: str,
    *,
    budget: int | None = None,
    error: type[Exception] = UntrustedFileError,
) -> None:
    """Refuse an allocation of ``nbytes`` that a file declares when it exceeds the budget."""
    limit = memory_budget() if budget is None else budget
    if not nbytes <= limit:  # also refuses nan
        raise error(
            f"{where}: {what} would need {_human(int(nbytes)) if nbytes == nbytes else nbytes}, "
            f"over the {_human(limit)} memory budget (RLDATA_MEMORY_BUDGET); refusing to allocate it"
        )


def ram_budget() -> int:
    """The budget for sizes a user asks for (replay, batch, network widths): this machine's
    physical memory (``RLDATA_MEMORY_BUDGET`` when set), never below :data:`MEMORY_BUDGET`."""
    if os.environ.get("RLDATA_MEMORY_BUDGET", "").strip():
        return memory_budget()
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        ram = 0
    return max(memory_budget(), ram)


def escape(value: object) -> str:
    """``str(value)`` with control characters (ESC, CR, LF, BEL, C1, ...) shown as escapes.

    Everything printed to a terminal from data goes through this, so a store cannot
    clear the screen, set the window title or forge a line of output.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(value))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
