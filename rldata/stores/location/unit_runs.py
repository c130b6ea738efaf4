"""Runs of a key's units fetched by one ranged read, verified a run at a time.

A coalesced range of a narrow key carries hundreds of units (a 1-byte key's unit is 512
rows = 512 bytes, so a 256 KiB range holds 512 of them): looking each one's digest up,
slicing, caching and installing it on its own cost ~18 us a unit, ~2.4 s of a 10M-row first
batch. A :class:`Run` keeps the range's bytes whole; :func:`verify_run` hashes each unit
(a memoryview slice, no copy) and compares every raw digest with one slice of the block
table (:func:`table_digests`), so the cache writes the run as one body and a slot table
installs it as one copy. Every unit is still hashed before it is served or kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Units(Protocol):
    """What a run needs of one key's units (``remote_units.Units``; a protocol here, so
    this module does not import the one that imports it)."""

    @property
    def key(self) -> str: ...
    @property
    def rel(self) -> str: ...
    @property
    def unit_rows(self) -> int: ...
    @property
    def row_bytes(self) -> int: ...
    @property
    def count(self) -> int: ...

    def rows(self, c: int) -> int: ...

    def byte_range(self, c: int) -> tuple[int, int]: ...

    def raw_digests(self, a: int, b: int) -> bytes: ...


@dataclass(frozen=True)
class Run:
    """Units ``[first, stop)`` of one key, their bytes back to back in ``data``; ``good``
    marks the units that verified (None: every one did). Only verified bytes are served."""

    units: Units
    first: int
    stop: int
    data: bytes
    good: np.ndarray | None = None

    def piece(self, c: int) -> bytes:
        """The bytes of unit ``c`` (of this run)."""
        a0 = self.units.byte_range(self.first)[0]
        a, b = self.units.byte_range(c)
        return self.data[a - a0 : b - a0]

    def verified(self) -> list[int]:
        """The units of this run that verified."""
        if self.good is None:
            return list(range(self.first, self.stop))
        return (np.flatnonzero(self.good) + self.first).tolist()


def verify_run(units: Units, first: int, stop: int, data: bytes) -> np.ndarray | None:
    """Which units of ``data`` (units ``[first, stop)`` back to back) hash to their expected
    digests: None when every one does, else one bool a unit. Hashes are compared as raw
    bytes in one go (no hex, no per-unit look-up)."""
    ub = units.unit_rows * units.row_bytes
    mv = memoryview(data)
    sha = hashlib.sha256
    if ub == 0:  # rows of no bytes: every unit is the empty string
        got = sha(b"").digest() * (stop - first)
    else:
        got = b"".join([sha(mv[i : i + ub]).digest() for i in range(0, len(data), ub)])
    want = units.raw_digests(first, stop)
    if got == want:
        return None
    n = stop - first
    g = np.frombuffer(got, np.uint8)
    w = np.frombuffer(want, np.uint8)
    if g.size != n * 32 or w.size != n * 32:
        return np.zeros(n, bool)
    return (g.reshape(n, 32) == w.reshape(n, 32)).all(axis=1)


def table_digests(table: Any, key: str) -> Callable[[int, int], bytes]:
    """Raw digests of ``key``'s blocks ``[a, b)`` from a ``BlockTable``: one strided slice of
    its full blocks, then the tail's digest."""
    full = table.full

    def many(a: int, b: int) -> bytes:
        head = table._digests[a : min(b, full), table._col[key]].tobytes() if a < full else b""
        if b > full:  # the tail block (table.digest range-checks it)
            head += b"".join(table.digest(key, i) for i in range(max(a, full), b))
        return head

    return many
