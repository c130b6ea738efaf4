"""A row table read back: serials and positions, the payload hooks, gathers, the episode index.

Rows are numbered by a *serial* (how many rows were written before them). A store
holds the serials ``[start, end)``: an append-only store keeps ``start == 0`` and puts
serial ``s`` at position ``s``; a ring of ``capacity`` rows puts it at ``s % capacity``.
A backend supplies the byte-level hooks (``_init_payload`` ... ``_flush``); the writing
side (schema checks, the ring, the commit protocol) is :class:`rldata.stores.backend.
rowstore.RowStore`.
"""

from __future__ import annotations

import abc
import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata import ted
from rldata.errors import CorruptStoreError, RowIndexError
from rldata.specs import spec_from_json
from rldata.stores.backend.base import Store, as_positions
from rldata.stores.backend.blocks import row_blocks
from rldata.stores.format import chunklog
from rldata.stores.format import episodes as ep
from rldata.stores.format import manifest as mf
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.stores.format.checksums import ChunkSums, sha256_hex
from rldata.stores.format.episodes import EpisodeIndex
from rldata.stores.format.files import inside, manifest_path
from rldata.stores.format.lock import WriterLock

K = ted.TED_KEYS
_MAX = np.maximum.reduce  # the ufunc's reduce: ndarray.max's Python wrapper costs ~0.1 us more
TRAJ, REWARD = ted.key_name(K.traj_ids), ted.key_name(K.nxt(K.reward))


