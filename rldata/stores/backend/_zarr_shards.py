"""Zarr stored objects read by byte range, each checked against the manifest before use.

A zarr store from format 1.4 on keeps one *shard* file per array per checksum chunk
(zarr v3's sharding codec): small inner chunks of ``inner`` rows, each blosc-compressed
on its own, then the shard's index (``(offset, nbytes)`` per inner chunk, little-endian
uint64, then a crc32c) at its end. A random row then costs one small decode, read by
``pread`` from the shard, instead of a whole chunk of up to 65,536 rows.

Every object (a shard or, in older stores, a chunk file) is hashed against the manifest's
``payload.chunk_sha256`` the first time this handle reads it; the file's identity
(device, inode) is kept, and later reads go through a descriptor whose identity matches,
so no byte that was not hashed is ever decoded. Objects are replaced by rename, never
rewritten in place.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import mmap
import os
import resource
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numcodecs.blosc
import numpy as np

from rldata._env import map_bytes

EMPTY = np.uint64(2**64 - 1)  # an inner chunk zarr did not store: all fill value
_EMPTY = 2**64 - 1
# shard descriptors kept open (past this, reopened and their identity checked): a quarter of
# the process's limit, so a store of a few thousand objects keeps them all
MAX_FDS = max(64, min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4))
# mapped shards kept (mappings hold no descriptor; Linux allows ~65,000 a process)
MAX_MAPS = 16384


@dataclass(frozen=True)
class Layout:
    """How one sharded array's inner chunks are stored (what :func:`layout` accepts)."""

    inner: int  # rows of an inner chunk
    count: int  # inner chunks of a shard
    index_bytes: int  # size of the shard index at the file's end
    dtype: np.dtype
    shape: tuple[int, ...]  # one row's shape
    nbytes: int  # decoded bytes of an inner chunk
    # the inner chunks' blosc settings, as the array's zarr.json declares them (the writer
    # encodes with them: :mod:`rldata.stores.backend._zarr_write`)
    cname: str = "lz4"
    clevel: int = 5
    shuffle: int = 2  # numcodecs' numbering: 0 none, 1 byte, 2 bit
    blocksize: int = 0
    typesize: int = 1
    # inner chunks stored as their raw little-endian bytes (codec chain ``bytes`` alone):
    # read in place, no decode (:mod:`rldata.stores.backend._zarr_plain`)
    plain: bool = False

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.inner


def layout(arr: Any, chunk_rows: int) -> Layout | None:
    """The inner-chunk layout of a zarr array sharded by ``chunk_rows`` rows, when its codecs
    are the ones this module decodes itself (bytes, optionally blosc; index at the end, bytes
    and an optional crc32c); else None (the array is read through zarr)."""
    try:
        codecs = arr.metadata.codecs
        if len(codecs) != 1 or type(codecs[0]).__name__ != "ShardingCodec":
            return None
        sc = codecs[0]
        if getattr(sc.index_location, "value", sc.index_location) != "end":
            return None
        inner_codecs = [type(c).__name__ for c in sc.codecs]
        index_codecs = [type(c).__name__ for c in sc.index_codecs]
        if inner_codecs not in (["BytesCodec"], ["BytesCodec", "BloscCodec"]):
            return None
        endian = getattr(sc.codecs[0].endian, "value", sc.codecs[0].endian)
        if endian not in (None, "little"):
            return None
        if index_codecs not in (["BytesCodec"], ["BytesCodec", "Crc32cCodec"]):
            return None
        inner = int(sc.chunk_shape[0])
        shard = tuple(int(s) for s in arr.shards)
        if shard[0] != chunk_rows or chunk_rows % inner or tuple(sc.chunk_shape[1:]) != shard[1:]:
            return None
        count = chunk_rows // inner
        crc = 4 if len(index_codecs) == 2 else 0
        dtype = np.dtype(arr.dtype).newbyteorder("<")
        shape = tuple(int(d) for d in arr.shape[1:])
        nbytes = inner * int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(inner_codecs) == 1:
            return Layout(inner, count, 16 * count + crc, dtype, shape, nbytes, plain=True)
        blosc = sc.codecs[1]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[
            str(getattr(blosc.shuffle, "value", blosc.shuffle))
        ]
        return Layout(
            inner,
            count,
            16 * count + crc,
            dtype,
            shape,
            nbytes,
            cname=str(getattr(blosc.cname, "value", blosc.cname)),
            clevel=int(blosc.clevel),
            shuffle=shuffle,
            blocksize=int(blosc.blocksize or 0),
            typesize=int(blosc.typesize or dtype.itemsize),
        )
    except Exception:  # an array zarr describes otherwise: read it through zarr
        return None


