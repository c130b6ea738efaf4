"""Pack files of the chunk cache: a batch's verified units kept as one file.

Keeping each unit as its own file costs a create and a rename per unit (about 5 ms each
on a busy disk: 2,090 units were 10 s of a 1M-row first batch). A batch's units go into
one *pack* instead: their bytes back to back, then one index entry per unit (digest,
offset, length) and a trailer (entry count, :data:`MAGIC`), written to a private temporary
file and renamed into ``packs/`` once. Nothing is synced: nothing in a pack is trusted.
Every unit read from a pack is hashed against the digest it was looked up by, and a pack
found damaged (a unit that hashes otherwise, an index that does not fit its file) is
removed whole, so its units are fetched again when next wanted, never served.

Processes share packs: each handle indexes the packs it has seen and rescans the
directory (reading only the indexes of packs new to it) when a lookup misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import struct
from pathlib import Path

MAGIC = b"RLDPACK1"
SUFFIX = ".pack"
_ENTRY = struct.Struct("<32sQQ")  # digest, offset, length
_TRAILER = struct.Struct("<Q8s")  # entries, MAGIC


def write_pack(folder: Path, units: list[tuple[str, bytes]]) -> Path | None:
    """``units`` (hex digest, bytes) as one new pack in ``folder``; None when the disk
    refuses it (a full disk costs the cache, never the read)."""
    body, index, at = [], [], 0
    for sha, data in units:
        body.append(data)
        index.append(_ENTRY.pack(bytes.fromhex(sha), at, len(data)))
        at += len(data)
    name = secrets.token_hex(16)
    path = folder / f"{name}{SUFFIX}"
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.writelines(body)
            f.writelines(index)
            f.write(_TRAILER.pack(len(units), MAGIC))
        os.replace(tmp, path)  # whole or absent: a reader never sees a half-written pack
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return path


def read_index(path: Path) -> list[tuple[str, int, int]] | None:
    """The entries ``(hex digest, offset, length)`` of the pack at ``path``; None when it is
    gone or its index does not fit its file (damaged: the caller removes it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _TRAILER.size:
                return None
            f.seek(size - _TRAILER.size)
            count, magic = _TRAILER.unpack(f.read(_TRAILER.size))
            start = size - _TRAILER.size - count * _ENTRY.size
            if magic != MAGIC or start < 0:
                return None
            f.seek(start)
            raw = f.read(count * _ENTRY.size)
    except OSError:
        return None
    out = []
    for sha, offset, length in _ENTRY.iter_unpack(raw):
        if offset + length > start:
            return None
        out.append((sha.hex(), offset, length))
    return out


class Packs:
    """The packs in one folder, as seen by this process: digest -> (pack, offset, length)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._where: dict[str, tuple[str, int, int]] = {}
        self._seen: dict[str, list[str]] = {}  # pack name -> the digests it holds

    def add(self, units: list[tuple[str, bytes]]) -> Path | None:
        """Write ``units`` (already verified) as one pack and index it."""
        path = write_pack(self.folder, units)
        if path is not None:
            entries, at = [], 0
            for sha, data in units:
                entries.append((sha, at, len(data)))
                at += len(data)
            self._learn(path.name, entries)
        return path

    def read(self, shas: list[str]) -> dict[str, bytes]:
        """The units of ``shas`` that packs hold intact (each hashed; a damaged pack is
        removed whole). Rescans the folder once when some are not indexed."""
        if any(sha not in self._where for sha in shas):
            self.rescan()
        by_pack: dict[str, list[tuple[str, int, int]]] = {}
        for sha in dict.fromkeys(shas):
            at = self._where.get(sha)
            if at is not None:
                by_pack.setdefault(at[0], []).append((sha, at[1], at[2]))
        out: dict[str, bytes] = {}
        for name, entries in by_pack.items():
            path = self.folder / name
            try:
                with open(path, "rb") as f:
                    for sha, offset, length in sorted(entries, key=lambda e: e[1]):
                        f.seek(offset)
                        data = f.read(length)
                        if hashlib.sha256(data).hexdigest() != sha:
                            raise ValueError(sha)
                        out[sha] = data
            except ValueError:  # damaged on disk: the pack goes, its units are fetched again
                self.remove(path)  # (those read before the damaged one were verified)
                continue
            except OSError:  # evicted by another process meanwhile
                self._forget(name)
                continue
            with contextlib.suppress(OSError):
                os.utime(path)  # LRU: the most recently used packs are evicted last
        return out

    def rescan(self) -> None:
        """Index the packs other processes wrote since the last scan; forget removed ones."""
        try:
            names = {e.name for e in os.scandir(self.folder) if e.name.endswith(SUFFIX)}
        except OSError:
            names = set()
        for gone in set(self._seen) - names:
            self._forget(gone)
        for name in names - set(self._seen):
            entries = read_index(self.folder / name)
            if entries is None:
                self.remove(self.folder / name)
                continue
            self._learn(name, entries)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        self._forget(path.name)

    def _learn(self, name: str, entries: list[tuple[str, int, int]]) -> None:
        self._seen[name] = [sha for sha, _o, _n in entries]
        for sha, offset, length in entries:
            self._where[sha] = (name, offset, length)

    def _forget(self, name: str) -> None:
        for sha in self._seen.pop(name, []):
            if self._where.get(sha, ("",))[0] == name:
                del self._where[sha]
