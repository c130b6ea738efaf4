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

New parts are written in row groups of about ``ROW_GROUP_BYTES`` decoded bytes. Where
every key is a 4/8-byte number or a boolean, their full columns are uncompressed PLAIN,
one page a row group, and a sample reads its rows in place (``_parquet_plain``); other
parts (uint8 pixels, parts written before) are zstd, and a sample decodes only the row
groups it touches, into a cache bounded by bytes (``_parquet_groups``;
``RLDATA_PARQUET_CACHE_BYTES``). Scans (checksums, verify, convert) decode row groups a
block at a time. A writer holds only the rows it has not written to a part yet (all rows
while the store is below ``EAGER_BYTES`` decoded), so its memory is one commit's rows.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend._parquet_blocks import ParquetBlocks
from rldata.stores.backend._parquet_checks import ParquetPartChecks
from rldata.stores.backend._parquet_codec import (
    _group_rows,
    _row_bytes,
    encode_table,
)
from rldata.stores.backend._parquet_decode import ParquetDecode
from rldata.stores.backend._parquet_groups import RowGroups
from rldata.stores.backend._parquet_options import COMPRESSION, write_options
from rldata.stores.backend._parquet_plain import plain_columns
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format.checksums import file_sha256
from rldata.stores.format.commit import fsync_dir, fsync_file, temp_name

DATA_DIR = "data"
PART = re.compile(r"^part-(\d{5,})\.parquet$")
# a reader hands out zero-copy decoded columns (tensordict/columns) only up to this size;
# above it, samples go through the row-group cache
EAGER_BYTES = 32 << 20
SCAN_ROWS = 1024
WRITE_ROWS = 1 << 16
"""Rows a writer encodes into an arrow table at a time (rounded down to whole row groups)."""
"""A contiguous read this long or longer is a scan: decoded past the row-group cache."""


