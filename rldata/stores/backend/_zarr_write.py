"""Shard files encoded by the zarr writer itself, byte for byte what zarr's sharding codec reads.

zarr-python 3 writes a shard through its async codec pipeline: a task, a thread hand-off
and several buffer copies per inner chunk, so a 65,536-row shard of 512 inner chunks cost
~0.1 s an array and the writer managed ~20k HalfCheetah rows/s (issue 19: a 30M-row write
ran past 900 s). This module encodes a whole shard in one pass: each inner chunk
blosc-compressed with the settings the array's ``zarr.json`` declares (or, for an array
whose inner codec chain is ``bytes`` alone, its raw bytes: rows read in place), inner chunks whose
bytes are all zero (the fill value) left out as zarr leaves them out, then the index
(``(offset, nbytes)`` per inner chunk, little-endian uint64, empty ``2**64 - 1``) and its
crc32c, as the zarr v3 sharding codec specifies for ``index_location: end``. The shard's
SHA-256 is taken from the bytes in memory, so the commit does not read its files back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid

import google_crc32c
import numcodecs.blosc
import numpy as np

from rldata.stores.backend._zarr_shards import EMPTY, Layout


def encode_shard(rows: np.ndarray, lay: Layout) -> bytes | None:
    """The shard file of ``rows`` (at most one shard's rows, ``[n, *shape]``), rows past
    ``n`` the fill value; None when every inner chunk is fill (zarr stores no file)."""
    full = lay.inner * lay.count
    n = rows.shape[0]
    if n > full:
        raise ValueError(f"a shard holds {full} rows, given {n}")
    data = np.zeros((full, *lay.shape), dtype=lay.dtype)
    data[:n] = rows
    raw = data.view(np.uint8).reshape(lay.count, lay.nbytes)
    stored = np.flatnonzero(raw[: -(-n // lay.inner)].any(axis=1)).tolist()
    if not stored:
        return None
    index = np.full((lay.count, 2), EMPTY, dtype="<u8")
    if lay.plain:  # the inner chunks' raw bytes back to back: rows at fixed offsets
        index[stored, 0] = np.arange(len(stored), dtype="<u8") * lay.nbytes
        index[stored, 1] = lay.nbytes
        return _with_index(raw[stored].tobytes(), index, lay)
    parts, offset = [], 0
    cname = lay.cname.encode()
    threads = numcodecs.blosc.use_threads
    numcodecs.blosc.use_threads = False  # 8 KiB chunks: a thread hand-off costs more
    try:
        for j in stored:
            blob = numcodecs.blosc.compress(
                raw[j], cname, lay.clevel, lay.shuffle, lay.blocksize, lay.typesize
            )
            index[j] = (offset, len(blob))
            parts.append(blob)
            offset += len(blob)
    finally:
        numcodecs.blosc.use_threads = threads
    return _with_index(b"".join(parts), index, lay)


def _with_index(body: bytes, index: np.ndarray, lay: Layout) -> bytes:
    """The shard: its inner chunks' bytes, the index, and the index's crc32c if declared."""
    table = index.tobytes()
    crc = b""
    if lay.index_bytes == len(table) + 4:  # the index's crc32c codec
        crc = np.uint32(google_crc32c.value(table)).astype("<u4").tobytes()
    return b"".join((body, table, crc))


def put_shard(path: str, data: bytes | None) -> str | None:
    """Write ``data`` at ``path`` the way zarr's local store does (a ``.partial`` file
    renamed over the old one: a crash leaves the old or the new shard), or remove the file
    when ``data`` is None; the SHA-256 of what is now there (None: no file)."""
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{uuid.uuid4().hex}.partial"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()