def decode_inner(raw: bytes, lay: Layout, where: str | Callable[[], str]) -> np.ndarray:
    """One inner chunk's rows ``[inner, *shape]`` from its stored bytes (``where`` names
    them in an error; a callable is called only then)."""
    if lay.plain:  # the shard index check made its length ``nbytes``
        return np.frombuffer(raw, dtype=lay.dtype).reshape(lay.inner, *lay.shape)
    # blosc allocates what its header declares: check it first (a hostile frame could ask
    # for gigabytes); header bytes 4-8 hold the decoded size, 12-16 the frame's
    head = _HEAD.unpack_from(raw) if len(raw) >= 16 else None
    if head is None or head[1] != lay.nbytes or head[3] != len(raw):
        said = "nothing" if head is None else f"{head[1]} bytes from {head[3]}"
        _corrupt(
            where, f"blosc header declares {said}; expected {lay.nbytes} bytes from {len(raw)}"
        )
    threads = numcodecs.blosc.use_threads
    numcodecs.blosc.use_threads = False  # a small chunk: a thread hand-off costs more
    try:
        out = numcodecs.blosc.decompress(raw)
    except Exception as exc:  # blosc raises RuntimeError on a damaged frame
        _corrupt(where, f"does not decode ({exc})")
    finally:
        numcodecs.blosc.use_threads = threads
    if len(out) != lay.nbytes:
        _corrupt(where, f"holds {len(out)} bytes, expected {lay.nbytes}")
    return np.frombuffer(out, dtype=lay.dtype).reshape(lay.inner, *lay.shape)


_HEAD = struct.Struct("<4I")  # blosc 1 header: versions and flags, nbytes, blocksize, cbytes


def _corrupt(where: str | Callable[[], str], why: str) -> NoReturn:
    from rldata.errors import CorruptStoreError

    raise CorruptStoreError(f"{where() if callable(where) else where}: inner chunk {why}")