class ParquetStore(ParquetBlocks, ParquetDecode, ParquetPartChecks, RowStore):
    """An append-only store of parquet part files (a ring is refused)."""

    supports_random_read = True  # readers decode only the row groups a read touches
    supports_overwrite_rings = False

    @property
    def episode_log(self) -> bool:  # type: ignore[override]
        """New stores with block digests append each commit's segments to ``episodes.log``
        (format 1.4) instead of rewriting the whole index (1.7 MB at 30M rows) each commit."""
        return self.block_digests

    @property
    def chunk_log(self) -> bool:  # type: ignore[override]
        """... and their full chunks' checksums to ``chunks.sha256`` (format 1.6) instead of
        listing every chunk in the manifest each commit."""
        return self.block_digests

    def __init__(self, *args, **kwargs) -> None:
        self._init_blocks()  # block digests (format 1.7): _parquet_blocks
        super().__init__(*args, **kwargs)
        self._groups = RowGroups(
            self._open_part, self._decode_group, lambda: self._fields, self._plain_part
        )
        self._cols: dict[str, np.ndarray] | None = None  # a reader's rows, all decoded (small)
        self._loaded = 0  # rows decoded from part files into _cols
        # a writer's rows [_base, _end) (only those not in part files yet, once the store is
        # above EAGER_BYTES): its memory is its uncommitted rows, not the store
        self._tail: dict[str, np.ndarray] | None = None
        self._base = 0
        self._row_cache: tuple[dict, int] | None = None
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
        self._cols, self._tail = None, col.empty(self._fields, 0)
        self._loaded = self._flushed = self._base = 0
        self._new_block_writer()

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
            self._tail, self._base = None, listed
            self._remove_unlisted({p["path"] for p in parts})
            self._resume_block_writer()

    def _remove_unlisted(self, listed: set[str]) -> None:
        """Delete part files a crashed writer left behind (written, never committed)."""
        data = self.root / DATA_DIR
        for path in data.glob("*") if data.is_dir() else ():
            rel = f"{DATA_DIR}/{path.name}"
            if rel not in listed and (PART.match(path.name) or ".tmp-" in path.name):
                with contextlib.suppress(OSError):
                    path.unlink()

    def _load(self) -> dict[str, np.ndarray]:
        """Every row decoded (small stores only: ``_decoded``). A reader decodes new parts
        on first use; a writer decodes its committed parts in front of its tail."""
        if self.writable:
            return self._whole_tail()
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

    def _whole_tail(self) -> dict[str, np.ndarray]:
        """A writer's tail holding every row from 0 (its committed parts decoded in front)."""
        tail = self._tail_cols()
        if self._base == 0:
            return tail
        cols = col.empty(self._fields, max(self._end, 1024))
        for p in self._parts():
            self._decode_part(p, cols)
        for k, a in cols.items():
            a[self._flushed : self._end] = tail[k][
                self._flushed - self._base : self._end - self._base
            ]
        self._tail, self._base = cols, 0
        return cols

    def _tail_cols(self) -> dict[str, np.ndarray]:
        if self._tail is None:
            self._tail = col.empty(self._fields, 0)
        return self._tail

    # --- hooks ----------------------------------------------------------------------------
    def _reserve(self, positions: int) -> None:
        tail = self._tail_cols()
        have = next(iter(tail.values())).shape[0]
        if positions - self._base > have:
            room = max(positions - self._base, 2 * have, 1024)
            self._tail = col.grow(tail, room, max(0, self._end - self._base))

    def _write(self, position: int, tensors: dict[str, torch.Tensor]) -> None:
        tail = self._tail_cols()
        n = next(iter(tensors.values())).shape[0]
        at = position - self._base
        for name, t in tensors.items():
            tail[name][at : at + n] = col.to_numpy(t, self._fields[name]["dtype"])

    def _rows(self, index: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Rows ``index`` of columns ``names``: from a small reader's decoded columns, a
        writer's tail, or the part files (read in place or by row group)."""
        if self._cols is not None and not self.writable:
            return {k: np.take(self._cols[k], index, axis=0) for k in names}
        if not self.writable or self._tail is None:
            return self._gather(index, names)
        base = self._base
        old = index < base
        if not old.any():
            return {k: np.take(self._tail[k], index - base, axis=0) for k in names}
        out = self._gather(index[old], names)
        if old.all():
            return out
        new = ~old
        full = {k: np.empty((len(index), *a.shape[1:]), a.dtype) for k, a in out.items()}
        for k, a in full.items():
            a[old] = out[k]
            a[new] = np.take(self._tail[k], index[new] - base, axis=0)
        return full

    def _span(
        self, start: int, stop: int, names: list[str], scan: bool = False, check: bool = True
    ) -> dict[str, np.ndarray]:
        """Rows ``[start, stop)`` of columns ``names``. A scan (``scan``, or a range of at
        least ``SCAN_ROWS``: verify, the card, convert) decodes its row groups directly, so
        a whole-store pass never fills the row-group cache; a short range goes through it.
        ``check=False``: bytes for a checksum (``_raw``), not checked against block digests."""
        if self._cols is not None and not self.writable:
            return {k: self._cols[k][start:stop] for k in names}
        base = self._base if self.writable and self._tail is not None else self._flushed
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in names}
        lo, hi = start, min(stop, base)
        if (scan or hi - lo >= SCAN_ROWS) and self._groups.complete() is None:
            if check:  # a short range: _gather checks its blocks
                self._verify_span(lo, hi, names)
            for f, part, g0, g1, first in self._groups.spans(lo, hi):
                got = self._decode_groups(f, part, g0, g1, names)
                a = max(lo, first) - first
                n = min(hi, first + len(got[names[0]])) - max(lo, first)
                for k, out in pieces.items():
                    out.append(got[k][a : a + n])
        elif hi > lo:
            got = self._gather(np.arange(lo, hi, dtype=np.int64), names, check)
            for k, out in pieces.items():
                out.append(got[k])
        if stop > max(start, base):
            tail = self._tail_cols()
            for k, out in pieces.items():
                out.append(tail[k][max(start, base) - base : stop - base])
        return {
            k: v[0] if len(v) == 1 else np.concatenate(v or [self._empty(k)])
            for k, v in pieces.items()
        }

    def _read(self, positions: torch.Tensor) -> TensorDict:
        cols = self._rows(positions.numpy(), list(self._fields))
        return self._tree(cols, positions.shape[0])

    def _tree(self, cols: dict[str, np.ndarray], n: int) -> TensorDict:
        """Rows as a TensorDict; arrays pyarrow decoded in place (read-only) are copied."""
        return col.tree(
            {
                k: col.to_torch(a if a.flags.writeable else a.copy(), self._fields[k]["dtype"])
                for k, a in cols.items()
            },
            n,
        )

    def _read_range(self, start: int, stop: int) -> TensorDict:
        return self._tree(self._span(start, stop, list(self._fields)), stop - start)

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        a = self._rows(positions.numpy(), [name])[name]
        return col.to_torch(a, self._fields[name]["dtype"])

    def _gather(
        self, index: np.ndarray, names: list[str], check: bool = True
    ) -> dict[str, np.ndarray]:
        if index.size == 0:
            return {k: self._empty(k) for k in names}
        if check:  # first: blocks read in one request each, then the rows from the cache
            self._verify_index_rows(index, names)
        return self._groups.gather(index, names)

    def _empty(self, name: str) -> np.ndarray:
        entry = self._fields[name]
        return np.zeros((0, *entry["shape"]), col.np_dtype(entry["dtype"]))

    def _raw(self, name: str, start: int, stop: int) -> memoryview:
        """Rows ``[start, stop)`` of one column as bytes: that column alone, only the row
        groups covering them (verify and the digest stay bounded)."""
        a = self._span(start, stop, [name], scan=True, check=False)[name]
        return memoryview(np.ascontiguousarray(a)).cast("B")  # type: ignore[arg-type]

    def _flush(self, filled: int) -> None:
        self._sync_blocks()  # the digests _extend_digests appended, before the manifest
        if filled <= self._flushed:
            return
        tail, base = self._tail_cols(), self._base
        parts = self._parts()
        number = 1 + max((_part_number(p["path"]) for p in parts), default=-1)
        rel = f"{DATA_DIR}/part-{number:05d}.parquet"
        target = self.root / rel
        a, b = self._flushed, filled
        group = _group_rows(self._fields)
        tmp = temp_name(target)
        try:
            self._write_part(tmp, {k: v[a - base : b - base] for k, v in tail.items()}, a, group)
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
        self._checked.add(rel)  # this handle's own part, hashed as written
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
        self._flushed = filled
        self._groups.update(parts)
        if base > 0 or filled * self._row_size() > EAGER_BYTES:
            self._drop_flushed(filled)

    def _drop_flushed(self, filled: int) -> None:
        """Keep only the tail's rows not in part files (none after a commit), in a buffer of
        their size: a writer's memory is one commit's rows, whatever the store's size."""
        tail, rest = self._tail_cols(), self._end - filled
        at = filled - self._base
        kept = col.empty(self._fields, max(rest, 1024))
        for k, v in kept.items():
            v[:rest] = tail[k][at : at + rest]
        self._tail, self._base = kept, filled

    def _write_part(self, tmp: Path, rows: dict[str, np.ndarray], start: int, group: int) -> None:
        """Rows as one parquet file, encoded ``WRITE_ROWS`` (whole row groups) at a time: the
        writer's peak memory is its uncommitted rows plus one slice, not two copies."""
        once, n = self._once(), next(iter(rows.values())).shape[0]
        step = group * max(1, WRITE_ROWS // group)
        meta = self._file_meta(start)
        writer = None
        try:
            for lo in range(0, n, step):
                table = encode_table(
                    {k: v[lo : lo + step] for k, v in rows.items()}, self._fields, meta, once, group
                )
                if writer is None:
                    opts = write_options(
                        table, self._fields, plain_columns(self._fields, once), group
                    )
                    group_rows = opts.pop("row_group_size")
                    writer = pq.ParquetWriter(tmp, table.schema, **opts)
                writer.write_table(table, row_group_size=group_rows)
        finally:
            if writer is not None:
                writer.close()

    def _file_meta(self, start: int) -> dict:
        return {
            "format": "rldata",
            "schema": self._fields,
            "specs": self._m.get("specs"),
            "env": self._m.get("env"),
            "start": start,
        }

    def _row_size(self) -> int:
        """Decoded bytes of a row (cached per schema: samplers ask on every batch)."""
        fields = self._fields
        if self._row_cache is None or self._row_cache[0] is not fields:
            self._row_cache = (fields, _row_bytes(fields))
        return self._row_cache[1]

    def _eager(self) -> bool:
        """Whether whole decoded columns may be handed out: a small store's, a writer's whose
        tail holds every row, or a reader's that decoded everything already (a large store
        samples by row group; a large writer keeps only its uncommitted rows)."""
        if self.writable and self._tail is not None and self._base == 0:
            return True
        small = self._filled() * self._row_size() <= EAGER_BYTES
        return small or (self._cols is not None and not self.writable)

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
            if done is not None:  # every row handed out: every block checked
                self._verify_span(0, self._filled(), list(self._fields))
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
