"""Blocks proven on this machine: what a verified read hashed, kept for the next handle.

A verified open of a memmap store with block digests hashes each block of rows the first
time a read touches it (:mod:`rldata.stores.backend._memmap_checks`). Without a record, every
process does that again: each training run, each DataLoader worker, and the run after a
full ``rldata verify``, re-hashes the whole store as it samples it (a 30M-row store: 5 GB,
the first minutes of sampling at a few batches a second).

A *proof record* keeps, per user, which blocks of which keys a handle found equal to their
digest, bound to everything that made them true:

- the store's real path and the SHA-256 of its manifest as read (a commit starts a new
  record: the old one no longer matches);
- each payload file's identity as it was when the handle checked it: device, inode, size,
  mtime and ctime in nanoseconds. Writing to a file, truncating, replacing or touching it
  changes its ctime, which only the kernel sets, so bytes changed after the proof void it.
  A file changed less than :data:`SETTLED_NS` before a record would be written gets no
  record: the kernel stamps times from a coarse clock (milliseconds), so a second change
  within the same tick could leave the identity as it was.

A later handle of the same store reads the record when it is armed and starts with those
blocks checked; it refuses any record whose binding differs from what it sees now. A full
check that proves every row (``rldata verify``) records every block.

The records live in ``$RLDATA_CACHE/proofs`` (default ``~/.cache/rldata/proofs``), created
mode 0700; a directory owned by another user or writable by others is not used (whoever
could write a record there could make a reader skip its checks). The record is the user's
own data, not the store's: nothing read from a store decides a record's path. A record ends
with the SHA-256 of what precedes it; a damaged or foreign record is ignored, never trusted
and never an error. ``RLDATA_PROOFS=0`` turns
records off.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import numpy as np

from rldata._env import cache_root

MAGIC = b"rldata-proofs 1\n"
HEADER_LIMIT = 1 << 20  # a record's JSON line; far more than ~100 keys' identities
KEEP = 512  # records kept; the least recently written beyond this are removed
SETTLED_NS = 2_000_000_000  # a file's last change at least this long before its record


def proofs_dir() -> Path | None:
    """The directory of proof records, created if missing; None when records are off or
    the directory is not this user's alone."""
    if os.environ.get("RLDATA_PROOFS", "").strip() == "0":
        return None
    d = cache_root() / "proofs"
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return d


def identity(path: Path) -> list[int] | None:
    """What changes when a file's bytes may have: device, inode, size, mtime, ctime (ns)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class ProofRecord:
    """The proof record of one store as one handle sees it: its binding (store path,
    manifest, file identities, the ``[blocks, keys]`` shape of the checked table)."""

    def __init__(
        self, root: Path, manifest: dict, files: dict[str, Path], shape: tuple[int, int]
    ) -> None:
        self.files = files
        self.shape = (int(shape[0]), int(shape[1]))
        self.identities: dict[str, list[int] | None] = {
            k: identity(p) for k, p in sorted(files.items())
        }
        real = os.path.realpath(root)
        canon = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canon.encode()).hexdigest()
        self.binding: dict[str, Any] = {
            "store": real,
            "manifest": digest,
            "shape": list(self.shape),
            "files": self.identities,
        }
        self.name = hashlib.sha256(f"{real}\0{digest}".encode()).hexdigest()[:40]

    @property
    def complete(self) -> bool:
        """Every file was there to be identified (a record binds nothing otherwise)."""
        return all(v is not None for v in self.identities.values())

    def load(self) -> np.ndarray | None:
        """The blocks a record proves, ``[blocks, keys]`` booleans, or None (no record, or
        one bound to other bytes)."""
        d = proofs_dir()
        if d is None or not self.complete:
            return None
        return self._read(d / f"{self.name}.bits")

    def _read(self, path: Path) -> np.ndarray | None:
        blocks, keys = self.shape
        bits = (blocks * keys + 7) // 8
        try:
            with open(path, "rb") as f:
                data = f.read(len(MAGIC) + HEADER_LIMIT + bits + 32 + 1)
        except OSError:
            return None
        body, seal = data[:-32], data[-32:]
        if not data.startswith(MAGIC) or hashlib.sha256(body).digest() != seal:
            return None  # damaged, cut short or from another version
        header, sep, raw = body[len(MAGIC) :].partition(b"\n")
        try:
            if not sep or json.loads(header) != self.binding or len(raw) != bits:
                return None
        except ValueError:
            return None
        flat = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=blocks * keys)
        return flat.astype(bool).reshape(blocks, keys)

    def save(self, checked: np.ndarray) -> bool:
        """Add ``checked`` to the record (what other handles proved stays), if the files
        are still the ones this handle checked. Never raises: a record is an optimisation."""
        d = proofs_dir()
        if d is None or not self.complete or tuple(checked.shape) != self.shape:
            return False
        if any(identity(p) != self.identities[k] for k, p in self.files.items()):
            return False  # changed since this handle checked it: its proofs are not theirs
        settled = time.time_ns() - SETTLED_NS
        if any(ident is None or ident[4] > settled for ident in self.identities.values()):
            return False  # changed too recently to tell a later change apart
        path = d / f"{self.name}.bits"
        try:
            with open(d / f"{self.name}.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                before = self._read(path)
                merged = checked if before is None else (checked | before)
                tmp = d / f"{self.name}.tmp-{os.getpid()}"
                body = MAGIC + json.dumps(self.binding).encode() + b"\n"
                body += np.packbits(merged.reshape(-1)).tobytes()
                with open(tmp, "wb") as f:
                    f.write(body + hashlib.sha256(body).digest())  # sealed: damage is seen
                os.replace(tmp, path)
        except OSError:
            return False
        _prune(d)
        return True


def _prune(d: Path) -> None:
    """Keep the :data:`KEEP` most recently written records (one per store version)."""
    try:
        records = list(d.glob("*.bits"))
        if len(records) <= KEEP:
            return
        records.sort(key=lambda p: p.stat().st_mtime_ns)
        for p in records[: len(records) - KEEP]:
            with contextlib.suppress(OSError):
                p.unlink()
                p.with_suffix(".lock").unlink()
    except OSError:
        pass
