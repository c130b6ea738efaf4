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
from itertools import repeat
from pathlib import Path

import numpy as np

MAGIC = b"RLDPACK1"
SUFFIX = ".pack"
_ENTRY = struct.Struct("<32sQQ")  # digest, offset, length
INDEX_DTYPE = np.dtype([("sha", "V32"), ("off", "<u8"), ("len", "<u8")])  # _ENTRY, as an array
_TRAILER = struct.Struct("<Q8s")  # entries, MAGIC


def index_of(units: list[tuple[str, bytes]]) -> np.ndarray:
    """The index entries of ``units`` (hex digest, bytes) written back to back."""
    idx = np.zeros(len(units), INDEX_DTYPE)
    if units:
        idx["sha"] = [np.void(bytes.fromhex(sha)) for sha, _d in units]
        lens = np.array([len(d) for _s, d in units], np.uint64)
        idx["len"] = lens
        idx["off"] = np.cumsum(lens) - lens
    return idx


def write_pack(folder: Path, units: list[tuple[str, bytes]]) -> Path | None:
    """``units`` (hex digest, bytes) as one new pack in ``folder``; None when the disk
    refuses it (a full disk costs the cache, never the read)."""
    return write_parts(folder, [d for _s, d in units], index_of(units))


def write_parts(folder: Path, body: list[bytes], index: np.ndarray) -> Path | None:
    """One new pack of ``body`` (buffers back to back) and ``index`` (entries of
    :data:`INDEX_DTYPE`, offsets into the joined body); None when the disk refuses it."""
    name = secrets.token_hex(16)
    path = folder / f"{name}{SUFFIX}"
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.writelines(body)
            f.write(np.ascontiguousarray(index, INDEX_DTYPE).tobytes())
            f.write(_TRAILER.pack(len(index), MAGIC))
        os.replace(tmp, path)  # whole or absent: a reader never sees a half-written pack
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return path


def _raw_index(path: Path) -> np.ndarray | None:
    """The index of the pack at ``path`` (:data:`INDEX_DTYPE` entries); None when it is gone or
    its index does not fit its file (damaged: the caller removes it)."""
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
    if len(raw) != count * _ENTRY.size:
        return None
    idx = np.frombuffer(raw, INDEX_DTYPE)
    if idx.size and int((idx["off"] + idx["len"]).max()) > start:
        return None
    return idx


def read_index(path: Path) -> list[tuple[str, int, int]] | None:
    """The entries ``(hex digest, offset, length)`` of the pack at ``path``; None when it is
    gone or its index does not fit its file (damaged: the caller removes it)."""
    idx = _raw_index(path)
    if idx is None:
        return None
    return [
        (bytes(sha).hex(), int(o), int(n))
        for sha, o, n in zip(idx["sha"].tolist(), idx["off"].tolist(), idx["len"].tolist())
    ]


class Packs:
    """The packs in one folder, as seen by this process: raw digest -> (pack, offset,
    length) (raw 32-byte keys: a batch's pack may index 100k+ units)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._where: dict[bytes, tuple[str, int, int]] = {}
        self._seen: dict[str, list[bytes]] = {}  # pack name -> the digests it holds

    def add(self, units: list[tuple[str, bytes]]) -> Path | None:
        """Write ``units`` (already verified) as one pack and index it."""
        return self.add_parts([d for _s, d in units], index_of(units))

    def add_parts(self, body: list[bytes], index: np.ndarray) -> Path | None:
        """Write ``body`` with ``index`` (its units, already verified) as one pack; index it."""
        path = write_parts(self.folder, body, index)
        if path is not None:
            self._learn(path.name, index)
        return path

    def read(self, shas: list[str]) -> dict[str, bytes]:
        """The units of ``shas`` that packs hold intact (each hashed; a damaged pack is
        removed whole). Rescans the folder once when some are not indexed."""
        raw = {sha: bytes.fromhex(sha) for sha in dict.fromkeys(shas)}
        if any(r not in self._where for r in raw.values()):
            self.rescan()
        by_pack: dict[str, list[tuple[str, bytes, int, int]]] = {}
        for sha, r in raw.items():
            at = self._where.get(r)
            if at is not None:
                by_pack.setdefault(at[0], []).append((sha, r, at[1], at[2]))
        out: dict[str, bytes] = {}
        for name, entries in by_pack.items():
            path = self.folder / name
            try:
                with open(path, "rb") as f:
                    for sha, r, offset, length in sorted(entries, key=lambda e: e[2]):
                        f.seek(offset)
                        data = f.read(length)
                        if hashlib.sha256(data).digest() != r:
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
            idx = _raw_index(self.folder / name)
            if idx is None:
                self.remove(self.folder / name)
                continue
            self._learn(name, idx)

    def remove(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        self._forget(path.name)

    def _learn(self, name: str, index: np.ndarray) -> None:
        shas = index["sha"].tolist()
        self._seen[name] = shas
        self._where.update(
            zip(shas, zip(repeat(name), index["off"].tolist(), index["len"].tolist()))
        )

    def _forget(self, name: str) -> None:
        for sha in self._seen.pop(name, []):
            if self._where.get(sha, ("",))[0] == name:
                del self._where[sha]
