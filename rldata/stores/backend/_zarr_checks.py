"""The zarr payload's stored objects, each checked against the manifest the first time a
handle reads it (a mixin of :class:`rldata.stores.backend._zarr_cache.ZarrChunks`).

An open checks only metadata; these methods hash a chunk's (or shard's) file before any
of it is decoded, so no unchecked byte is served, and name the file, key and rows when one
fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from rldata.errors import CorruptStoreError, RowIndexError
from rldata.stores.backend._zarr_shards import StaleObjectError
from rldata.stores.format import schema as sch
from rldata.stores.format.checksums import sha256_hex

IMPLIED = "_implied"  # group of bool arrays: row t's next.<obs> is row t + 1's <obs>
DATA_DIR = "data"


class ZarrObjectChecks:
    """Checks of a zarr store's objects on first read, and the files they live in."""

    _m: dict[str, Any]
    _objects: Any
    _layouts: dict[str, Any]
    _fields: dict[str, dict]
    _masks: Any
    _bases: dict[str, tuple[str, str]]
    _chunk: int
    capacity: int | None
    root: Any
    path: Any
    _decode_chunk: Callable[[int], dict[str, np.ndarray]]
    refresh: Callable[..., bool]

    # --- stored objects, each checked the first time it is read ---------------------------
    def _recorded_sha(self, name: str, c: int) -> tuple[bool, str | None]:
        """Whether the manifest records the bytes of array ``name``'s object of chunk ``c``,
        and their SHA-256 (None: the writer stored no file, every row is the fill value)."""
        sums = self._m["payload"].get("chunk_sha256")
        if not isinstance(sums, list) or c >= len(sums) or not isinstance(sums[c], dict):
            return False, None
        entry = sums[c]
        if name not in entry:
            return False, None
        got = entry[name]
        return True, got if isinstance(got, str) else None

    def _check_objects(self, c: int, names: list[str]) -> None:
        """Check the objects of chunk ``c`` of arrays ``names`` before any is decoded. An
        object that differs from the manifest is left to the decoded-row check (a live
        writer may have rewritten the chunk with more rows); if that fails too, the read is
        refused and nothing is served."""
        for name in names:
            key = (name, c)
            if key in self._objects:
                continue
            recorded, want = self._recorded_sha(name, c)
            path = self._object_file(name, c)
            if not recorded:  # a chunk from before format 1.3: the open checked its rows
                if name in self._layouts:
                    self._objects.accept(key, path, self._layouts[name])
                continue
            if not self._objects.check(key, path, want, self._layouts.get(name)):
                self._vouch(c, name)

    def _vouch(self, c: int, name: str) -> None:
        """The decoded-row check of chunk ``c``: every key's committed rows against their
        checksums; on success each array's object now on disk is accepted as checked."""
        entries = self._m["checksums"]["chunks"]
        try:
            block = self._decode_chunk(c)
        except Exception as exc:  # codecs raise RuntimeError, ValueError, ...
            self._refuse(c, name, name, f"does not decode ({type(exc).__name__})")
        for key, rows in block.items():
            e = entries.get(key)
            n = e[c][0] if e is not None and c < len(e) else 0
            if n and sha256_hex(np.ascontiguousarray(rows[:n]).data.cast("B")) != e[c][1]:
                self._refuse(c, name, key, "fail their checksum")
        for n2 in self._array_names():
            self._objects.accept((n2, c), self._object_file(n2, c), self._layouts.get(n2))

    def _refuse(self, c: int, name: str, key: str, why: str) -> NoReturn:
        """Raise for chunk ``c``: rows a live ring retired meanwhile, else corruption."""
        if self.capacity is not None and self.refresh(force=True):
            raise RowIndexError(
                f"store {self.path}: rows were overwritten by the writer while being read; "
                f"ask Store.readable() again"
            )
        a = c * self._chunk
        raise CorruptStoreError(
            f"{self._object_file(name, c)}: sha256 differs from the manifest and key {key!r} "
            f"rows [{a}, {a + self._chunk}) {why}; refusing to read them"
        )

    def _inner_bytes(self, name: str, c: int, j: int) -> bytes | None:
        key = (name, c)
        got = self._objects.ready_inner(key, j)  # checked and open: a pread, nothing else
        if got is not False:
            return got
        path = self._object_file(name, c)
        for _ in range(2):
            self._check_objects(c, [name])
            try:
                return self._objects.inner(key, path, j)
            except StaleObjectError:
                continue  # replaced since it was checked: check the new file
        raise CorruptStoreError(f"{path}: the object keeps changing while being read")

    def _array_names(self) -> list[str]:
        """Every zarr array: the schema's keys, then each stored-once key's implied-rows bits."""
        return [*self._fields, *(f"{IMPLIED}/{k}" for k in self._masks)]

    def _array_dir(self, name: str) -> str:
        parts = name.split("/") if name.startswith(IMPLIED + "/") else sch.key_tuple(name)
        return os.path.join(self.root, DATA_DIR, *parts)

    def _ndim(self, name: str) -> int:
        return 0 if name.startswith(IMPLIED + "/") else len(self._fields[name]["shape"])

    def _object_file(self, name: str, c: int) -> str:
        """Chunk ``c``'s file (a shard, in stores created since issue 19) of array ``name``
        (a key, or ``_implied/<key>``); the array's part of the path is computed once."""
        base = self._bases.get(name)
        if base is None:
            base = self._bases[name] = (
                os.path.join(self._array_dir(name), "c") + os.sep,
                os.sep + os.sep.join(["0"] * self._ndim(name)) if self._ndim(name) else "",
            )
        return f"{base[0]}{c}{base[1]}"
