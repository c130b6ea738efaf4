"""Parquet rows encoded and decoded: arrow tables of store rows, footers checked before decoding.

Columns are named by dotted key paths; ``[]``/``[1]`` shapes are scalar columns, others
fixed-size lists in C order; a ``next.<obs>`` value equal to the following row's ``<obs>``
is stored as null (each observation stored once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col

META_KEY = b"rldata"
# decoded bytes of one row group in new parts: a random row costs one such decode (pyarrow
# reads a row group's column chunks by byte range; smaller groups cost footer bytes).
ROW_GROUP_BYTES = 64 << 10
PLAIN_GROUP_BYTES = 8 << 20
# dtypes whose parquet PLAIN values are the numpy bytes (booleans: one bit each)
PLAIN_KINDS = frozenset({"bool", "float32", "float64", "int32", "int64", "complex64", "complex128"})
MIN_GROUP_ROWS, MAX_GROUP_ROWS = 64, 1 << 16


def _float_columns(table: pa.Table) -> list[str]:
    """Parquet leaf paths of float columns (plain, or the elements of a fixed-size list):
    byte-stream-split compresses them better. A list's values are the leaf
    ``<column>.list.element`` (naming the list column itself leaves them PLAIN)."""
    out = []
    for field in table.schema:
        t, path = field.type, field.name
        while pa.types.is_fixed_size_list(t):
            t, path = t.value_type, f"{path}.list.element"
        if pa.types.is_floating(t):
            out.append(path)
    return out


def _scalar(entry: dict) -> bool:
    return entry["shape"] in ([], [1]) and not entry["dtype"].startswith("complex")


def encode_table(
    cols: dict[str, np.ndarray],
    schema: dict[str, dict],
    meta: dict,
    once: Sequence[str] = (),
    group_rows: int | None = None,
) -> pa.Table:
    """Rows as an arrow table: scalar columns for ``[]``/``[1]`` shapes, fixed-size lists else.

    For each key ``k`` of ``once``, column ``next.k`` is null where it equals (bit for bit)
    ``k`` of the following row, so parquet stores that observation once; with
    ``group_rows``, never on a row group's last row (a group then decodes alone).
    """
    masks = {f"next.{k}": col.implied(cols[k], cols[f"next.{k}"]) for k in once}
    if group_rows:
        for m in masks.values():
            m[group_rows - 1 :: group_rows] = False
    arrays, names = [], []
    for name in sorted(cols):
        a, entry = cols[name], schema[name]
        n = a.shape[0]
        mask = masks.get(name)
        if _scalar(entry):
            arrays.append(pa.array(a.reshape(n), mask=mask))
        else:
            flat = a.reshape(n, -1)
            if flat.dtype.kind == "c":  # complex: (real, imag) pairs
                flat = flat.view(flat.real.dtype)
            width = flat.shape[1]
            arrays.append(
                pa.FixedSizeListArray.from_arrays(
                    pa.array(flat.reshape(-1)),
                    width,
                    mask=None if mask is None else pa.array(mask),
                )
            )
        names.append(name)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def decode_column(
    column: pa.ChunkedArray, entry: dict, n: int, compact: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """One column back as numpy rows ``[n, *shape]`` of the schema dtype, and its null rows
    (None when it has none; null rows hold zeros). ``compact``: only the rows that are not
    null (a stored-once ``next`` column's explicit rows, without zero-filling the rest)."""
    dtype = col.np_dtype(entry["dtype"])
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    nulls = _nulls(arr) if arr.null_count else None
    if _scalar(entry):
        values = _numpy(arr)  # null rows' slots included, then left out
    else:
        width = int(np.prod(entry["shape"], dtype=np.int64)) * (2 if dtype.kind == "c" else 1)
        child = arr.values.slice(arr.offset * width, len(arr) * width)  # null rows too
        values = _numpy(child).reshape(len(arr), -1)
        if dtype.kind == "c":
            values = values.view(dtype)
    if nulls is not None:
        values = values[~nulls]
    if values.dtype != dtype:
        raise CorruptStoreError(f"column {arr.type} does not hold dtype {entry['dtype']}")
    if nulls is None:
        return values.reshape(n, *entry["shape"]), None
    if compact:
        return values.reshape(-1, *entry["shape"]), nulls
    out = np.zeros((n, *entry["shape"]), dtype=dtype)
    out[~nulls] = values.reshape(-1, *entry["shape"])
    return out, nulls


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """Bits ``[offset, offset + n)`` of an Arrow bitmap as booleans."""
    bits = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
    if len(bits) < offset + n:
        raise ValueError(f"bitmap of {len(bits)} bits, {offset + n} needed")
    return bits[offset : offset + n].astype(bool)


def _nulls(arr: pa.Array) -> np.ndarray:
    """The null rows of an array with nulls, from its validity bitmap."""
    valid = arr.buffers()[0]
    if valid is None:
        return np.zeros(len(arr), bool)
    return ~_bits(valid, arr.offset, len(arr))


def _numpy(arr: pa.Array) -> np.ndarray:
    """A number or boolean array as numpy, read from its data buffer (null slots included;
    read-only, no copy but booleans): ``Array.to_numpy`` and the compute functions import
    pandas and ``pyarrow.compute`` on first use, ~1-2 s of a reader's first batch. Other
    types go through ``to_numpy``."""
    t = arr.type
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t)
    data = arr.buffers()[1] if numeric or pa.types.is_boolean(t) else None
    if data is None:
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(t):
        return _bits(data, arr.offset, len(arr))
    kind = "f" if pa.types.is_floating(t) else "i" if pa.types.is_signed_integer(t) else "u"
    dtype = np.dtype(f"<{kind}{t.bit_width // 8}")
    return np.frombuffer(data, dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def _group_rows(fields: dict) -> int:
    """Rows per row group of a new part: about ``ROW_GROUP_BYTES`` decoded, or
    ``PLAIN_GROUP_BYTES`` where parts are read in place (every dtype PLAIN: no group is
    decoded for a sample, and a reader learns each group's page offsets once, so fewer
    groups mean a shorter warm-up)."""
    plain = all(e["dtype"] in PLAIN_KINDS for e in fields.values())
    rows = (PLAIN_GROUP_BYTES if plain else ROW_GROUP_BYTES) // max(1, _row_bytes(fields))
    return int(min(MAX_GROUP_ROWS, max(MIN_GROUP_ROWS, rows)))


def _row_bytes(fields: dict, *, stored: bool = False) -> int:
    """Decoded bytes of a row; ``stored``: as parquet keeps them (integers narrower than 4
    bytes are INT32 values, so uint8 pixels take 4x their numpy bytes)."""
    return sum(
        int(np.prod(e["shape"], dtype=object))
        * max(col.np_dtype(e["dtype"]).itemsize, 4 if stored and e["dtype"] != "bool" else 1)
        for e in fields.values()
    )


def _check_footer(path: object, meta: pq.FileMetaData, rows: int, fields: dict) -> None:
    """Refuse a part whose footer declares other rows than the manifest, or decoded bytes
    far beyond what those rows hold, before anything is decoded (a small part can declare
    gigabytes)."""
    if meta.num_rows != rows:
        raise CorruptStoreError(
            f"{path}: parquet footer declares {meta.num_rows} rows; the manifest lists {rows}"
        )
    expected = rows * _row_bytes(fields, stored=True)
    declared = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    allowed = 2 * expected + 2**20  # validity bitmaps, list offsets and page headers
    if declared > allowed:
        raise CorruptStoreError(
            f"{path}: parquet footer declares {declared} decoded bytes; {rows} rows of this "
            f"schema hold at most {allowed}; refusing to decode it"
        )


def _refuse_extension_types(path: object, schema: pa.Schema) -> None:
    """Columns are plain numbers or fixed-size lists of them; an Arrow extension type (whose
    Python flavour is a pickle, ``arrow.py_extension_type``) is never deserialized."""
    for field in schema:
        meta = field.metadata or {}
        if b"ARROW:extension:name" in meta or isinstance(field.type, pa.ExtensionType):
            name = meta.get(b"ARROW:extension:name", b"?").decode(errors="replace")
            raise CorruptStoreError(
                f"{path}: column {field.name!r} declares the Arrow extension type {name!r}; "
                f"rldata reads plain columns only"
            )
