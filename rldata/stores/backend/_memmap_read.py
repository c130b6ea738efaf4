"""Reading the memmap payload: file checks, memory maps, gathers, the stored-once next rows.

The files, their checks and every read path of the memmap backend; the writer
(:class:`rldata.stores.backend._memmap.MemmapStore`) adds growth, writes and flushes.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _compat
from rldata._env import map_bytes
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend import _memmap_gather as gather
from rldata.stores.backend._memmap_checks import DATA_DIR, BlockChecks, _record_bytes
from rldata.stores.backend._memmap_gather import _as_rows, _ExplicitFinder, _read_plan, _Rows, _take
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format import schema as sch
from rldata.stores.format.blocksums import BlockTable, BlockWriter
from rldata.stores.format.files import inside

_PWRITE = hasattr(os, "pwrite")
_TD_TYPE = "<class 'tensordict._td.TensorDict'>"
_CPU = torch.device("cpu")


class MemmapFiles(BlockChecks, RowStore):
    """The memmap files of a store and the reads over them (checked on read: BlockChecks)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._views: dict[str, torch.Tensor] = {}
        # the same mappings as numpy arrays of opaque rows (see _take); None: index_select
        self._arrays: dict[str, _Rows | None] = {}
        self._reads_mapped = True  # no _PreadRows in _arrays (random_reads_mapped)
        self._xfind: dict[str, _ExplicitFinder] = {}  # per stored-once key, for _next_rows
        self._fds: dict[str, int] = {}
        self._rows = 0  # mapped row positions
        self._td: TensorDict | None = None
        self._td_rows = -1
        self._td_view: TensorDict | None = None
        self._meta_rows = -1
        self._dirty = False  # payload written since the last fsync
        self._new_dirs: set[Path] = set()  # created, not yet fsynced
        self._fresh = 0  # positions from here on were never written by this handle's files
        self._row_bytes: dict[str, int] = {}
        self._paths: dict[str, Path] = {}
        # each observation stored once: obs key -> explicit next rows (positions ascending)
        self._xpos: dict[str, np.ndarray] = {}  # positions of the explicit rows
        self._xmap: dict[str, np.ndarray | None] = {}  # their records, mapped lazily
        self._pend: dict[str, tuple[int, np.ndarray]] = {}  # last row's next value, undecided
        self._plan: tuple[int, list, list] | None = None  # how _read builds its tree (_read_plan)
        self._batch: gather._Batch | None = None  # a batch's gathers over this mapping
        self._batch_for: object = None  # the mapping _batch was planned over (None: none)
        self._inodes: dict[str, tuple[int, int]] = {}  # the files the views map
        self._xsum: dict[str, object] = {}  # a writer's running SHA-256 of each key's records
        self._rfds: dict[str, int | None] = {}  # a reader's pread descriptors (_read_fd)
        self._bw: BlockWriter | None = None  # a writer's block digests (format 1.4)
        # a verified reader's block digests, and which blocks it has checked (verify_on_read)
        self._lazy: BlockTable | None = None
        self._checked = np.zeros(0, dtype=bool)  # blocks checked for every key
        self._key_checked = np.zeros((0, 0), dtype=bool)  # [block, key] checked
        self._unchecked = 0  # blocks not checked for every key

    # --- files --------------------------------------------------------------------------
    def _file(self, name: str) -> Path:
        path = self._paths.get(name)
        if path is None:
            rel = self._m["payload"]["files"][name]
            path = self._paths[name] = inside(self.root, rel, f"the payload file of key {name!r}")
        return path

    def _once(self) -> list[str]:
        """Observation keys whose ``next`` value is stored once (none before format 1.2)."""
        once = col.stored_once(self.root, self._m["payload"], self._fields)
        if once and self.capacity is not None:
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.next_stored_once': a ring keeps both "
                f"copies, got {once!r}"
            )
        return once

    def _once_rows(self, once: list[str]) -> dict[str, int]:
        counts = self._m["payload"].get("next_once_rows", {})
        ok = isinstance(counts, dict) and set(counts) == set(once)
        if ok:
            ok = all(type(v) is int and 0 <= v <= self._filled() for v in counts.values())
        if not ok:
            raise CorruptStoreError(
                f"{self.root}: manifest field 'payload.next_once_rows': expected a row count "
                f"<= {self._filled()} per key of {once}, got {counts!r}"
            )
        return counts

    def _record(self, k: str) -> np.dtype:
        """One explicit row of ``next.k``: its position, then its bytes."""
        e = self._fields[f"next.{k}"]
        return np.dtype([("pos", "<i8"), ("row", col.np_dtype(e["dtype"]), tuple(e["shape"]))])

    def _attach_payload(self) -> None:
        self._paths = {}
        self._check_payload()
        self._load_explicit()
        if self.writable:
            for name in self._fields:
                if name not in self._fds:
                    self._fds[name] = os.open(self._file(name), os.O_RDWR)
            rows = self._filled()
            if self.capacity is not None:
                rows = self.capacity if rows else 0
            self._map(max(rows, self._filled()), grow=True)
            self._fresh = self._filled()
            self._row_bytes = {k: sch.row_bytes(e) for k, e in self._fields.items()}
            self._pend = {}
            # records only grow: the committed ones hashed once, each new one as it lands
            self._xsum = {k: hashlib.sha256(_record_bytes(self._explicit(k))) for k in self._xpos}
            entry = self._m["checksums"].get("blocks")
            if entry is not None and self._bw is None:
                self._bw = BlockWriter(self.root, entry["keys"], entry["block_rows"], entry)
        else:
            if self._rows != self._filled() or not self._views:
                self._map(self._filled(), grow=False)
            if self._lazy is not None:  # a new commit: its digests, checked before any read
                self._arm(self._lazy)

    def _load_explicit(self) -> None:
        """Positions of the committed explicit next rows (a few per trajectory)."""
        once = self._once()
        counts = self._once_rows(once)
        self._xpos, self._xmap = {}, {}
        for k in once:
            recs = self._records(k, counts[k])
            pos = np.array(recs["pos"]) if recs is not None else np.zeros(0, np.int64)
            if pos.size and (np.any(np.diff(pos) <= 0) or pos[0] < 0 or pos[-1] >= self._filled()):
                raise CorruptStoreError(
                    f"{self._file(f'next.{k}')}: explicit next rows of key 'next.{k}' are not "
                    f"ascending positions below {self._filled()}"
                )
            self._xpos[k], self._xmap[k] = pos, recs

    def _records(self, k: str, count: int) -> np.ndarray | None:
        if count == 0:
            return None
        recs = np.memmap(self._file(f"next.{k}"), dtype=self._record(k), mode="r", shape=(count,))
        return recs.view(np.ndarray)  # the same bytes, without memmap's per-index overhead

    def _explicit(self, k: str) -> np.ndarray | None:
        """The explicit records of ``next.k`` this handle knows (mapped again after a write)."""
        recs = self._xmap.get(k)
        if recs is None or len(recs) != len(self._xpos[k]):
            recs = self._xmap[k] = self._records(k, len(self._xpos[k]))
        return recs

    def _map(self, rows: int, *, grow: bool) -> None:
        views, inodes = {}, {}
        late = self._late()
        for name, entry in self._fields.items():
            if name in late:  # explicit rows only: no row-indexed mapping
                continue
            dtype, shape = sch.dtype_of(entry["dtype"]), entry["shape"]
            nbytes = rows * sch.row_bytes(entry)
            path = self._file(name)
            st = path.stat()
            size, inodes[name] = st.st_size, (st.st_dev, st.st_ino)
            if size < nbytes:
                if not grow:
                    raise CorruptStoreError(
                        f"{path}: expected at least {nbytes} bytes for {rows} committed rows, "
                        f"found {size}"
                    )
                os.ftruncate(self._fds[name], nbytes)  # sparse: no disk until rows land
            numel = rows * math.prod(shape)
            if rows == 0:
                views[name] = torch.empty((0, *shape), dtype=dtype)
            else:
                flat = torch.from_file(str(path), shared=self.writable, size=numel, dtype=dtype)
                views[name] = flat.view(rows, *shape)
        self._views, self._rows, self._td, self._td_rows = views, rows, None, -1
        self._inodes = inodes
        self._drop_read_fds()  # they belong to the previous mapping
        mapped = sum(v.numel() * v.element_size() for v in views.values())
        self._reads_mapped = mapped <= map_bytes()
        if self._reads_mapped:
            self._arrays = {name: _as_rows(v) for name, v in views.items()}
        else:  # random rows through a mapping would map the store into this process
            self._arrays = {
                name: _as_rows(v, self._fd_reader(name), self._file(name))
                for name, v in views.items()
            }

    @property
    def random_reads_mapped(self) -> bool:
        """Whether random row reads go through the mappings: the row files fit
        ``RLDATA_MAP_BYTES``; above it reads pread each row and a buffer gathers through
        :meth:`get`, not through a whole-store view (its pages would stay mapped)."""
        return self._reads_mapped  # set with _arrays (a storage asks it every batch)

    def _fd_reader(self, name: str) -> Callable[[], int | None]:
        """Key ``name``'s pread descriptor, looked up at each read (remapping drops it)."""
        return lambda: self._read_fd(name)

    def _late(self) -> set[str]:
        """The ``next.k`` keys stored once (rebuilt from ``k``)."""
        return {f"next.{k}" for k in self._xpos}

    def _full(self) -> TensorDict:
        if self._td is None:
            td = TensorDict({}, batch_size=[self._rows])
            for name, view in self._views.items():
                td.set(sch.key_tuple(name), view)
            self._td = td
        return self._td

    def _read(self, positions: torch.Tensor) -> TensorDict:
        self._verify_positions(positions)
        if not self._pend and positions.is_cpu:
            batch = self._batch
            if self._batch_for is not self._arrays or (
                batch is not None and not batch.current(self._arrays, self._xpos)
            ):
                batch = self._plan_batch()
            if batch is not None:
                return batch(positions.numpy(), positions.shape[0])
        return self._read_general(positions)

    def _plan_batch(self) -> gather._Batch | None:
        """Plan a batch's gathers over the current mapping (None: the general path)."""
        self._batch = gather._plan_batch(
            self._fields, self._arrays, self._xpos, self._finder, self._explicit
        )
        self._batch_for = self._arrays
        return self._batch

    def _finder(self, k: str) -> _ExplicitFinder:
        """The explicit rows of ``next.k`` by position, over the mapped rows of ``k``."""
        xpos, n = self._xpos[k], self._views[k].shape[0]
        find = self._xfind.get(k)
        if find is None or find.xpos is not xpos or find.rows != n:
            find = self._xfind[k] = _ExplicitFinder(xpos, n)
        return find

    def _read_general(self, positions: torch.Tensor) -> TensorDict:
        """:meth:`_read` for any positions and mapping (a writer's pending row, rows read
        with ``pread``, dtypes numpy lacks, positions on another device)."""
        # one gather per key: several times faster than indexing the TensorDict view;
        # the leaves match the schema, so the TensorDict is built without re-checking each
        # (tensordict's checks cost ~0.2 ms a batch, more than the gathers of small rows)
        plan = self._plan
        if plan is None:
            plan = self._plan = _read_plan(self._fields)
        p = positions.numpy() if positions.device.type == "cpu" else None
        arrays = self._arrays
        nodes: list[dict] = [{} for _ in range(plan[0])]
        size = torch.Size([positions.numel()])
        for name, at, key, child in plan[1]:
            if name is None:  # a nested TensorDict, where the tree first meets it
                nodes[at][key] = nodes[child]  # its dict, made a TensorDict below
                continue
            rows = arrays.get(name)  # _gather inlined: 11 keys a batch, a call each saved
            if rows is not None and p is not None:
                nodes[at][key] = rows.take(p)
            elif name in self._views:
                nodes[at][key] = self._gather(name, positions, p)
            else:
                nodes[at][key] = self._next_rows(name[len("next.") :], positions, p)
        # nested dicts become TensorDicts deepest first (a child's dict is filled by now)
        for at, key, child in plan[2]:
            nodes[at][key] = _compat.new_td(nodes[child], size, _CPU)
        return _compat.new_td(nodes[0], size, _CPU)

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        self._verify_positions(positions, name)
        return self._gather(name, positions)

    def _gather(
        self, name: str, positions: torch.Tensor, p: np.ndarray | None = None
    ) -> torch.Tensor:
        view = self._views.get(name)
        if view is not None:
            return _take(view, self._arrays.get(name), positions, p)
        return self._next_rows(name[len("next.") :], positions)

    def _next_rows(
        self, k: str, positions: torch.Tensor, p: np.ndarray | None = None
    ) -> torch.Tensor:
        """``next.k`` at ``positions`` (``p``: the same in numpy): ``k`` one row later, patched
        where stored explicitly (index math in numpy: a few microseconds a sample)."""
        view = self._views[k]
        n = view.shape[0]
        if n == 0 or positions.numel() == 0:
            return view.index_select(0, positions)
        if p is None:
            p = positions.numpy()
        # one row later, clipped to the mapped rows (explicit and pending rows: patched below)
        q = p + 1
        xpos, hit, j = self._xpos[k], None, None
        if xpos.size:
            hit, j = self._finder(k)(p)
        pend = self._pend.get(k) if self._pend else None
        mine = np.flatnonzero(p == pend[0]) if pend is not None else None
        mapped = self._arrays.get(k)
        if mapped is not None and positions.device.type == "cpu":
            out = mapped.take_clipped(q)
        else:
            np.minimum(q, n - 1, out=q)
            out = view.index_select(0, torch.from_numpy(q))
        if hit is not None and hit.size:
            recs = self._explicit(k)
            assert recs is not None
            assert j is not None
            explicit = recs["row"][j]  # a fresh copy
            if mapped is not None and mapped.rows is not None and out.dtype == mapped.dtype:
                out.numpy()[hit] = explicit  # the batch's own memory: one numpy assignment
            else:
                gather._put_rows(out, hit, col.to_torch(explicit, self._fields[k]["dtype"]))
        if mine is not None and mine.size:
            assert pend is not None
            row = col.to_torch(pend[1], self._fields[k]["dtype"])
            gather._put_rows(out, mine, row.expand(len(mine), *row.shape[1:]))
        return out

    def _read_range(self, start: int, stop: int) -> TensorDict:
        self._verify_rows(None, start, stop)
        late = self._late()
        return col.tree(
            {
                name: self._next_range(name[len("next.") :], start, stop)
                if name in late
                else self._slice(name, start, stop)
                for name in self._fields
            },
            stop - start,
        )

    def _slice(
        self, name: str, start: int, stop: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A copy of rows ``[start, stop)`` of a row-indexed key, read with ``pread``: a
        sequential read skips the page faults of first touching the mapping (3-5x faster
        for export and conversion)."""
        view = self._views[name]
        stop = min(stop, view.shape[0])
        if out is None:
            out = torch.empty((max(0, stop - start), *view.shape[1:]), dtype=view.dtype)
        if out.numel() == 0 or not _PWRITE:
            out.copy_(view[start:stop])
            return out
        fd = self._read_fd(name)
        if fd is None:
            out.copy_(view[start:stop])
            return out
        buf = memoryview(out.view(torch.uint8).reshape(-1).numpy())  # type: ignore[arg-type]
        offset, done = start * (len(buf) // (stop - start)), 0
        while done < len(buf):
            got = os.preadv(fd, [buf[done:]], offset + done)
            if got <= 0:
                raise CorruptStoreError(f"{self._file(name)}: short read of key {name!r}")
            done += got
        return out

    def _read_fd(self, name: str) -> int | None:
        """The descriptor to pread key ``name`` from: the writer's, or a reader's opened once
        per mapping; None when the path now names another file than the one mapped (a
        ``--force`` swap), so the read goes through the mapping."""
        fd = self._fds.get(name)
        if fd is not None or name in self._rfds:
            return fd if fd is not None else self._rfds[name]
        opened: int | None = os.open(self._file(name), os.O_RDONLY)
        assert opened is not None
        st = os.fstat(opened)
        if (st.st_dev, st.st_ino) != self._inodes.get(name):
            os.close(opened)
            opened = None
        self._rfds[name] = opened
        return opened

    def _drop_read_fds(self) -> None:
        rfds, self._rfds = getattr(self, "_rfds", {}), {}
        for fd in rfds.values():
            if fd is not None:
                os.close(fd)

    def _next_range(self, k: str, start: int, stop: int) -> torch.Tensor:
        """``next.k`` of rows ``[start, stop)``: ``k`` of ``[start + 1, stop + 1)`` copied in
        one slice, then the explicit rows of the range (found by two binary searches)."""
        view = self._views[k]
        out = torch.empty((stop - start, *view.shape[1:]), dtype=view.dtype)
        have = max(0, min(stop + 1, view.shape[0]) - start - 1)
        self._slice(k, start + 1, start + 1 + have, out[:have])
        xpos = self._xpos[k]
        i, j = np.searchsorted(xpos, [start, stop])
        if j > i:
            recs = self._explicit(k)
            assert recs is not None
            rows = col.to_torch(recs["row"][i:j].copy(), self._fields[k]["dtype"])
            out[torch.from_numpy(xpos[i:j] - start)] = rows
        pend = self._pend.get(k)
        if pend is not None and start <= pend[0] < stop:
            out[pend[0] - start] = col.to_torch(pend[1], self._fields[k]["dtype"])[0]
        return out

    def _raw(self, name: str, start: int, stop: int) -> memoryview:
        if name in self._late():
            rows = self._next_range(name[len("next.") :], start, stop)
            return memoryview(rows.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]
        # a pread copy, not a view of the mapping: hashing a store leaves no mapped pages
        # resident in this process (its memory stays a chunk, not the store)
        rows = self._slice(name, start, stop)
        return memoryview(rows.reshape(-1).view(torch.uint8).numpy())  # type: ignore[arg-type]

    def _td_meta(self, filled: int) -> dict[Path, dict]:
        """The content of every ``meta.json`` for ``filled`` rows, by path."""
        dirs: dict[tuple[str, ...], dict] = {(): {}}
        late = self._late()
        for name, entry in self._fields.items():
            if name in late:  # not row-indexed: TensorDict.load_memmap leaves it out
                continue
            parts = sch.key_tuple(name)
            for i in range(1, len(parts)):
                dirs.setdefault(parts[:i], {})
                dirs[parts[: i - 1]][parts[i - 1]] = {"type": "TensorDict"}
            dirs[parts[:-1]][parts[-1]] = {
                "device": "cpu",
                "shape": [filled, *entry["shape"]],
                "dtype": f"torch.{entry['dtype']}",
                "is_nested": False,
            }
        out = {}
        for parts, meta in dirs.items():
            meta.update({"shape": [filled], "device": "cpu", "_type": _TD_TYPE})
            out[self.root / DATA_DIR / Path(*parts) / "meta.json"] = meta
        return out

    # --- fast path ----------------------------------------------------------------------
    def columns(self) -> dict[str, torch.Tensor] | None:
        """Flat key -> memory-mapped tensor of rows ``[0, filled)`` (no copy; for gathers);
        None when observations are stored once (``next`` values are rebuilt by ``get``)."""
        if self.schema is None or self._xpos:
            return None
        self._verify_all()  # handed out whole: checked whole
        filled = self._filled()
        return {k: v if filled == self._rows else v[:filled] for k, v in self._views.items()}

    def _column(self, name: str) -> torch.Tensor | None:
        """One key's rows ``[0, filled)``: a zero-copy view, or ``next.k`` rebuilt (a copy)
        when observations are stored once."""
        if self.schema is None or name not in self._fields:
            return None
        self._verify_all(name)  # that key's blocks (a sampler's trajectory ids: 8 B a row)
        filled = self._filled()
        if name in self._late():
            return self._next_range(name[len("next.") :], 0, filled)
        return self._views[name][:filled]

    def rows_view(self) -> TensorDict | None:
        """Memory-mapped rows ``[0, filled)``, positions == row index (no copy); None when
        observations are stored once."""
        if self.schema is None or self._xpos:
            return None
        self._verify_all()
        filled = self._filled()
        if self._td_rows != filled or self._td_view is None or self._td is None:
            full = self._full()
            self._td_view = full if filled == self._rows else full[:filled]
            self._td_rows = filled
        return self._td_view


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(
        np.array_equal(
            np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
        )
    )
