"""How a parquet part is written: per-column codecs, encodings and page layout, chosen so
the parts read in place where every key's dtype allows it (``_parquet_plain``)."""

from __future__ import annotations

import pyarrow as pa

from rldata.stores.backend._parquet_codec import _float_columns, _row_bytes

COMPRESSION = "zstd"


def write_options(table: object, fields: dict, plain: list[str] | None, group: int) -> dict:
    """``pq.write_table`` options of a new part: every column but the ``next`` ones stored
    once uncompressed, PLAIN, one page a row group (read in place: ``_parquet_plain``)
    where every key's dtype allows it (``plain``: those columns, from
    :func:`~rldata.stores.backend._parquet_plain.plain_columns`; None: not so); else every
    column zstd, floats byte-stream-split."""
    names = list(fields)
    floats = _float_columns(table)  # type: ignore[arg-type]
    if plain is None:
        codec: str | dict[str, str] = COMPRESSION
    else:
        codec = {_leaf(table, k): "NONE" if k in plain else COMPRESSION for k in names}
        floats = [f for f in floats if f.split(".list.")[0] not in plain]
    widest = max(_row_bytes({k: e}) for k, e in fields.items())
    return {
        "compression": codec,
        "use_dictionary": False,  # floats rarely repeat: dictionaries only cost space
        "use_byte_stream_split": floats or False,  # ~9% smaller zstd floats, measured
        "row_group_size": group,
        "max_rows_per_page": group,
        "data_page_size": max(1 << 20, 2 * group * widest),
        "write_page_index": True,
    }


def _leaf(table: object, name: str) -> str:
    """A column's parquet leaf path (per-column options of a list column name its leaf)."""
    t = table.schema.field(name).type  # type: ignore[attr-defined]
    while pa.types.is_fixed_size_list(t):
        t, name = t.value_type, f"{name}.list.element"
    return name
