"""The parquet backend: append-only, one row per transition, readable by DuckDB, Polars, pyarrow.

Layout under the store directory (see ``docs/FORMAT.md``)::

    data/part-00000.parquet     rows [0, n0): the first commit's rows
    data/part-00001.parquet     rows [n0, n0 + n1): the next commit's, and so on

Columns are named by dotted key paths (``observation``, ``next.reward``,
``collector.traj_ids``). Values of shape ``[]`` or ``[1]`` are plain scalar columns;
others are fixed-size lists of the row's elements in C order. Each file's schema
metadata (``rldata``) holds every key's shape and dtype, the env's specs and the rows it
covers, so a file is self-describing. A commit adds new immutable part files (written
to a temporary name, fsynced, renamed) and never rewrites one; the manifest lists the
parts, and a reader trusts only those (a writer deletes parts a crash left unlisted).

A reader's samples decode only the row groups they touch, into a cache bounded by bytes
(``_parquet_groups``; ``RLDATA_PARQUET_CACHE_BYTES``); new parts are written in row groups
of about ``ROW_GROUP_BYTES`` decoded bytes so that a group is a small decode (older parts
keep the row groups they were written with). A writer, and whole-store reads (checksums,
``columns()`` of a large store), decode the listed parts into numpy columns.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq  # a missing package: the registry names the extra
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._parquet_checks import ParquetPartChecks
from rldata.stores.backend._parquet_codec import (
    _check_footer,
    _float_columns,
    _group_rows,
    _refuse_extension_types,
    _row_bytes,
    decode_column,
    encode_table,
)
from rldata.stores.backend._parquet_groups import RowGroups
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format.checksums import file_sha256
from rldata.stores.format.commit import fsync_dir, fsync_file, temp_name
from rldata.stores.format.files import inside

DATA_DIR = "data"
PART = re.compile(r"^part-(\d{5,})\.parquet$")
COMPRESSION = "zstd"
# a reader hands out zero-copy decoded columns (tensordict/columns) only up to this size;
# above it, samples go through the row-group cache
EAGER_BYTES = 32 << 20
SCAN_ROWS = 1024
"""A contiguous read this long or longer is a scan: decoded past the row-group cache."""


class ParquetStore(ParquetPartChecks, RowStore):
    """An append-only store of parquet part files (a ring is refused)."""

    supports_random_read = True  # readers decode only the row groups a read touches
    supports_overwrite_rings = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._groups = RowGroups(self._open_part, self._decode_group, lambda: self._fields)
        self._cols: dict[str, np.ndarray] | None = None  # decoded rows, None until first use
        self._loaded = 0  # rows decoded from part files
        self._flushed = 0  # rows in part files listed by this handle's manifest
        self._checked: set[str] = set()  # parts hashed against the manifest by this handle
        self.hashed = 0  # parts this handle hashed (tests and benchmarks read it)

    @classmethod
    def attach(cls, root, manifest, *, writable, lock, durable=True):  # type: ignore[override]
        if manifest.get("capacity") is not None:
            raise ConfigError(
                f"store backend 'parquet' is append-only, so capacity={manifest['capacity']} "
                f"(a ring) is refused; use capacity=None, or backend 'memmap' or 'zarr' for a ring"
            )
        return super().attach(root, manifest, writable=writable, lock=lock, durable=durable)

    # --- parts -----------------------------------------------------------------------------
    def _parts(self) -> list[dict]:
        parts = self._m["payload"].get("parts")
        if not isinstance(parts, list):
            raise CorruptStoreError(f"{self.root}: manifest field 'payload.parts': expected a list")
        total = 0
        for p in parts:
            ok = (
                isinstance(p, dict)
                and isinstance(p.get("path"), str)
                and isinstance(p.get("rows"), int)
                and not isinstance(p.get("rows"), bool)
                and p["rows"] > 0
                and p.get("start") == total
            )
            if not ok:
                raise CorruptStoreError(
                    f"{self.root}: manifest field 'payload.parts': expected "
                    f"{{path, start={total}, rows > 0}}, got {p!r}"
                )
            total += p["rows"]
        return parts

    def _init_payload(self) -> None:
        (self.root / DATA_DIR).mkdir(exist_ok=True)
        self._m["payload"] = {
            "dir": DATA_DIR,
            "format": "parquet",
            "compression": COMPRESSION,
            "files": {name: name for name in self._fields},  # key -> its column
            "parts": [],
            # each observation stored once: next.<obs> only where it is not the next row's
            "next_stored_once": col.obs_keys(self._fields),
        }
        self._cols = col.empty(self._fields, 0)
        self._loaded = self._flushed = 0

    def _attach_payload(self) -> None:
        files = self._m["payload"].get("files")
        if not isinstance(files, dict) or set(files) != set(self._fields):
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.files': expected one column per schema key"
            )
        parts = self._parts()
        listed = sum(p["rows"] for p in parts)
        filled = self._filled()
        if listed != filled:
            raise CorruptStoreError(
                f"{self.root}: parquet parts list {listed} rows, the manifest {filled} committed rows"
            )
        if listed < self._loaded:  # not a store we can extend: decode again
            self._cols, self._loaded = None, 0
        self._flushed = listed
        self._groups.update(parts)
        if self.writable:
            self._remove_unlisted({p["path"] for p in parts})

    def _remove_unlisted(self, listed: set[str]) -> None:
        """Delete part files a crashed writer left behind (written, never committed)."""
        data = self.root / DATA_DIR
        for path in data.glob("*") if data.is_dir() else ():
            rel = f"{DATA_DIR}/{path.name}"
            if rel not in listed and (PART.match(path.name) or ".tmp-" in path.name):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _load(self) -> dict[str, np.ndarray]:
        """The decoded columns of every committed row (decoding new parts on first use)."""
        cols = self._cols
        filled = self._flushed
        if cols is not None and self._loaded >= filled:
            return cols
        have = self._loaded if cols is not None else 0
        room = max(filled, next(iter(cols.values())).shape[0] if cols else 0)
        if cols is None:  # the schema's row size comes from the manifest: check before allocating
            untrusted.check_budget(
                room * _row_bytes(self._fields),
                f"store {self.path}",
                f"decoding {room} rows of this schema",
                budget=untrusted.ram_budget(),
                error=CorruptStoreError,
            )
        cols = col.empty(self._fields, room) if cols is None else col.grow(cols, room, have)
        for p in self._parts():
            if p["start"] + p["rows"] <= have:
                continue
            self._decode_part(p, cols)
        self._cols, self._loaded = cols, filled
        return cols

    def _decode_part(self, part: dict, cols: dict[str, np.ndarray]) -> None:
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

    def _once(self) -> list[str]:
        """Observation keys whose ``next`` column holds only rows that break the chain."""
        once = col.stored_once(self.root, self._m["payload"], self._fields)
        return once

    # --- hooks ----------------------------------------------------------------------------
    def _reserve(self, positions: int) -> None:
        cols = self._load()
        have = next(iter(cols.values())).shape[0]
        if positions > have:
            self._cols = col.grow(
                cols, max(positions, 2 * have, 1024), max(self._loaded, self._end)
            )

    def _write(self, position: int, tensors: dict[str, torch.Tensor]) -> None:
        cols = self._load()
        n = next(iter(tensors.values())).shape[0]
        for name, t in tensors.items():
            cols[name][position : position + n] = col.to_numpy(t, self._fields[name]["dtype"])

    def _by_groups(self) -> bool:
        """Whether reads go through the row-group cache: a reader that has not decoded the
        whole store (a writer's rows live in its decoded columns)."""
        return not self.writable and self._cols is None

    def _read(self, positions: torch.Tensor) -> TensorDict:
        if self._by_groups():
            cols = self._gather(positions.numpy(), list(self._fields))
            return col.tree(
                {k: col.to_torch(a, self._fields[k]["dtype"]) for k, a in cols.items()},
                positions.shape[0],
            )
        return col.take(self._load(), self._fields, positions.numpy())

    def _read_range(self, start: int, stop: int) -> TensorDict:
        """A scan's block (verify, the card, convert: :func:`row_blocks`) decodes its row
        groups directly, so a whole-store pass never fills the row-group cache; a short
        range (a slice sample) goes through the cache."""
        if not self._by_groups() or stop - start < SCAN_ROWS or self._groups.complete():
            return super()._read_range(start, stop)
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in self._fields}
        for f, part, g0, g1, first in self._groups.spans(start, stop):
            got = self._decode_groups(f, part, g0, g1, None)
            lo = max(start, first) - first
            n = min(stop, first + len(got[next(iter(pieces))])) - max(start, first)
            for k, out in pieces.items():
                out.append(got[k][lo : lo + n])
        cols = {k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in pieces.items()}
        return col.tree(
            {k: col.to_torch(a, self._fields[k]["dtype"]) for k, a in cols.items()}, stop - start
        )

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        if self._by_groups():
            a = self._gather(positions.numpy(), [name])[name]
        else:
            a = np.take(self._load()[name], positions.numpy(), axis=0)
        return col.to_torch(a, self._fields[name]["dtype"])

    def _gather(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        if index.size == 0:
            return {
                k: np.zeros((0, *self._fields[k]["shape"]), col.np_dtype(self._fields[k]["dtype"]))
                for k in names
            }
        return self._groups.gather(index, names)

    def _open_part(self, part: dict) -> pq.ParquetFile:
        """A listed part's file, its footer checked before any row is decoded."""
        path = inside(self.root, part["path"], "a parquet part")
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
                f"{self.root / path}: parquet row groups [{g0}, {g1}) do not decode ({exc})"
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

    def _decode_one(self, column, entry, n, path, name, once):  # type: ignore[no-untyped-def]
        try:
            values, nulls = decode_column(column, entry, n)
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

    def _empty(self, name: str) -> np.ndarray:
        entry = self._fields[name]
        return np.zeros((0, *entry["shape"]), col.np_dtype(entry["dtype"]))

    def _raw(self, name: str, start: int, stop: int) -> memoryview:
        """Rows ``[start, stop)`` of one column as bytes: a reader decodes only the row
        groups covering them, that column alone (verify and the digest stay bounded)."""
        if not self._by_groups():
            a = self._load()[name][start:stop]
        else:
            pieces = []
            for f, part, g0, g1, first in self._groups.spans(start, stop):
                values = self._decode_groups(f, part, g0, g1, [name])[name]
                lo = max(start, first) - first
                pieces.append(values[lo : lo + min(stop, first + len(values)) - max(start, first)])
            a = pieces[0] if len(pieces) == 1 else np.concatenate(pieces or [self._empty(name)])
        return memoryview(np.ascontiguousarray(a)).cast("B")  # type: ignore[arg-type]

    def _flush(self, filled: int) -> None:
        if filled <= self._flushed:
            return
        cols = self._load()
        parts = self._parts()
        number = 1 + max((_part_number(p["path"]) for p in parts), default=-1)
        rel = f"{DATA_DIR}/part-{number:05d}.parquet"
        target = self.root / rel
        a, b = self._flushed, filled
        group = _group_rows(self._fields)
        table = encode_table(
            {k: v[a:b] for k, v in cols.items()},
            self._fields,
            self._file_meta(a),
            self._once(),
            group,
        )
        tmp = temp_name(target)
        try:
            pq.write_table(
                table,
                tmp,
                compression=COMPRESSION,
                use_dictionary=False,  # floats rarely repeat: dictionaries only cost space
                use_byte_stream_split=_float_columns(table),  # ~9% smaller floats, measured
                row_group_size=group,
                write_page_index=True,
            )
            if self.durable:
                fsync_file(tmp)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self.durable:
            fsync_dir(target.parent)
            if not parts:
                fsync_dir(self.root)
        digest = file_sha256(target)
        parts.append(
            {
                "path": rel,
                "start": a,
                "rows": b - a,
                "bytes": target.stat().st_size,
                "sha256": digest,
            }
        )
        self._m["payload"]["parts"] = parts
        self._flushed = self._loaded = filled

    def _file_meta(self, start: int) -> dict:
        return {
            "format": "rldata",
            "schema": self._fields,
            "specs": self._m.get("specs"),
            "env": self._m.get("env"),
            "start": start,
        }

    def _eager(self) -> bool:
        """Whether whole decoded columns may be handed out: a writer's, a small store's, or
        a reader's that decoded everything already (a large reader samples by row group)."""
        return (
            self.writable
            or self._cols is not None
            or self._filled() * _row_bytes(self._fields) <= EAGER_BYTES
        )

    def columns(self) -> dict[str, torch.Tensor] | None:
        """Flat key -> decoded rows ``[0, filled)`` (positions == row index; for gathers);
        None for a reader of a store above ``EAGER_BYTES`` decoded (it samples by row group)."""
        if self.schema is None:
            return None
        cols = self._decoded()
        if cols is None:
            return None
        filled = self._filled()
        return {k: col.to_torch(a[:filled], self._fields[k]["dtype"]) for k, a in cols.items()}

    def _decoded(self) -> dict[str, np.ndarray] | None:
        """Every row decoded: a sampling reader's dense row groups once all are decoded, else
        the whole-store decode where it is allowed (``_eager``), else None."""
        if not self.writable and self._cols is None:
            done = self._groups.complete()
            if done is not None:
                return done
        return self._load() if self._eager() else None

    def rows_view(self) -> TensorDict | None:
        """The decoded rows ``[0, filled)`` as one TensorDict (decoded once per handle); None
        for a reader of a store above ``EAGER_BYTES`` decoded (it samples by row group)."""
        if self.schema is None:
            return None
        cols = self._decoded()
        if cols is None:
            return None
        filled = self._filled()
        return col.tree(
            {k: col.to_torch(a[:filled], self._fields[k]["dtype"]) for k, a in cols.items()}, filled
        )


def _part_number(rel: str) -> int:
    match = PART.match(Path(rel).name)
    return int(match.group(1)) if match else -1