class RowTable(Store):
    """A store of fixed-schema rows as a reader sees it; subclasses implement the payload hooks."""

    supports_random_read = True

    def __init__(
        self,
        root: Path,
        manifest: dict[str, Any],
        *,
        writable: bool,
        lock: WriterLock | None,
        durable: bool = True,
    ) -> None:
        self.root = root
        self.durable = durable
        self.path = str(root)
        self.backend = manifest["backend"]
        self.capacity = manifest["capacity"]
        self.supports_overwrite = self.capacity is not None
        self.writable = writable
        self._lock = lock
        self._m = manifest
        self._committed_end = manifest["written"]
        self._end = manifest["written"]
        self._start = manifest["written"] - manifest["length"]
        self._max_traj = manifest.get("max_traj_id", -1)
        self._index = EpisodeIndex()
        self._sums: dict[str, ChunkSums] = {}
        self._stat: tuple[int, int] | None = None
        self._closed = False
        self._failed: str | None = None  # why a write failed; the handle then writes nothing
        self._want: dict[str, tuple[torch.Size, torch.dtype]] | None = None
        self._older_episodes: set[str] | None = None  # episode files kept by the last prune
        self._elog: list | None = None  # a writer's episode log: [fd, bytes, sha256, segments]
        self._slog: list | None = None  # a writer's statistics log: [fd, bytes, sha256]
        self._clog: chunklog.ChunkLogWriter | None = None  # a writer's chunk sidecar (1.6)
        # called with the store after each manifest write (a store at a URL publishes there)
        self.on_commit: Callable[[Any], None] | None = None

    @classmethod
    def attach(
        cls,
        root: Path,
        manifest: dict[str, Any],
        *,
        writable: bool,
        lock: WriterLock | None,
        durable: bool = True,
    ) -> Self:
        """Open the payload a manifest describes (the backend's ``open``)."""
        store = cls(root, manifest, writable=writable, lock=lock, durable=durable)
        store._stat = _stat(root)
        if manifest["schema"] is not None:
            store._sums = chunk_sums(manifest, root)
            store._attach_payload()
        store._load_index()
        return store

    # --- backend hooks ----------------------------------------------------------------
    @abc.abstractmethod
    def _init_payload(self) -> None:
        """Create the (empty) payload for ``self.schema`` and record it in ``self._m["payload"]``."""

    @abc.abstractmethod
    def _attach_payload(self) -> None:
        """Map the payload the manifest lists, for ``self._filled()`` rows."""

    @abc.abstractmethod
    def _reserve(self, positions: int) -> None:
        """Make room for row positions ``[0, positions)``."""

    @abc.abstractmethod
    def _write(self, position: int, tensors: dict[str, torch.Tensor]) -> None:
        """Write rows at positions ``[position, position + n)`` (no wrap)."""

    @abc.abstractmethod
    def _read(self, positions: torch.Tensor) -> TensorDict:
        """Gather rows (no checks)."""

    @abc.abstractmethod
    def _raw(self, name: str, start: int, stop: int) -> bytes | memoryview:
        """Raw bytes of one key's row positions ``[start, stop)``, for checksums."""

    @abc.abstractmethod
    def _flush(self, filled: int) -> None:
        """Make the payload durable (fsync) and describe ``filled`` rows in its metadata."""

    def _verify_rows(self, name: str | None, start: int, stop: int) -> None:
        """Check the stored bytes of rows ``[start, stop)`` of key ``name`` (every key when
        None) before they are served, for backends that verify on read (memmap's block
        digests, format 1.4); a no-op where the open checked everything."""

    # --- metadata -------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return copy.deepcopy(self._m)

    @property
    def schema(self) -> dict[str, dict] | None:
        return self._m["schema"]

    @property
    def specs(self) -> Any:
        if self._m.get("specs") is None:
            return None
        return spec_from_json(self._m["specs"])

    @property
    def env_id(self) -> str | None:
        return self._m["env"]["id"]

    @property
    def env_kwargs(self) -> dict:
        return dict(self._m["env"]["kwargs"])

    @property
    def provenance(self) -> dict:
        return dict(self._m["provenance"])

    def manifest_field(self, name: str, default: Any = None) -> Any:
        return copy.deepcopy(self._m.get(name, default))

    @property
    def chunk_rows(self) -> int | None:
        return self._m["checksums"]["chunk_rows"]

    @property
    def _fields(self) -> dict[str, dict]:
        """The schema once the first write fixed it (internal code runs only after that)."""
        return self._m["schema"]

    @property
    def _chunk(self) -> int:
        return self._m["checksums"]["chunk_rows"]

    # --- positions --------------------------------------------------------------------
    def _visible_end(self) -> int:
        return self._end if self.writable else self._committed_end

    def _filled(self) -> int:
        """Row positions holding data visible to this handle."""
        end = self._visible_end()
        return end if self.capacity is None else min(end, self.capacity)

    def _pos(self, serials: torch.Tensor) -> torch.Tensor:
        return serials if self.capacity is None else serials % self.capacity

    def __len__(self) -> int:
        return self._visible_end() - self._start

    def readable(self) -> torch.Tensor:
        return self._pos(torch.arange(self._start, self._visible_end(), dtype=torch.int64))

    def stats(self) -> dict[str, dict]:
        """Dataset statistics per numeric key: ``count`` and per-feature ``mean``, ``std``,
        ``min``, ``max`` and ``quantiles`` (``{"0.5": [...], ...}``), from the records of each
        commit (no pass over the rows); a ring, which keeps none, computes them from its
        readable rows."""
        if self.capacity is not None:
            records, sketches = self._row_stats()
            out = st.summary(records.values())
        else:
            out = st.summary(self._stats_records())
            sketches = self._m.get("quantiles")
        if sketches is not None:
            st.add_quantiles(out, st.check_sketches(sketches, self.path))
        return out

    def fetch_stats(self) -> None:
        """Bring the statistics files here (a local store holds them; a stream fetches)."""

    def _stats_records(self) -> list[st.Record]:
        """Records whose sum is the whole store's: one folded record for the appended log
        (memory flat in the store's trajectories), else one a trajectory."""
        listed = self._m.get("stats")
        if not isinstance(listed, dict) or self.capacity is not None:
            return list(self.trajectory_stats().values())
        self.fetch_stats()
        path = inside(self.root, listed["path"], "a statistics file")
        with untrusted.open_regular(path, "statistics log", error=CorruptStoreError) as f:
            return [st.log_total(f, listed, f"store {self.path}")]  # type: ignore[arg-type]

    def trajectory_stats(self) -> dict[int, st.Record]:
        """Per-trajectory records (``rldata.stores.format.stats``): mergeable, exact for any subset."""
        listed = self._m.get("stats")
        if listed is None or self.capacity is not None:
            return self._row_stats()[0]
        if isinstance(listed, dict):  # the appended log (format 1.5): its committed lines
            path = inside(self.root, listed["path"], "a statistics file")
            with untrusted.open_regular(path, "statistics log", error=CorruptStoreError) as f:
                return st.read_log(f, listed, f"store {self.path}")  # type: ignore[arg-type]
        files = []
        for ref in listed:
            data = self._read_stats_file(ref)
            if sha256_hex(data) != ref["sha256"]:
                raise CorruptStoreError(
                    f"store {self.path}: statistics file {ref['path']}: sha256 does not match"
                )
            files.append(
                untrusted.loads_json(data, ref["path"], "statistics file", error=CorruptStoreError)
            )
        return st.by_trajectory(files)

    def _read_stats_file(self, ref: dict) -> bytes:
        return untrusted.read_bytes(
            inside(self.root, ref["path"], "a statistics file"),
            "statistics file",
            error=CorruptStoreError,
        )

    def _row_stats(self) -> tuple[dict[int, st.Record], dict[str, list] | None]:
        """Per-trajectory records and quantile sketches computed from the readable rows, a
        block at a time (:func:`~rldata.stores.backend.blocks.row_blocks`): records and
        sketches merge exactly, so memory is one block and the trajectories, not the rows."""
        records: dict[int, st.Record] = {}
        sketches: dict[str, list] | None = None
        keys = st.numeric_keys(self._fields) if self.schema is not None else []
        for block in row_blocks(self):
            columns = {k: block.rows.get(sch.key_tuple(k)) for k in keys}
            for t, rec in st.of_rows(columns, block.rows.get(sch.key_tuple(TRAJ))).items():
                records[t] = st.merge(records[t], rec) if t in records else rec
            sketches = st.merge_sketches(sketches, st.sketch_of(columns))
        return records, sketches

    def _read_range(self, start: int, stop: int) -> TensorDict:
        """Rows at positions ``[start, stop)`` (no checks; backends override it to copy
        slices instead of gathering)."""
        return self._read(torch.arange(start, stop, dtype=torch.int64))

    def _read_key(self, name: str, positions: torch.Tensor) -> torch.Tensor:
        """One key's rows (backends override this to skip the other keys)."""
        return self._read(positions).get(sch.key_tuple(name))

    def _reward_sum(self, a: int, b: int) -> float:
        pos = self._pos(torch.arange(a, b, dtype=torch.int64))
        return float(self._read_key(REWARD, pos).double().sum())

    # --- reading ------------------------------------------------------------------------
    def get(self, index: int | slice | torch.Tensor) -> TensorDict:
        """Rows at positions; a writer also reads its own uncommitted rows.

        Raises:
            RowIndexError: a position is not readable (never written, retired, uncommitted).
        """
        if type(index) is torch.Tensor and index.dtype == torch.int64 and index.dim() == 1:
            pos = index  # a sampler's draw: what as_positions would return, without its ops
        elif isinstance(index, int):
            return self.get(torch.tensor([index]))[0]
        elif isinstance(index, slice):
            a, b, step = index.indices(self._filled())
            if step == 1 and self.capacity is None and self._start <= a < b:
                return self._read_range(a, b)  # readable by arithmetic: no per-row checks
            pos = torch.arange(a, b, step, dtype=torch.int64)
        else:
            pos = as_positions(index, f"store {self.path}")
        self._check_readable(pos)
        if self.schema is None:  # no rows were ever written: an empty read has no keys
            return TensorDict({}, batch_size=[pos.shape[0]])
        out = self._read(pos)
        if self.capacity is not None and not self.writable:
            self._check_not_retired(pos)
        return out

    def _offsets(self, pos: torch.Tensor) -> torch.Tensor:
        """Serial offset of each position from ``start`` (>= len means not readable)."""
        if self.capacity is None:
            return pos - self._start
        return (pos - self._start) % self.capacity

    def _check_readable(self, pos: torch.Tensor) -> None:
        if pos.numel() == 0:
            return
        if self.capacity is None and pos.is_cpu:
            # append-only: positions [start, end) are readable. Read as unsigned, a negative
            # position is above 2**63, so one reduction bounds them all (~1 us; two numpy
            # reductions took ~2.5 us, torch ops ~15 us on a 256-row sample)
            arr = pos.numpy()
            if self._start == 0 and int(_MAX(arr.view(np.uint64))) < self._visible_end():
                return
            if arr.min() >= self._start and int(arr.max()) < self._visible_end():
                return
        bad = (pos < 0) | (self._offsets(pos) >= len(self))
        if self.capacity is not None:
            bad |= pos >= self.capacity
        if bool(bad.any()):
            p = int(pos[bad][0])
            raise RowIndexError(
                f"store {self.path}: position {p} is not readable; expected one of the "
                f"{len(self)} committed rows (see Store.readable())"
            )

    def _check_not_retired(self, pos: torch.Tensor) -> None:
        """Seqlock: rows read from a ring are valid only if no retirement happened meanwhile."""
        old_start = self._start
        if not self.refresh() or self._start <= old_start or pos.numel() == 0:
            return
        serials = old_start + (pos - old_start) % self.capacity
        if bool((serials < self._start).any()):
            raise RowIndexError(
                f"store {self.path}: rows were overwritten by the writer while being read; "
                f"ask Store.readable() again"
            )

    def refresh(self, _attempts: int = 5, *, force: bool = False) -> bool:
        """Reader: pick up the latest commit if the manifest changed; return whether it did.

        ``force`` re-reads the manifest even when its file looks unchanged (the change token
        may have been taken just after a commit that the manifest in hand predates) and
        returns whether its generation moved.
        """
        if self.writable:
            return False
        stat = _stat(self.root)
        if stat == self._stat and not force:
            return False
        m = mf.read(self.root)
        if force and m["generation"] == self._m["generation"]:
            self._stat = stat
            return False
        self._stat, self._m = stat, m
        self._committed_end = self._end = m["written"]
        self._start = m["written"] - m["length"]
        self._max_traj = m.get("max_traj_id", -1)
        if m["schema"] is not None:
            self._sums = chunk_sums(m, self.root)
            self._attach_payload()
        self._load_index(_attempts)
        return True

    def _load_index(self, attempts: int = 5) -> None:
        ref = self._m.get("episodes")
        if ref is None:
            self._index = EpisodeIndex()
            return
        try:
            data = untrusted.read_bytes(
                inside(self.root, ref["path"], "the episode index"),
                "episode index",
                error=CorruptStoreError,
            )
        except FileNotFoundError:
            # a live writer committed twice since we read the manifest and pruned this
            # index file: read the newer manifest (readers only; a writer's file must exist)
            if self.writable or attempts == 0:
                raise CorruptStoreError(
                    f"store {self.path}: episode index {ref['path']} named by the manifest is missing"
                ) from None
            self._stat = None
            self.refresh(attempts - 1)
            return
        if "bytes" in ref:  # an appended log (format 1.4): its committed lines
            data = ep.committed_log(data, ref, f"store {self.path}")
        elif sha256_hex(data) != ref["sha256"]:
            raise CorruptStoreError(
                f"store {self.path}: episode index {ref['path']}: sha256 does not match the manifest"
            )
        try:
            if "bytes" in ref:
                index = ep.from_log(data, ref["path"])
            else:
                index = EpisodeIndex(
                    untrusted.loads_json(
                        data, ref["path"], "episode index", error=CorruptStoreError
                    )
                )
        except CorruptStoreError as exc:
            raise CorruptStoreError(f"store {self.path}: {exc}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptStoreError(
                f"store {self.path}: episode index {ref['path']} is malformed ({exc})"
            ) from None
        self._index = index.clipped(self._start, self._committed_end, self._reward_sum)

    def _episode_file(self, ref: dict) -> Path | None:
        path = inside(self.root, ref["path"], "the episode index")
        return path if path.is_file() else None

    def _table(self) -> tuple[TensorDict, list[list[int]], EpisodeIndex]:
        index = self._index.clipped(self._start, self._visible_end(), self._reward_sum)
        table, members = index.episodes(self.capacity)
        return table, members, index

    def episodes(self) -> TensorDict:
        return self._table()[0]

    def segments(self) -> TensorDict:
        """The raw segment table (one row per contiguous run of a trajectory)."""
        return self._index.clipped(self._start, self._visible_end(), self._reward_sum).segments(
            self.capacity
        )

    def episode(self, i: int) -> TensorDict:
        table, members, index = self._table()
        if not -len(members) <= i < len(members):
            raise RowIndexError(
                f"store {self.path}: episode {i} out of range; it holds {len(members)} episodes"
            )
        c = index.cols
        serials = torch.cat(
            [
                torch.arange(c["start"][j], c["start"][j] + c["length"][j], dtype=torch.int64)
                for j in members[i]
            ]
        )
        return self._read(self._pos(serials))

    def next_traj_id(self) -> int:
        return self._max_traj + 1


