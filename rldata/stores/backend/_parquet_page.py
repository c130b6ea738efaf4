"""One row group of a ``next`` column stored once, read from its page without pyarrow.

A stored-once ``next.<obs>`` column is null on every row whose value is the next row's
observation, so a row group's chunk is one small data page: the repetition and
definition levels (RLE / bit-packed hybrid) say which rows are explicit, and only their
values follow (PLAIN or BYTE_STREAM_SPLIT), the page compressed (zstd) or not. A reader
needs exactly that per row group it samples: :func:`explicit_rows` parses it here in a
few hundred microseconds, where pyarrow materialises every null row's slots (~6 ms a
47k-row group), and the first batch no longer decodes the column of every part.

Anything this parser does not know (a second page, a dictionary, another encoding or
codec, levels that do not describe ``rows`` rows of ``width`` values) returns None, and
the caller decodes the group with pyarrow instead. Bytes are bounded before they are
allocated (the declared page sizes against the chunk and the rows). What the page says
is not trusted: rows rebuilt from it are hashed against the store's block digests before
they are served (or the part was hashed whole first, for stores without them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# parquet codec name -> pyarrow codec (LZ4 is Hadoop's framing: left to pyarrow)
CODECS = {
    "ZSTD": "zstd",
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "LZ4_RAW": "lz4_raw",
}
PLAIN, BYTE_STREAM_SPLIT, RLE = 0, 9, 3
HEADER_BYTES = 512
"""Bytes of a page header read at most (a header also holds the page's statistics)."""


class Thrift:
    """Just enough of Thrift's compact protocol to read a page header (ints and structs;
    other fields skipped). Runs off its buffer: ``IndexError``."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def _byte(self) -> int:
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        out = shift = 0
        while True:
            b = self._byte()
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise IndexError("varint too long")

    def zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def struct(self, depth: int = 0) -> dict[int, object]:
        if depth > 8:
            raise IndexError("nested too deep")
        out: dict[int, object] = {}
        field = 0
        while True:
            head = self._byte()
            kind = head & 0x0F
            if kind == 0:
                return out
            delta = head >> 4
            field = field + delta if delta else self.zigzag()
            out[field] = self.value(kind, depth)

    def value(self, kind: int, depth: int) -> object:
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return self._byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.pos += 8
            return None
        if kind == 8:
            n = self.varint()
            self.pos += n
            if self.pos > len(self.buf):
                raise IndexError("binary past the buffer")
            return None
        if kind == 12:
            return self.struct(depth + 1)
        if kind in (9, 10):
            head = self._byte()
            n = head >> 4 if head >> 4 != 15 else self.varint()
            for _ in range(n):
                self.value(head & 0x0F, depth + 1)
            return None
        if kind == 11:
            n = self.varint()
            if n:
                types = self._byte()
                for _ in range(n):
                    self.value(types >> 4, depth + 1)
                    self.value(types & 0x0F, depth + 1)
            return None
        raise IndexError(f"thrift type {kind}")


def explicit_rows(
    read: Callable[[int, int], bytes],
    chunk: pq.ColumnChunkMetaData,
    levels: tuple[int, int],
    rows: int,
    width: int,
    dtype: np.dtype,
    size: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A stored-once ``next`` column chunk's explicit rows (sorted, group-local) and their
    values ``[explicit, width]`` of ``dtype``'s leaf type; None where the chunk is not one
    data page this parser reads (the caller decodes it with pyarrow).

    ``levels``: the leaf's (max definition, max repetition) level; ``width``: leaf values a
    row (a fixed-size list's length, 1 for a scalar column); ``size``: the file's size."""
    leaf = np.dtype(dtype.base if dtype.kind != "c" else f"<f{dtype.itemsize // 2}")
    codec = chunk.compression
    if codec != "UNCOMPRESSED" and codec not in CODECS:
        return None
    if chunk.dictionary_page_offset is not None or leaf.kind not in "fiu" or max(levels) > 8:
        return None
    first, total = chunk.data_page_offset, chunk.total_compressed_size
    if first < 4 or total <= 0 or first + total > size:
        return None
    try:
        t = Thrift(read(first, min(HEADER_BYTES, total)))
        head = t.struct()
        page, raw, stored = head.get(5), head.get(2), head.get(3)
        if not (isinstance(page, dict) and isinstance(raw, int) and isinstance(stored, int)):
            return None
        ok = (
            head.get(1) == 0  # DATA_PAGE (v1: levels inside the compressed body)
            and t.pos + stored == total  # one page fills the chunk
            and page.get(2) in (PLAIN, BYTE_STREAM_SPLIT)
            and page.get(3) == RLE
            and (levels[1] == 0 or page.get(4) == RLE)
        )
        count = page.get(1) if ok else None
        # levels (<= 8 bytes a slot as bit-packed runs) and values: never more than this
        bound = rows * width * (leaf.itemsize + 2) + 64
        if not ok or not isinstance(count, int) or not 0 < count <= rows * width or raw > bound:
            return None
        body = read(first + t.pos, stored)
        if codec != "UNCOMPRESSED":
            body = pa.Codec(CODECS[codec]).decompress(body, decompressed_size=raw).to_pybytes()
        elif stored != raw:
            return None
        if len(body) != raw:
            return None
        return _rows_and_values(body, page, levels, rows, width, leaf, count)
    except (IndexError, ValueError, OSError, pa.ArrowException):
        return None


def _rows_and_values(
    body: bytes,
    page: dict,
    levels: tuple[int, int],
    rows: int,
    width: int,
    leaf: np.dtype,
    count: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The definition levels of a v1 page body, checked to describe ``rows`` rows each null
    (one slot) or ``width`` present values, then the present values. Repetition levels say
    the same for a list of fixed length and are skipped (what they would change is caught
    by the block digests, as any other byte)."""
    max_def, max_rep = levels
    pos = 0
    if max_rep:  # skip them: a 4-byte length, then the runs
        if len(body) < 4:
            return None
        pos = 4 + int.from_bytes(body[:4], "little")
    vals, lens, pos = _runs(body, pos, max_def, count)
    if ((vals != 0) & (vals != max_def)).any():  # an empty list or a null element
        return None
    # a null row is one slot (width units), a present value one unit: every null run must
    # start on a row boundary, and the units must fill the rows exactly
    null = vals == 0
    units = np.where(null, lens * width, lens)
    start = np.cumsum(units) - units
    if int(units.sum()) != rows * width or (start[null] % width).any():
        return None
    lo, hi = start[~null] // width, -(-(start[~null] + units[~null]) // width)
    n = hi - lo
    explicit = np.unique(np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum())))
    values_n = len(explicit) * width
    if values_n != int(units[~null].sum()):
        return None
    data = body[pos:]
    if len(data) != values_n * leaf.itemsize:
        return None
    if page.get(2) == BYTE_STREAM_SPLIT:  # byte k of every value, then byte k + 1, ...
        split = np.frombuffer(data, np.uint8).reshape(leaf.itemsize, values_n)
        values = np.ascontiguousarray(split.T).view(leaf).reshape(-1)
    else:
        values = np.frombuffer(data, leaf).copy()
    return explicit, values.reshape(len(explicit), width)


def _runs(buf: bytes, pos: int, max_level: int, count: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``count`` levels of a v1 page (a 4-byte length, then RLE / bit-packed runs) from
    ``pos`` as runs (values, lengths), and the position after them. ``ValueError`` where
    they do not fit."""
    if pos + 4 > len(buf):
        raise ValueError("levels past the page")
    end = pos + 4 + int.from_bytes(buf[pos : pos + 4], "little")
    pos += 4
    if end > len(buf):
        raise ValueError("levels past the page")
    bits = max_level.bit_length()
    vbytes = (bits + 7) // 8
    vals: list[int] = []
    lens: list[int] = []
    got = 0
    while got < count:
        if pos >= end:
            raise ValueError("levels cut short")
        header = buf[pos]
        pos += 1
        if header & 0x80:  # a longer varint
            header &= 0x7F
            shift = 7
            while True:
                if pos >= end or shift > 28:
                    raise ValueError("bad run header")
                b = buf[pos]
                pos += 1
                header |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
        n = header >> 1
        if n == 0:
            raise ValueError("empty run")
        if header & 1:  # n groups of 8 bit-packed values
            nbytes = n * bits
            if pos + nbytes > end:
                raise ValueError("bit-packed run past the levels")
            packed = np.frombuffer(buf, np.uint8, nbytes, pos)
            unpacked = np.unpackbits(packed, bitorder="little").reshape(-1, bits)
            v = (unpacked @ (1 << np.arange(bits, dtype=np.int64)))[: count - got].tolist()
            vals.extend(v)
            lens.extend([1] * len(v))
            got += len(v)
            pos += nbytes
        else:
            if pos + vbytes > end:
                raise ValueError("run value past the levels")
            vals.append(
                buf[pos] if vbytes == 1 else int.from_bytes(buf[pos : pos + vbytes], "little")
            )
            pos += vbytes
            take = min(n, count - got)
            lens.append(take)
            got += take
    return np.array(vals, np.int64), np.array(lens, np.int64), end
