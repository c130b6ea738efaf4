"""Any store as Arrow record batches, pandas, or a DuckDB view, with ``next.*`` filled.

A parquet store keeps each observation once (``next.observation`` is null where it equals
the following row's ``observation``, docs/FORMAT.md); these readers rebuild every ``next``
value through :meth:`Store.get`, so each row is whole. Columns are named by dotted keys
(``next.observation``), as in the store's own parquet files: ``[]``/``[1]`` shapes are
scalar columns, other shapes fixed-size lists in C order. Rows come in position order of
:meth:`Store.readable` (oldest first), ``batch_rows`` at a time, so a store of any size
streams in bounded memory through :func:`iter_arrow`.

Examples:
    >>> store = rldata.open("datasets/pendulum")                    # doctest: +SKIP
    >>> df = store.to_pandas()                                       # doctest: +SKIP
    >>> for batch in store.iter_arrow(batch_rows=100_000): ...       # doctest: +SKIP
    >>> con = duckdb.connect(); store.to_duckdb(con, "pendulum")     # doctest: +SKIP
    >>> con.sql('SELECT avg("next.reward") FROM pendulum').fetchall()  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from rldata.errors import ConfigError, MissingDependencyError
from rldata.stores.format import schema as sch

#: Rows per record batch by default (a few MB for vector observations).
BATCH_ROWS = 65_536


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingDependencyError(
            "reading a store as Arrow needs pyarrow: pip install 'rldata[parquet]'"
        ) from None
    return pyarrow


def _batch_rows(batch_rows: int | None) -> int:
    if batch_rows is None:
        return BATCH_ROWS
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows <= 0:
        raise ConfigError(f"batch_rows must be a positive integer, got {batch_rows!r}")
    return batch_rows


def iter_arrow(store: Any, batch_rows: int | None = None) -> Iterator[Any]:
    """The store's readable rows as ``pyarrow.RecordBatch`` es of at most ``batch_rows``
    rows (default :data:`BATCH_ROWS`), ``next.*`` filled; memory stays one batch."""
    pa = _pyarrow()
    from rldata.stores.backend import _parquet_codec as codec
    from rldata.stores.backend._columns import to_numpy

    step = _batch_rows(batch_rows)
    schema = dict(store.schema or {})
    positions = store.readable()
    meta = {"env_id": store.env_id}
    for lo in range(0, int(positions.numel()), step):
        rows = store.get(positions[lo : lo + step])
        cols = {k: to_numpy(v, schema[k]["dtype"]) for k, v in sch.leaves(rows).items()}
        table = codec.encode_table(cols, schema, meta)
        yield from table.to_batches()
    if not positions.numel():
        yield pa.RecordBatch.from_pylist([], schema=arrow_schema(store))


def arrow_schema(store: Any) -> Any:
    """The Arrow schema of :func:`iter_arrow`'s batches (built from the store's schema)."""
    pa = _pyarrow()
    import numpy as np

    from rldata.stores.backend import _parquet_codec as codec
    from rldata.stores.backend._columns import np_dtype

    schema = dict(store.schema or {})
    cols = {k: np.zeros((1, *e["shape"]), dtype=np_dtype(e["dtype"])) for k, e in schema.items()}
    table = codec.encode_table(cols, schema, {"env_id": store.env_id})
    return pa.schema(table.schema, metadata=table.schema.metadata)


def to_arrow(store: Any, batch_rows: int | None = None) -> Any:
    """Every readable row as one ``pyarrow.Table`` (``next.*`` filled), built from
    :func:`iter_arrow` batches of ``batch_rows`` rows; holds the whole table in memory."""
    pa = _pyarrow()
    return pa.Table.from_batches(list(iter_arrow(store, batch_rows)), schema=arrow_schema(store))


def to_pandas(store: Any, batch_rows: int | None = None) -> Any:
    """Every readable row as a ``pandas.DataFrame`` (one column per dotted key; vector
    values as numpy arrays in their cells)."""
    return to_arrow(store, batch_rows).to_pandas()


def to_duckdb(store: Any, con: Any, name: str, batch_rows: int | None = None) -> Any:
    """Register the store's full table (``next.*`` filled) in DuckDB connection ``con`` as
    view ``name``; return ``con``. Quote dotted columns: ``SELECT "next.reward" FROM name``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"DuckDB view name must be an identifier, got {name!r}")
    con.register(name, to_arrow(store, batch_rows))
    return con


def table_metadata(table: Any) -> dict[str, Any]:
    """The ``rldata`` metadata (the env id) an Arrow table from :func:`to_arrow` carries."""
    raw = (table.schema.metadata or {}).get(b"rldata")
    return json.loads(raw) if raw else {}