class Objects:
    """The stored objects one handle has checked, their shard indexes and open descriptors.

    Keys are ``(array name, chunk)``. :meth:`check` hashes an object once; :meth:`accept`
    records one the decoded-row check vouched for instead; :meth:`inner` reads one inner
    chunk's bytes from an accepted shard.
    """

    def __init__(self) -> None:
        self._ok: dict[tuple[str, int], tuple[int, int] | None] = {}  # None: checked absent
        self._index: dict[tuple[str, int], np.ndarray] = {}
        self._fds: collections.OrderedDict[tuple[str, int], int] = collections.OrderedDict()
        # a checked shard with an open descriptor: (fd, offsets, sizes) as Python ints
        self._ready: dict[tuple[str, int], tuple[int, list[int], list[int]]] = {}
        # a checked shard of uncompressed inner chunks mapped: (bytes, offsets, -1: not stored)
        self._maps: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._mms: dict[tuple[str, int], mmap.mmap] = {}  # their mappings
        # every mapping still open, also those unmapped from _mms whose views a reader keeps
        # (its table of shard buffers): release_maps drops their pages too
        self._open_mms: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
        self._mapped = 0  # their bytes (kept as they come and go: a sum a map is O(maps))
        self.generation = 0  # bumped whenever a checked object is forgotten
        self.hashed = 0  # objects hashed by this handle (tests and benchmarks read it)

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self._ok

    def check(self, key: tuple[str, int], path: str, want: str | None, lay: Layout | None) -> bool:
        """Whether the object at ``path`` has the bytes whose SHA-256 the manifest records
        (``want`` None: the writer stored no file there). On a match its identity, and its
        shard index when ``lay`` is given, are kept."""
        if key in self._ok:
            return True
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if want is None:
                self._ok[key] = None
                return True
            return False
        try:
            st = os.fstat(fd)
            data = _read_all(fd, st.st_size)
        finally:
            os.close(fd)
        self.hashed += 1
        if want is None or hashlib.sha256(data).hexdigest() != want:
            return False
        self._keep(key, (st.st_dev, st.st_ino), data, lay, path)
        return True

    def accept(self, key: tuple[str, int], path: str, lay: Layout | None) -> None:
        """Keep the object now at ``path`` as checked (the decoded-row check vouched for it)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._ok[key] = None
            return
        try:
            st = os.fstat(fd)
            data = _read_all(fd, st.st_size) if lay is not None else b""
        finally:
            os.close(fd)
        self._keep(key, (st.st_dev, st.st_ino), data, lay, path)

    def accept_index(self, key: tuple[str, int], path: str, lay: Layout) -> None:
        """Keep the shard now at ``path`` with only its index read (its tail bytes, bounds
        checked): a store with block digests checks the rows a read serves against them,
        not the whole shard (:mod:`rldata.stores.backend._zarr_blocks`)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._ok[key] = None  # not stored: every row the fill value
            return
        try:
            st = os.fstat(fd)
            at = max(0, st.st_size - lay.index_bytes)
            tail = os.pread(fd, min(lay.index_bytes, st.st_size), at)
        finally:
            os.close(fd)
        self._index[key] = _index_at(tail, st.st_size, lay, path)
        self._ok[key] = (st.st_dev, st.st_ino)

    def _keep(
        self,
        key: tuple[str, int],
        ident: tuple[int, int],
        data: bytes,
        lay: Layout | None,
        path: str,
    ) -> None:
        if lay is not None:
            self._index[key] = _shard_index(data, lay, path)
        self._ok[key] = ident

    def forget(self, first_chunk: int) -> None:
        """Drop what is known of chunks ``>= first_chunk`` (a writer may have rewritten them)."""
        for key in [k for k in self._ok if k[1] >= first_chunk]:
            self._forget_key(key)

    def drop(self, chunks: list[int]) -> None:
        """Drop what is known of ``chunks`` (this handle rewrote them)."""
        gone = set(chunks)
        for key in [k for k in self._ok if k[1] in gone]:
            self._forget_key(key)

    def close(self) -> None:
        self._ready.clear()
        self._maps.clear()
        self._mms.clear()
        self._mapped = 0
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:  # a handle dropped without close(): its descriptors go too
        with contextlib.suppress(Exception):
            self.close()

    def ready_inner(self, key: tuple[str, int], j: int) -> bytes | None | bool:
        """Inner chunk ``j`` of a shard checked and open already (None: not stored), else
        False: the caller checks and opens it (:meth:`inner`)."""
        r = self._ready.get(key)
        if r is None:  # a shard checked absent (all fill value) reads as None too
            return None if key in self._ok and self._ok[key] is None else False
        off = r[1][j]
        return None if off == _EMPTY else os.pread(r[0], r[2][j], off)

    def inner(self, key: tuple[str, int], path: str, j: int) -> bytes | None:
        """Inner chunk ``j``'s stored bytes of a checked shard (None: not stored, all fill).

        Raises:
            StaleObjectError: the file at ``path`` is no longer the one that was checked.
        """
        ident = self._ok[key]
        if ident is None:
            return None
        off, size = self._index[key][j]
        if off == EMPTY:
            return None
        return os.pread(self._fd(key, path, ident), int(size), int(off))

    def rows(self, key: tuple[str, int], path: str, lay: Layout, a: int, b: int) -> bytes:
        """The stored bytes of rows ``[a, b)`` (of this shard) of an uncompressed shard, read
        by ``pread`` (a check of a few blocks: no mapping, whose churn costs more than the
        read); zeros where an inner chunk is not stored.

        Raises:
            StaleObjectError: the file at ``path`` is no longer the one that was accepted.
        """
        rb, inner = lay.row_bytes, lay.inner
        ident = self._ok[key]
        if ident is None:
            return bytes((b - a) * rb)
        offs = self._index[key][a // inner : (b - 1) // inner + 1, 0].tolist()  # a few
        fd = self._fd(key, path, ident)
        if _EMPTY not in offs and all(q - p == lay.nbytes for p, q in zip(offs, offs[1:])):
            return os.pread(fd, (b - a) * rb, offs[0] + (a % inner) * rb)
        out = bytearray((b - a) * rb)
        j0 = a // inner
        for j, off in enumerate(offs, j0):
            lo, hi = max(a, j * inner), min(b, (j + 1) * inner)
            if off != _EMPTY:
                got = os.pread(fd, (hi - lo) * rb, off + (lo - j * inner) * rb)
                out[(lo - a) * rb : (lo - a) * rb + len(got)] = got
        return bytes(out)

    def _fd(self, key: tuple[str, int], path: str, ident: tuple[int, int]) -> int:
        """An open descriptor of the shard of identity ``ident`` (kept, least recently used
        closed past ``MAX_FDS``)."""
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        fd = os.open(path, os.O_RDONLY)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != ident:
            os.close(fd)
            self._forget_key(key)
            raise StaleObjectError(path)
        self._fds[key] = fd
        idx = self._index[key]
        self._ready[key] = (fd, idx[:, 0].tolist(), idx[:, 1].tolist())
        while len(self._fds) > MAX_FDS:
            old, old_fd = self._fds.popitem(last=False)
            self._ready.pop(old, None)
            os.close(old_fd)
        return fd

    def mapped(self, key: tuple[str, int], path: str, lay: Layout) -> tuple[np.ndarray, np.ndarray]:
        """A checked shard of uncompressed inner chunks (``lay.plain``): its bytes mapped
        read-only, from a file of the identity that was hashed, and each inner chunk's offset
        in them (-1: not stored, all fill value; the index check bounded the others). A shard
        with no stored chunk maps to ``nbytes`` zeros.

        Raises:
            StaleObjectError: the file at ``path`` is no longer the one that was checked.
        """
        got = self._maps.get(key)
        if got is not None:
            return got
        ident = self._ok[key]
        offs = np.full(lay.count, -1, dtype=np.int64)
        buf = None
        if ident is not None:
            # EMPTY (2**64 - 1) is -1 as int64; the index check bounded every other offset
            offs = self._index[key][:, 0].astype(np.int64)
            if (offs >= 0).any():
                fd = os.open(path, os.O_RDONLY)
                try:
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) != ident:
                        self._forget_key(key)
                        raise StaleObjectError(path)
                    mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
                    self._bound_mapped(len(mm))
                    self._mms[key] = mm
                    self._open_mms.add(mm)
                    self._mapped += len(mm)
                    buf = np.frombuffer(mm, dtype=np.uint8)
                finally:
                    os.close(fd)
                if len(buf) < int(offs.max()) + lay.nbytes:  # cut short since it was hashed
                    self._forget_key(key)
                    from rldata.errors import CorruptStoreError

                    raise CorruptStoreError(
                        f"{path}: shard of {len(buf)} bytes is shorter than its index says "
                        f"({int(offs.max()) + lay.nbytes}); it changed after it was checked"
                    )
        if buf is None:
            buf = np.zeros(lay.nbytes, dtype=np.uint8)
        if len(self._maps) >= MAX_MAPS:  # far past any store's shards a batch touches
            self._maps.clear()
            self._mms = {k: m for k, m in self._mms.items() if k == key}
            self._mapped = sum(len(m) for m in self._mms.values())
        got = self._maps[key] = (buf, offs)
        return got

    def _bound_mapped(self, more: int) -> None:
        """Unmap the oldest shards while the mapped ones and ``more`` bytes exceed
        ``RLDATA_MAP_BYTES``: address space, not only resident pages, stays bounded (a
        process under ``RLIMIT_AS`` streams a store larger than its limit)."""
        limit = map_bytes()
        while self._mms and self._mapped + more > limit:
            old = next(iter(self._mms))
            self._mapped -= len(self._mms.pop(old))
            self._maps.pop(old, None)  # the mapping closes with its last view

    def release_maps(self) -> None:
        """Drop the mapped shards' pages from this process (they stay in the page cache): a
        sampler touching rows all over a store would otherwise keep it all resident."""
        for m in list(self._open_mms):
            with contextlib.suppress(OSError, ValueError):
                m.madvise(mmap.MADV_DONTNEED)

    def _forget_key(self, key: tuple[str, int]) -> None:
        self.generation += 1
        self._maps.pop(key, None)
        mm = self._mms.pop(key, None)
        if mm is not None:
            self._mapped -= len(mm)
        self._ready.pop(key, None)
        self._ok.pop(key, None)
        self._index.pop(key, None)
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)


