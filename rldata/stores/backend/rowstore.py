"""Writing a row table, shared by every row backend: schema checks, the ring, the commit protocol.

Rows are numbered by a *serial* (how many rows were written before them). A store
holds the serials ``[start, end)``: an append-only store keeps ``start == 0`` and puts
serial ``s`` at position ``s``; a ring of ``capacity`` rows puts it at ``s % capacity``.
Before a ring overwrites rows, it commits a manifest whose ``start`` excludes them
(whole checksum chunks at a time), so no reader is ever handed a row being written.
A backend supplies the byte-level hooks (``_init_payload`` ... ``_flush``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from rldata import ted
from rldata.errors import StoreError, TedFormatError
from rldata.stores.backend._row_appends import AppendedFiles, pwrite_all
from rldata.stores.backend.blocks import block_rows
from rldata.stores.backend.blocks import serial_ranges as _pieces
from rldata.stores.backend.rows import REWARD, TRAJ, K, RowTable, _np
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import chunklog
from rldata.stores.format import episodes as ep
from rldata.stores.format import manifest as mf
from rldata.stores.format import schema as sch
from rldata.stores.format import stats as st
from rldata.stores.format.checksums import ChunkSums, sha256_hex
from rldata.stores.format.commit import atomic_write

FLAGS = [  # (done, terminated, truncated) at the root, then under "next"
    tuple(ted.key_name(k) for k in K.flags),
    tuple(ted.key_name(K.nxt(k)) for k in K.flags),
]
CHUNK_BYTES = 16 << 20
MAX_CHUNK_ROWS = 1 << 16


class RowStore(AppendedFiles, RowTable):
    """A store of fixed-schema rows that a writer appends to and commits; subclasses
    implement the payload hooks."""

    episode_log = False
    """A new append-only store appends each commit's segments to one episode log (format
    1.4) instead of rewriting the index whole; backends opt in."""

    stats_log = True
    """A new append-only store appends each commit's statistics to one log (format 1.5)
    instead of writing one file a commit."""

    _chunks_resumed = False  # the partly filled chunks' hashes resumed (first commit)

    chunk_log = False
    """A new append-only store appends the digests of its full checksum chunks to one
    sidecar (format 1.6) instead of listing them all in the manifest at every commit;
    backends opt in."""

    # --- writing ------------------------------------------------------------------------
    def append(self, td: TensorDictBase) -> torch.Tensor:
        """Write TED rows ``[N]`` (or ``[B, T]``, flattened); return their positions.

        Raises:
            TedFormatError: not TED rows, a flag or reward breaks the TED rules.
            SchemaMismatchError: a key is missing or extra, or has another shape or dtype.
            StoreError: the disk refused a write (full, read-only); the committed rows are
                intact and this handle writes nothing more.
        """
        self._check_writable()
        try:
            return self._append(td)
        except OSError as exc:
            raise self._fail(exc) from None

    def _fail(self, exc: OSError) -> StoreError:
        """Stop writing after an I/O error: what the last commit lists stays the store."""
        self._failed = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        return StoreError(
            f"store {self.path}: a write failed ({self._failed}); the rows of the last commit "
            f"are intact, later ones are lost (free space, then reopen with mode='a')"
        )

    def _append(self, td: TensorDictBase) -> torch.Tensor:
        if not isinstance(td, TensorDictBase):
            raise TedFormatError(
                f"append expects a TensorDict of TED rows, got {type(td).__name__}"
            )
        if td.batch_dims != 1:
            if td.batch_dims == 0:
                raise TedFormatError("append expects rows [N]; got batch_size=[] (use td[None])")
            td = td.reshape(-1)
        n = td.batch_size[0]
        if n == 0:
            return torch.empty(0, dtype=torch.int64)
        tensors = _leaves(td)
        fresh = self.schema is None
        if fresh:
            ted.validate(td, require_traj_ids=True)
            sch.of(td)  # key names are storable
        else:
            self._check_schema(tensors)
        ids, rows = self._check_rows(tensors, n)
        self._index.add(self._end, ids, *rows)  # last check (traj continuity), then mutation
        if fresh:
            self._m["schema"] = sch.of(td)
            self._m["checksums"]["chunk_rows"] = self._pick_chunk_rows()
            self._sums = {k: ChunkSums(self._chunk) for k in self._fields}
            self._init_payload()
        self._max_traj = max(self._max_traj, int(ids.max()))
        serial0, end = self._end, self._end + n
        cap = self.capacity
        if cap is None:
            self._reserve(end)
            self._write(serial0, tensors)
            out = torch.arange(serial0, end, dtype=torch.int64)
        else:
            skip = max(0, n - cap)
            self._make_room(serial0 + skip, end)
            self._reserve(min(end, cap))
            if skip:
                tensors = {k: t[skip:] for k, t in tensors.items()}
            self._write_serials(serial0 + skip, tensors)
            p0 = serial0 % cap
            out = torch.arange(p0, p0 + n, dtype=torch.int64)
            if p0 + n > cap:
                out %= cap
        self._end = end
        every = self._m.get("commit_every")
        if every and self._end - self._committed_end >= every:
            self.commit()
        return out

    def _check_schema(self, tensors: dict[str, torch.Tensor]) -> None:
        """``sch.check`` against cached torch shapes and dtypes (it runs on every append)."""
        want = self._want
        if want is None:
            want = self._want = {
                k: (torch.Size(e["shape"]), sch.dtype_of(e["dtype"]))
                for k, e in self._fields.items()
            }
        if tensors.keys() != want.keys():
            sch.check(tensors, self._fields)  # raises, naming the keys
        for name, t in tensors.items():
            shape, dtype = want[name]
            if t.dtype != dtype or t.shape[1:] != shape:
                sch.check(tensors, self._fields)  # raises, naming the key

    def _check_rows(self, t: dict[str, torch.Tensor], n: int) -> tuple[np.ndarray, list]:
        """TED flag and reward checks in numpy (far less per-call overhead than torch);
        any failure is re-checked by :meth:`_explain_rows` for the error message."""
        flags = [[_np(t[k]).reshape(n, -1) for k in keys] for keys in FLAGS]
        ok = all(np.array_equal(d, te | tr) for d, te, tr in flags)
        reward = _np(t[REWARD]).reshape(n, -1)
        if ok and not self._m.get("allow_nonfinite"):
            ok = bool(np.isfinite(reward).all())
        if not ok:
            self._explain_rows(t, n)
        nxt = [f.reshape(n) for f in flags[1]]
        ids = _np(t[TRAJ]).reshape(n)
        returns = reward[:, 0].astype(np.float64) if reward.shape[1] == 1 else None
        if returns is None:
            returns = reward.astype(np.float64).sum(-1)
        return ids, [*nxt, returns]

    def _explain_rows(self, t: dict[str, torch.Tensor], n: int) -> None:
        """Raise the TedFormatError naming the first bad flag or reward row."""
        for done, term, trunc in FLAGS:
            bad = t[done] != (t[term] | t[trunc])
            if bool(bad.any()):
                i = int(bad.reshape(n, -1).any(-1).nonzero()[0])
                raise TedFormatError(
                    f"key {done!r}: expected {term} | {trunc} = {bool(t[term][i] | t[trunc][i])} "
                    f"at row {i}, got {bool(t[done][i])}"
                )
        reward = t[REWARD].reshape(n, -1)
        if not self._m.get("allow_nonfinite") and not bool(torch.isfinite(reward).all()):
            i = int((~torch.isfinite(reward)).any(-1).nonzero()[0])
            raise TedFormatError(
                f"key {REWARD!r}: expected finite rewards, got {reward[i].tolist()} at row {i} "
                f"(create the store with allow_nonfinite=True to keep them)"
            )
        raise TedFormatError("rows break the TED flag or reward rules")  # numpy and torch disagree

    def _pick_chunk_rows(self) -> int:
        widest = max(sch.row_bytes(e) for e in self._fields.values())
        rows = max(1, min(MAX_CHUNK_ROWS, CHUNK_BYTES // max(widest, 1)))
        if self.capacity is not None:
            rows = max(1, min(rows, self.capacity // 8))
        return rows

    def _make_room(self, first: int, end: int) -> None:
        """Ring: before serials ``[first, end)`` overwrite old rows, commit that those rows are
        no longer readable (whole checksum chunks at a time) nor covered by a checksum."""
        if self.capacity is None or end <= self.capacity:
            return
        cap, rows = self.capacity, self._chunk
        need = end - cap  # serials below this are overwritten
        q = (need - 1) % cap  # position of the newest row to overwrite
        # retire through the end of that row's chunk, so no chunk mixes rows being rewritten
        # with readable old rows (its checksum could not cover both)
        target = need + (min(cap, (q // rows + 1) * rows) - 1 - q)
        publish = False
        if self._start < target:
            old, self._start = self._start, target
            publish = old < self._committed_end  # readers may hold these rows
        for a, b in _pieces(first, end, cap):
            for name, sums in self._sums.items():
                publish |= sums.cut(functools.partial(self._raw, name), a, b)
        if publish:  # tell readers first, then write
            self._write_manifest(self._committed_end)

    def _write_serials(self, serial0: int, tensors: dict[str, torch.Tensor]) -> None:
        n = next(iter(tensors.values())).shape[0]
        pieces = _pieces(serial0, serial0 + n, self.capacity)
        if len(pieces) == 1:  # no wrap: no per-key slicing
            self._write(pieces[0][0], tensors)
            return
        done = 0
        for a, b in pieces:
            k = b - a
            self._write(a, {name: t[done : done + k] for name, t in tensors.items()})
            done += k

    def commit(self) -> None:
        """Fsync the payload, then atomically replace the manifest listing every appended row.

        A no-op when nothing was appended since the manifest on disk was written.

        Raises:
            StoreError: the disk refused a write; the previous commit stays the store.
        """
        self._check_writable()
        try:
            self._commit()
        except OSError as exc:
            raise self._fail(exc) from None

    def _commit(self) -> None:
        if self._end == self._committed_end and self._m["generation"] > 0:
            return
        if self.schema is not None:
            if not self._chunks_resumed:
                self._resume_chunks()
            lo = max(self._committed_end, self._start)
            if self.capacity is not None:
                lo = max(lo, self._end - self.capacity)
            for a, b in sorted(_pieces(lo, self._end, self.capacity)):  # chunk order
                for name, sums in self._sums.items():
                    sums.extend(functools.partial(self._raw, name), a, b)
            self._extend_digests()
            self._flush(self._filled())
            self._record_stats()
        self._write_manifest(self._end)

    def _extend_digests(self) -> None:
        """Record the block digests of the rows this commit adds (format 1.4), before the
        payload is fsynced; backends without them keep only the chunk checksums."""

    def _record_stats(self) -> None:
        """Append-only stores: record the per-trajectory statistics of the rows this commit
        adds, before the manifest that names them: one line appended to ``stats.log``
        (format 1.5), or one ``stats-<generation>.json`` file for a store that has them."""
        listed = self._m.get("stats")
        if self.capacity is not None or listed is None or self._end <= self._committed_end:
            return
        records: dict[int, st.Record] = {}
        sketches: dict[str, list] = {}
        keys, step = st.numeric_keys(self._fields), block_rows(self)
        for lo in range(self._committed_end, self._end, step):  # a block at a time: records
            rows = self._read_range(lo, min(self._end, lo + step))  # and sketches merge exactly
            columns = {k: rows.get(sch.key_tuple(k)) for k in keys}
            for t, rec in st.of_rows(columns, rows.get(sch.key_tuple(TRAJ))).items():
                records[t] = st.merge(records[t], rec) if t in records else rec
            sketches = st.merge_sketches(sketches, st.sketch_of(columns))
        if isinstance(listed, dict) or (listed == [] and self.stats_log):
            self._m["stats"] = self._append_stats(listed or None, st.log_line(records))
        else:  # a store written before 1.5 keeps its layout
            data = json.dumps({str(t): r for t, r in records.items()}).encode()
            name = f"stats-{self._m['generation'] + 1:08d}.json"
            atomic_write(self.root / name, data, durable=self.durable, sync_dir=False)
            listed.append({"path": name, "sha256": sha256_hex(data)})
        before = self._m.get("quantiles") if self._committed_end else {}
        if before is not None:  # a store from before sketches: its older rows are not in one
            self._m["quantiles"] = st.merge_sketches(before, sketches)

    def _write_manifest(self, end: int) -> None:
        m = self._m
        m["generation"] += 1
        m["written"] = end
        m["length"] = max(0, end - self._start)
        m["cursor"] = end % self.capacity if self.capacity else end
        m["max_traj_id"] = self._max_traj
        self._record_chunk_sums(end)
        if self._logs_episodes():
            if end != self._committed_end or m["episodes"] is None:
                m["episodes"] = self._append_episodes(m["episodes"])
            previous = None
            if self._older_episodes is None:  # whole-index files a crashed writer left
                self._prune_episode_files(keep=set())
        elif end != self._committed_end or m["episodes"] is None:
            self._index = self._index.clipped(self._start, end, self._reward_sum)
            data = json.dumps(self._index.to_json()).encode()
            name = f"episodes-{m['generation']:08d}.json"
            # the manifest's write below fsyncs the directory once for both renames
            atomic_write(self.root / name, data, durable=self.durable, sync_dir=False)
            previous = m["episodes"]
            m["episodes"] = {"path": name, "sha256": sha256_hex(data), "segments": len(self._index)}
        else:
            previous = None
        self._record_append_states()
        mf.write(self.root, m, durable=self.durable)
        self._committed_end = end
        if previous is not None:
            self._prune_episode_files(keep={previous["path"], m["episodes"]["path"]})
        if self.on_commit is not None:
            try:
                self.on_commit(self)
            except StoreError as exc:  # not published: this handle writes nothing more
                self._failed = str(exc)
                raise

    def _record_chunk_sums(self, end: int) -> None:
        """The chunk checksums of the manifest written next: full chunks appended to the
        sidecar and fsynced first (format 1.6, append-only stores), else listed in it (rings,
        stores written before 1.6, which keep their layout)."""
        sums = self._m["checksums"]
        if (
            self._clog is None
            and self.schema is not None
            and self.chunk_log
            and chunklog.uses_log(sums, self.capacity, self._committed_end)
        ):
            entry = sums.get(chunklog.FIELD)
            state = appended.file_state(self._m, chunklog.LOG)
            self._clog = chunklog.ChunkLogWriter(
                self.root, list(self._sums), self._chunk, entry, state
            )
            if entry is None:  # the first rows of a store: its format is this version's
                self._m["format_version"] = mf.FORMAT_VERSION
        if self._clog is None:
            sums["chunks"] = {k: s.entries for k, s in self._sums.items()}
            return
        sums[chunklog.FIELD] = self._clog.record(self._sums, end, durable=self.durable)
        sums["chunks"] = {}  # older readers refuse it: no list per key

    def _logs_episodes(self) -> bool:
        """Whether commits append to one episode log (format 1.4, append-only stores) rather
        than rewrite the whole index: what the store already does, or the writer's choice."""
        ref = self._m["episodes"]
        if ref is not None:
            return ref.get("path") == ep.LOG
        return self.capacity is None and self.episode_log

    def _append_episodes(self, ref: dict | None) -> dict:
        """Append this commit's line to the episode log (the rows already committed are never
        rewritten: a commit costs its own segments, whatever the store's size); the manifest
        names the committed length and its SHA-256, so a line a crash left half-written
        past it is ignored, then overwritten."""
        log = self._elog
        if log is None:
            fd = os.open(self.root / ep.LOG, os.O_RDWR | os.O_CREAT, 0o644)
            try:  # resumed: the committed bytes were checked when the index was loaded
                h = self._resume_hash(fd, ref, f"episode index {ep.LOG}")
            except BaseException:
                os.close(fd)
                raise
            log = self._elog = [fd, h.size, h, ref["segments"] if ref else 0]
        fd, size, h, segments = log
        line = ep.log_line(self._index, max(0, segments - 1))
        pwrite_all(fd, line, size)
        os.ftruncate(fd, size + len(line))
        if self.durable:
            os.fsync(fd)  # the manifest's write fsyncs the directory
        h.update(line)
        log[1], log[3] = size + len(line), len(self._index)
        return {
            "path": ep.LOG,
            "bytes": log[1],
            "sha256": h.hexdigest(),
            "segments": len(self._index),
        }

    def _prune_episode_files(self, keep: set[str]) -> None:
        # the first commit of a handle lists the directory (a crashed writer may have left
        # files); later ones know the one file their previous commit stopped needing
        if self._older_episodes is None:
            stale = [p for p in self.root.glob("episodes-*.json") if p.name not in keep]
        else:
            stale = [self.root / n for n in self._older_episodes - keep]
        for p in stale:
            with contextlib.suppress(OSError):
                p.unlink()
        self._older_episodes = keep

    # --- lifetime ---------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._failed is not None:
            raise StoreError(
                f"store {self.path}: an earlier write failed ({self._failed}); reopen it with "
                f"mode='a' to continue from the last commit"
            )
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        if not self.writable:
            raise StoreError(f"store {self.path} is open read-only; open it with mode='a' to write")

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self.writable and self._failed is None:
                self.commit()
        finally:
            self._closed = True
            for log in ("_elog", "_slog"):
                opened = getattr(self, log)
                if opened is not None:
                    os.close(opened[0])
                    setattr(self, log, None)
            if self._clog is not None:
                self._clog.close()
                self._clog = None
            if self._lock is not None:
                self._lock.release()
            self.writable = False

    def __del__(self) -> None:  # a dropped writer frees its lock but commits nothing
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()


def _leaves(td: TensorDictBase) -> dict[str, torch.Tensor]:
    """``sch.leaves`` without tensordict's generic key iteration, for plain TensorDicts."""
    if type(td) is not TensorDict:
        return sch.leaves(td)
    out: dict[str, torch.Tensor] = {}
    stack: list[tuple[str, TensorDict]] = [("", td)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node._tensordict.items():
            if "." in key or "/" in key or not key:
                return sch.leaves(td)  # raises, naming the key
            if isinstance(value, torch.Tensor):
                out[prefix + key] = value
            elif type(value) is TensorDict:
                stack.append((f"{prefix}{key}.", value))
            else:  # non-tensor data, lazy stacks...: the generic walk decides
                return sch.leaves(td)
    return out
