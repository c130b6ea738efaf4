"""Parquet parts decoded with pyarrow: whole parts, runs of row groups, one ``next`` column
of one group (a mixin of :class:`rldata.stores.backend._parquet.ParquetStore`).

Every entry point goes through the part's first-read hash (``_check_part``) and footer
checks (``_check_footer``: declared rows and decoded sizes bounded before allocating).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._parquet_codec import (
    _check_footer,
    _refuse_extension_types,
    decode_column,
)
from rldata.stores.backend._parquet_plain import PlainPart, plain_columns
from rldata.stores.format.files import inside


class ParquetDecode:
    """pyarrow decodes of a store's listed parts into numpy columns."""

    root: Path
    _fields: dict[str, dict]
    _m: dict
    _check_part: Any
    _lazy_blocks: Any

    def _once(self) -> list[str]:
        """Observation keys whose ``next`` column holds only rows that break the chain."""
        return col.stored_once(self.root, self._m["payload"], self._fields)

    def _decode_part(self, part: dict, cols: dict[str, np.ndarray]) -> None:
        """A whole part into rows ``[start, start + rows)`` of ``cols``."""
        path = inside(self.root, part["path"], "a parquet part")
        self._check_part(part, path)
        try:
            _refuse_extension_types(path, pq.read_schema(path))
            _check_footer(path, pq.read_metadata(path), part["rows"], self._fields)
            table = pq.read_table(path, use_threads=True)
        except CorruptStoreError:
            raise
        except Exception as exc:  # OSError, ArrowException, a name that does not decode, ...
            raise CorruptStoreError(
                f"{path}: parquet part is missing or unreadable ({exc})"
            ) from None
        a, n = part["start"], part["rows"]
        if table.num_rows != n or set(table.column_names) != set(self._fields):
            raise CorruptStoreError(
                f"{path}: expected {n} rows of columns {sorted(self._fields)}, found "
                f"{table.num_rows} rows of {sorted(table.column_names)}"
            )
        once = self._once()
        gaps = {}
        for name, entry in self._fields.items():
            values, nulls = self._decode_one(table.column(name), entry, n, path, name, once)
            cols[name][a : a + n] = values
            if nulls is not None:
                gaps[name] = nulls
        for k in once:  # next values stored once: rebuilt from the following row
            if f"next.{k}" in gaps:
                col.fill_implied(
                    cols[k][a : a + n], cols[f"next.{k}"][a : a + n], gaps[f"next.{k}"]
                )

    def _open_part(self, part: dict) -> pq.ParquetFile:
        """A listed part's file, its footer checked before any row is decoded, and hashed
        whole first unless the store has block digests (then each block is, when read)."""
        path = inside(self.root, part["path"], "a parquet part")
        if not self._lazy_blocks():
            self._check_part(part, path)
        try:
            f = pq.ParquetFile(path)
            _refuse_extension_types(path, f.schema_arrow)
            _check_footer(path, f.metadata, part["rows"], self._fields)
            if set(f.schema_arrow.names) != set(self._fields):
                raise CorruptStoreError(
                    f"{path}: expected columns {sorted(self._fields)}, found "
                    f"{sorted(f.schema_arrow.names)}"
                )
        except CorruptStoreError:
            raise
        except Exception as exc:  # OSError, ArrowException, ...
            raise CorruptStoreError(
                f"{path}: parquet part is missing or unreadable ({exc})"
            ) from None
        return f

    def _plain_part(self, f: pq.ParquetFile, part: dict) -> PlainPart | None:
        """An in-place reader of an opened (hashed, checked) part whose columns are PLAIN."""
        once = self._once()
        direct = plain_columns(self._fields, once)
        meta = f.metadata
        if not direct or not meta.num_row_groups:
            return None
        rg = meta.row_group(0)
        codec = {
            rg.column(i).path_in_schema.split(".list.")[0]: rg.column(i).compression
            for i in range(rg.num_columns)
        }
        if len(codec) != rg.num_columns or codec.get(direct[0]) != "UNCOMPRESSED":
            return None  # a part written compressed (before 1.x plain parts, or pixels)
        path = inside(self.root, part["path"], "a parquet part")
        return PlainPart(
            path,
            meta,
            self._fields,
            once,
            lambda k, g: self._next_group(f, part, k, g),
            footer_only=self._lazy_blocks(),
        )

    def _next_group(
        self, f: pq.ParquetFile, part: dict, k: str, g: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Column ``next.k`` of row group ``g`` decoded by pyarrow (a page ``_parquet_page``
        does not read): its explicit rows (group rows) and their values."""
        name = f"next.{k}"
        try:
            table = f.read_row_group(g, columns=[name], use_threads=False)
        except Exception as exc:
            raise CorruptStoreError(
                f"{self.root / part['path']}: column {name!r} of row group {g} does not "
                f"decode ({_one_line(exc)})"
            ) from None
        n = table.num_rows
        values, nulls = self._decode_one(
            table.column(0), self._fields[name], n, part["path"], name, self._once(), True
        )
        return (np.arange(n) if nulls is None else np.flatnonzero(~nulls)), values

    def _decode_group(
        self, f: pq.ParquetFile, part: dict, g: int, names: list[str] | None
    ) -> dict[str, np.ndarray]:
        """Row group ``g`` of a part as numpy columns (see :meth:`_decode_groups`)."""
        return self._decode_groups(f, part, g, g + 1, names)

    def _decode_groups(
        self, f: pq.ParquetFile, part: dict, g0: int, g1: int, names: list[str] | None
    ) -> dict[str, np.ndarray]:
        """Row groups ``[g0, g1)`` of a part as numpy columns ``names`` (every column when
        None; a ``next`` column stored once brings its observation column), next values
        stored once rebuilt (the last row from group ``g1``'s first, read for that key alone)."""
        path = part["path"]
        once = self._once()
        wanted = list(self._fields) if names is None else list(names)
        wanted += [k for k in once if f"next.{k}" in wanted and k not in wanted]
        try:
            if g1 == g0 + 1:  # a sample's read: one group
                table = f.read_row_group(g0, columns=wanted, use_threads=False)
            else:
                table = f.read_row_groups(range(g0, g1), columns=wanted, use_threads=False)
        except Exception as exc:
            raise CorruptStoreError(
                f"{self.root / path}: parquet row groups [{g0}, {g1}) do not decode "
                f"({_one_line(exc)})"
            ) from None
        n = table.num_rows
        cols, gaps = {}, {}
        for name in wanted:
            entry = self._fields[name]
            cols[name], nulls = self._decode_one(table.column(name), entry, n, path, name, once)
            if nulls is not None:
                gaps[name] = nulls
        for k in once:
            nulls = gaps.get(f"next.{k}")
            if nulls is None:
                continue
            col.fill_implied(cols[k], cols[f"next.{k}"][: n - 1], nulls[: n - 1])
            if n and nulls[-1]:  # the last row: the next group's first row of k
                if g1 >= f.metadata.num_row_groups:
                    raise CorruptStoreError(
                        f"{self.root / path}: column 'next.{k}' is null at the part's last row"
                    )
                head = f.read_row_group(g1, columns=[k], use_threads=False).slice(0, 1)
                first, _ = self._decode_one(head.column(k), self._fields[k], 1, path, k, once)
                cols[f"next.{k}"][n - 1] = first[0]
        return cols

    def _decode_one(self, column, entry, n, path, name, once, compact=False):  # type: ignore[no-untyped-def]
        try:
            values, nulls = decode_column(column, entry, n, compact)
        except CorruptStoreError:
            raise
        except Exception as exc:  # a column whose type a flipped byte changed
            raise CorruptStoreError(
                f"{self.root / path}: column {name!r} does not decode as {entry['dtype']}"
                f"{entry['shape']} ({type(exc).__name__})"
            ) from None
        if nulls is not None and name not in {f"next.{k}" for k in once}:
            raise CorruptStoreError(
                f"{self.root / path}: column {name!r} has nulls; it is stored in full"
            )
        return values, nulls


def _one_line(exc: Exception) -> str:
    """pyarrow's message on one line (a Thrift error spans several)."""
    return " ".join(str(exc).split())
