"""Streaming reads of a memmap store at a URL: a batch downloads only the units it needs.

``rldata.load(URL)`` of a pushed ``memmap`` store (docs/FORMAT.md section 14: an object
index, ``"complete": true``) opens a :class:`StreamStore` after reading the manifest and
the episode index (each checked against the SHA-256 the object index and the manifest
record), never the payload; the statistics are fetched when first asked for. Each key's payload file is cut into *units*, the
byte ranges whose SHA-256 the manifest records (format 1.4's block digests, section 7a:
at most 1,024 rows and 64 KiB; older stores: the checksum chunks of section 7, up to 65,536
rows). A batch fetches the units its rows fall in, in parallel,
through the shared :class:`~rldata.stores.location.chunk_cache.ChunkCache` (named by the
expected digest, verified before it is served or kept), and keeps them in a per-process
table of slots (least recently used slots are reused), so steady sampling gathers one
``index_select`` per key as a local store does.

The explicit next-observation records of a key stored once (section 4) are fetched whole
(a few per trajectory), checked against ``payload.next_once_sha256`` (else the object
index), and ``next.k`` is rebuilt from them and ``k``'s rows exactly as on disk.

Other backends, rings, and stores without an object index keep the whole verified pull
(:func:`rldata.sharing.cache.open_url`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from rldata.errors import CorruptStoreError
from rldata.stores.backend._memmap import MemmapStore
from rldata.stores.backend.rows import chunk_sums
from rldata.stores.format import manifest as mf
from rldata.stores.format import schema as sch
from rldata.stores.format.checksums import sha256_hex
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.places import Location, redact
from rldata.stores.location.remote_names import contained_name
from rldata.stores.location.remote_units import (
    MIN_SLOTS,
    BlockTable,
    Remote,
    Run,
    Units,
    block_entry,
    sized,
    streamable,
    units_of,
)

__all__ = ["Remote", "StreamColumn", "StreamStore", "Units", "open_stream", "streamable"]


class StreamColumn:
    """One row-indexed key of a streaming store, gathered like a tensor (``shape``,
    ``index_select``) from a table of unit slots filled on demand."""

    def __init__(self, units: Units, entry: dict, remote: Remote, budget: int, rows: int) -> None:
        self.units = units
        self.remote = remote
        self.dtype = sch.dtype_of(entry["dtype"])
        self.row_shape = tuple(int(s) for s in entry["shape"])
        self.shape = torch.Size((rows, *self.row_shape))
        n_units = units.count
        unit_bytes = max(1, units.unit_rows * units.row_bytes)
        self.n_slots = max(min(n_units, MIN_SLOTS), min(n_units, budget // unit_bytes))
        # the whole key fits the budget: slot u holds unit u, so the slots are the column
        # itself (filled as batches need it) and a gather indexes it by position directly
        self.identity = self.n_slots == n_units
        self._slots: torch.Tensor | None = None  # allocated on the first miss
        self._bytes: np.ndarray | None = None
        self._slot_of = np.full(n_units, -1, np.int64)
        self._unit_in = np.full(self.n_slots, -1, np.int64)
        self._stamp = np.zeros(self.n_slots, np.int64)
        self._tick = 0
        self._held = 0  # units in slots
        self.complete = False  # every unit in its slot (identity): gathers need no checks

    def missing(self, positions: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The distinct units holding ``positions``, and those of them to fetch before a
        gather (none when they are all in slots, or too many to fit: gathered unit by unit)."""
        if self.complete:
            return positions[:0], []
        u = positions // self.units.unit_rows
        if self._slot_of[u].min() >= 0:
            return u[:0], []
        needed = np.unique(u)
        if len(needed) > self.n_slots:
            return needed, []
        return needed, [int(c) for c in needed[self._slot_of[needed] < 0]]

    def _alloc(self) -> None:
        if self._slots is None:  # pages are committed as units land, not here
            self._slots = torch.empty(
                (self.n_slots * self.units.unit_rows, *self.row_shape), dtype=self.dtype
            )
            self._bytes = self._slots.view(-1).view(torch.uint8).numpy().reshape(self.n_slots, -1)

    def install_runs(self, runs: list[Run]) -> None:
        """Copy each verified run of units into its slots (identity only: slot u is unit u,
        so a run is one contiguous copy, whatever number of units it carries)."""
        assert self.identity
        self._alloc()
        assert self._bytes is not None
        flat = self._bytes.reshape(-1)
        ub = self.units.unit_rows * self.units.row_bytes
        for run in runs:
            data = np.frombuffer(run.data, np.uint8)
            if run.good is None:
                flat[run.first * ub : run.first * ub + data.size] = data
                done = np.arange(run.first, run.stop)
            else:
                done = np.flatnonzero(run.good) + run.first
                for c in done.tolist():
                    a = (c - run.first) * ub
                    flat[c * ub : c * ub + min(ub, data.size - a)] = data[a : a + ub]
            self._slot_of[done] = done
            self._unit_in[done] = done
            self._stamp[done] = self._tick
        self._held = int(np.count_nonzero(self._slot_of >= 0))
        self.complete = self._held == self.units.count

    def install(self, needed: np.ndarray, got: dict[int, bytes]) -> bool:
        """Put every unit of ``needed`` in a slot (``got`` holds fetched bytes); False when
        they do not all fit, and nothing was evicted."""
        if len(needed) > self.n_slots:
            return False
        self._tick += 1
        have = self._slot_of[needed]
        self._stamp[have[have >= 0]] = self._tick
        lacking = needed[have < 0]
        if not lacking.size:
            return True
        self._alloc()
        if self.identity:
            free = lacking
        else:
            free = np.flatnonzero(self._unit_in < 0)
            if free.size < lacking.size:  # reuse the least recently used slots not in this batch
                old = np.flatnonzero((self._unit_in >= 0) & (self._stamp < self._tick))
                k = lacking.size - free.size
                victims = old[np.argpartition(self._stamp[old], k - 1)[:k]] if k < old.size else old
                free = np.concatenate([free, victims])
        assert self._bytes is not None
        for u, s in zip(lacking.tolist(), free[: lacking.size].tolist()):
            data = got.get(u)
            if data is None:
                data = self.remote.unit(self.units, u)
            gone = self._unit_in[s]
            if gone >= 0:
                self._slot_of[gone] = -1
                self._held -= 1
            self._bytes[s, : len(data)] = np.frombuffer(data, np.uint8)
            self._slot_of[u], self._unit_in[s], self._stamp[s] = s, u, self._tick
            self._held += 1
        self.complete = self.identity and self._held == self.units.count
        return True

    def index_select(self, dim: int, positions: torch.Tensor) -> torch.Tensor:
        """Rows at ``positions`` (a fresh tensor, as ``Tensor.index_select``)."""
        assert dim == 0
        positions = positions if positions.dtype == torch.int64 else positions.long()
        if self.complete:  # steady state: the column is whole in memory
            assert self._slots is not None
            return self._slots.index_select(0, positions)
        p = positions.numpy()
        if p.size == 0:
            return torch.empty((0, *self.row_shape), dtype=self.dtype)
        ur = self.units.unit_rows
        u = p // ur
        s = self._slot_of[u]
        if s.min() < 0:
            if not self.install(np.unique(u), {}):
                return self._gather_each(p)
            s = self._slot_of[u]
        assert self._slots is not None
        if self.identity:  # slot u is unit u: rows sit at their own positions
            return self._slots.index_select(0, positions)
        self._tick += 1
        self._stamp[s] = self._tick
        return self._slots.index_select(0, torch.from_numpy(s * ur + (p - u * ur)))

    def _gather_each(self, p: np.ndarray) -> torch.Tensor:
        """A batch over more units than slots: each unit fetched (cache) and gathered once."""
        out = torch.empty((p.size, *self.row_shape), dtype=self.dtype)
        ur = self.units.unit_rows
        u = p // ur
        for c in np.unique(u).tolist():
            rows = self._unit_rows(c)
            at = np.flatnonzero(u == c)
            out[torch.from_numpy(at)] = rows.index_select(0, torch.from_numpy(p[at] - c * ur))
        return out

    def _unit_rows(self, c: int) -> torch.Tensor:
        data = bytearray(self.remote.unit(self.units, c))
        flat = (
            torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
        )
        return flat.view(self.dtype).view(-1, *self.row_shape)

    def read_range(self, start: int, stop: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``[start, stop)`` copied unit by unit (a range never fills the slots)."""
        stop = min(stop, self.shape[0])
        n = max(0, stop - start)
        if out is None:
            out = torch.empty((n, *self.row_shape), dtype=self.dtype)
        ur, pos = self.units.unit_rows, start
        while pos < stop:
            c = pos // ur
            end = min(stop, c * ur + self.units.rows(c))
            slot = int(self._slot_of[c])
            if slot >= 0 and self._slots is not None:
                src = self._slots[slot * ur + pos - c * ur : slot * ur + end - c * ur]
            else:
                src = self._unit_rows(c)[pos - c * ur : end - c * ur]
            out[pos - start : end - start] = src
            pos = end
        return out


class StreamStore(MemmapStore):
    """A read-only memmap store whose payload lives at a URL (see the module docstring)."""

    _remote: Remote
    _budget: int
    _early: dict[str, Future]

    @classmethod
    def over(
        cls,
        shell: Path,
        manifest: dict[str, Any],
        remote: Remote,
        budget: int,
        early: dict[str, Future] | None = None,
    ) -> StreamStore:
        """Open the store whose small files sit in ``shell`` and payload at ``remote``
        (``early``: the size checks and block digests already requested, by
        :func:`open_stream`, so their round trips overlap)."""
        store = cls(shell, manifest, writable=False, lock=None)
        store.path = remote.url
        store._remote, store._budget = remote, budget
        store._early = early or {}
        store._sums = chunk_sums(manifest, functools.partial(_sidecar, remote), where=remote.url)
        store._attach_payload()
        store._load_index()
        return store

    def fetch_stats(self) -> None:
        """Bring the statistics files into the shell (verified), unless they are there:
        sampling never needs them, so opening the store does not download them."""
        _land(self.root, self._remote, _stats_files(self._m))

    def trajectory_stats(self) -> dict[int, Any]:
        """The per-trajectory records (their files fetched on the first call)."""
        self.fetch_stats()
        return super().trajectory_stats()

    def refresh(self, _attempts: int = 5, *, force: bool = False) -> bool:
        """A streaming store serves the commit it opened (open the URL again for a newer one)."""
        return False

    def _check_payload(self) -> None:
        files = self._m["payload"].get("files")
        if not isinstance(files, dict) or set(files) != set(self._fields):
            raise CorruptStoreError(
                f"{self.path}: manifest field 'payload.files': expected one file per schema key"
            )
        if len(set(files.values())) != len(files):
            raise CorruptStoreError(
                f"{self.path}: manifest field 'payload.files' names a file twice"
            )

    def _attach_payload(self) -> None:
        self._paths = {}
        self._check_payload()
        files = self._m["payload"]["files"]
        sizes = self._early.get("sizes")
        if sizes is not None:
            sizes.result()
        else:
            self._remote.check_sizes(sized(self._m) or [])
        self._load_explicit()
        filled = self._filled()
        late = self._late()
        row_keys = [k for k in self._fields if k not in late]
        total = sum(sch.row_bytes(self._fields[k]) for k in row_keys) or 1
        table = self._block_table()
        views: dict[str, Any] = {}
        for name in row_keys:
            rel = str(files[name])
            units = units_of(self._m, name, rel, table)
            need = filled * units.row_bytes
            if self._remote.size(rel) != need:
                raise CorruptStoreError(
                    f"{self.path}/{rel}: object index declares {self._remote.size(rel)} bytes, "
                    f"expected {need} for {filled} rows of key {name!r}"
                )
            share = self._budget * units.row_bytes // total
            views[name] = StreamColumn(units, self._fields[name], self._remote, share, filled)
        self._views, self._rows, self._td, self._td_rows = views, filled, None, -1  # type: ignore[assignment]
        self._inodes = {}

    def _block_table(self) -> Any:
        """The store's block digests (format 1.4), fetched by byte range and checked against
        the manifest; None for a store that has only checksum chunks."""
        entry = block_entry(self._m)
        if entry is None:
            return None
        early = self._early.get("blocks")
        data = early.result() if early is not None else self._remote.block_digests(entry)
        return BlockTable.from_bytes(entry, data, f"{self.path}: ")

    def _records(self, k: str, count: int) -> np.ndarray | None:
        if count == 0:
            return None
        rel = str(self._m["payload"]["files"][f"next.{k}"])
        dtype = self._record(k)
        size = self._remote.size(rel)
        if size != count * dtype.itemsize:
            raise CorruptStoreError(
                f"{self.path}/{rel}: object index declares {size} bytes, expected "
                f"{count * dtype.itemsize} for {count} explicit next rows of key 'next.{k}'"
            )
        want = (self._m["payload"].get("next_once_sha256") or {}).get(k)
        sha = want if isinstance(want, str) else self._remote.objects[rel][1]
        data = self._remote.whole(rel, sha, where=f"{self.path}: key 'next.{k}' records")
        return np.frombuffer(data, dtype=dtype, count=count)

    def _prefetch(self, positions: torch.Tensor) -> None:
        """Fetch every unit a gather of ``positions`` misses, all keys at once."""
        p = positions.numpy()
        if p.size == 0:
            return
        late = {n[len("next.") :] for n in self._late()}
        wanted: list[tuple[StreamColumn, np.ndarray]] = []
        todo: list[tuple[StreamColumn, int]] = []
        for name, view in self._views.items():
            col: StreamColumn = view  # type: ignore[assignment]
            q = p if name not in late else np.concatenate([p, np.minimum(p + 1, self._rows - 1)])
            needed, fetch = col.missing(q)  # type: ignore[attr-defined]
            if fetch:
                wanted.append((col, needed))
                todo.extend((col, u) for u in fetch)
        if not todo:
            return
        runs = self._remote.fetch_runs([(col.units, u) for col, u in todo])
        by_rel: dict[str, list[Run]] = {}
        for run in runs:
            by_rel.setdefault(run.units.rel, []).append(run)
        for col, needed in wanted:
            mine = by_rel.get(col.units.rel, [])
            if col.identity:  # the key fits: units a range carried on the way take slots too
                col.install_runs(mine)
                col.install(needed, {})
                continue
            want = set(needed.tolist())
            col.install(needed, {c: r.piece(c) for r in mine for c in r.verified() if c in want})

    def _read(self, positions: torch.Tensor) -> TensorDict:
        self._prefetch(positions)
        return super()._read(positions)

    def _slice(
        self, name: str, start: int, stop: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._views[name].read_range(start, stop, out)  # type: ignore[attr-defined]

    def _column(self, name: str) -> torch.Tensor | None:
        if self.schema is None or name not in self._fields:
            return None
        if name in self._late():
            return self._next_range(name[len("next.") :], 0, self._filled())
        return self._slice(name, 0, self._filled())

    def columns(self) -> dict[str, torch.Tensor] | None:
        return None  # no zero-copy view: batches gather through the unit slots

    def rows_view(self) -> TensorDict | None:
        return None

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._views = {}


def open_stream(
    loc: Location,
    manifest_bytes: bytes,
    objects: dict[str, tuple[int, str]],
    shell_root: Path,
    cache: ChunkCache,
    *,
    memory_bytes: int | None = None,
) -> StreamStore:
    """A :class:`StreamStore` over the pushed memmap store at ``loc``.

    ``objects`` is the store's object index (``rel -> (size, sha256)``, names checked),
    whose entry for the manifest ``manifest_bytes`` matches. The manifest and the episode
    index are written into ``shell_root/stream-<hex>`` (a name computed here over the URL
    and the manifest's SHA-256), each verified first; the statistics files join them when
    :meth:`StreamStore.trajectory_stats` first needs them.

    Raises:
        CorruptStoreError: a name, size or digest the remote serves is not the expected one.
        FormatVersionError: the store was written by a newer major format version.
    """
    url = redact(loc.url)
    remote = Remote(loc, objects, cache)
    m = mf.parse(manifest_bytes, f"{url}/rldata.json")
    digest = sha256_hex(manifest_bytes)
    shell = shell_root / ("stream-" + hashlib.sha256(f"{url}\n{digest}".encode()).hexdigest()[:40])
    shell.mkdir(parents=True, exist_ok=True)
    small: list[tuple[str, str, int | None]] = [(mf.manifest_path(shell).name, digest, None)]
    ref = m.get("episodes")
    if ref is not None:  # an appended index (1.4) is read up to its committed bytes
        n = ref.get("bytes")
        small.append((str(ref["path"]), str(ref["sha256"]), n if type(n) is int else None))
    # the statistics (32 MB at 10M rows) are fetched when first asked for, not at open
    _land(shell, remote, small[:1], manifest_bytes)
    budget = memory_bytes if memory_bytes is not None else cache.max_bytes
    with ThreadPoolExecutor(3) as pool:  # the open's round trips overlap; errors in order
        index = pool.submit(_land, shell, remote, small[1:])
        early: dict[str, Future] = {}
        rels = sized(m) if streamable(m) else None
        if rels is not None:
            early["sizes"] = pool.submit(remote.check_sizes, rels)
        entry = block_entry(m)
        if entry is not None and rels is not None:
            early["blocks"] = pool.submit(remote.block_digests, entry)
        index.result()
        return StreamStore.over(shell, m, remote, budget, early)


def _stats_files(m: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """The statistics files of manifest ``m``: ``(rel, sha256, committed bytes or None)``."""
    stats = m.get("stats")
    if isinstance(stats, dict):  # an appended log (1.5) is read up to its committed bytes
        return [(str(stats["path"]), str(stats["sha256"]), int(stats["bytes"]))]
    return [(str(st["path"]), str(st["sha256"]), None) for st in stats or []]


def _land(
    shell: Path, remote: Remote, files: list[tuple[str, str, int | None]], first: bytes = b""
) -> None:
    """Each ``(rel, sha256, size)`` of ``files`` in ``shell``, fetched and verified unless
    it is there intact (``first``: the bytes of the first, already in hand)."""
    for i, (rel, sha, n) in enumerate(files):
        target = contained_name(shell, rel, remote.url)
        if _sha_of_file(target) == sha:
            continue
        if first and i == 0:
            data = first
        else:
            data = remote.whole(rel, sha, where=f"{remote.url}/{rel}", size=n)
        _atomic(target, data)


def _sidecar(remote: Remote, entry: dict) -> bytes:
    """The committed bytes of the chunk checksums' sidecar (format 1.6), fetched only when
    whole chunks are checked (``rldata verify``), verified against the manifest."""
    rel = str(entry["path"])
    return remote.whole(
        rel, str(entry["sha256"]), where=f"{remote.url}/{rel}", size=int(entry["bytes"])
    )


def _sha_of_file(path: Path) -> str | None:
    try:
        return sha256_hex(path.read_bytes())
    except OSError:
        return None


def _atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