def _np(x: torch.Tensor) -> np.ndarray:
    """A numpy view of a tensor (a copy for other devices, grads, bfloat16)."""
    try:
        return x.numpy()
    except (RuntimeError, TypeError):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()


def _stat(root: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(manifest_path(root))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def chunk_sums(
    manifest: dict, root: Path | Callable[[dict], bytes] | None = None, where: str = ""
) -> dict[str, ChunkSums]:
    """Each key's per-chunk checksums (section 7 of FORMAT.md): the manifest's lists, or, for
    a store written since 1.6, the sidecar read on first use (none at open) from ``root``, or
    through ``root(entry)`` (its committed bytes) for a store read where it lives, named
    ``where`` in errors."""
    sums = manifest["checksums"]
    if isinstance(sums.get(chunklog.FIELD), dict):
        return chunklog.chunk_sums(sums, root, where or f"store {root}")
    return {
        name: ChunkSums(sums["chunk_rows"], entries) for name, entries in sums["chunks"].items()
    }


def chunk_lists(store: RowTable) -> dict[str, list[list]]:
    """Each key's committed ``[[rows, sha256_hex], ...]`` by chunk index, wherever the store
    keeps them (the manifest, or the 1.6 sidecar): what a whole-chunk check compares."""
    return {name: sums.entries for name, sums in store._sums.items()}