class StaleObjectError(Exception):
    """A checked object was replaced since (a live writer): check it again."""


def _read_all(fd: int, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        b = os.pread(fd, min(1 << 24, size - got), got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _shard_index(data: bytes, lay: Layout, path: str) -> np.ndarray:
    """The ``[count, 2]`` (offset, nbytes) table at a shard's end, each range inside the file."""
    return _index_at(data[max(0, len(data) - lay.index_bytes) :], len(data), lay, path)


def _index_at(tail: bytes, size: int, lay: Layout, path: str) -> np.ndarray:
    """:func:`_shard_index` from the file's last ``index_bytes`` bytes and its size."""
    from rldata.errors import CorruptStoreError

    body = size - lay.index_bytes
    if body < 0 or len(tail) != lay.index_bytes:
        raise CorruptStoreError(
            f"{path}: shard of {size} bytes is shorter than its index ({lay.index_bytes})"
        )
    idx = np.frombuffer(tail, dtype="<u8", count=2 * lay.count).reshape(-1, 2)
    stored = idx[:, 0] != EMPTY
    off, got = idx[stored, 0], idx[stored, 1]
    # compared without adding: offset + nbytes of a hostile index may wrap around 2**64
    bad = (off > body) | (got > np.uint64(body) - np.minimum(off, np.uint64(body)))
    if lay.plain:  # rows at fixed offsets: exactly the inner chunk's bytes
        bad |= got != np.uint64(lay.nbytes)
        want = f"exactly {lay.nbytes} bytes (uncompressed)"
    else:
        bad |= (got < 16) | (got > 16 + 2 * lay.nbytes)  # no blosc frame of this size
        want = f"a blosc frame of at most {16 + 2 * lay.nbytes} bytes"
    if stored.any() and bad.any():
        j = int(np.flatnonzero(stored)[np.flatnonzero(bad)[0]])
        raise CorruptStoreError(
            f"{path}: shard index names bytes [{int(idx[j, 0])}, +{int(idx[j, 1])}) for inner "
            f"chunk {j}; expected {want} inside the shard's {body} data bytes"
        )
    return idx.copy()
