"""The memmap backend: one raw row-major file per key, memory-mapped for zero-copy gathers.

Layout under the store directory (see ``docs/FORMAT.md``)::

    data/observation.memmap        rows of key "observation", position p at byte p * row_bytes
    data/next/reward.memmap        nested keys are nested directories
    data/meta.json, data/*/meta.json   tensordict's memmap metadata for the committed rows,
                                   so ``TensorDict.load_memmap(store / "data")`` opens them

Files are preallocated sparsely (``ftruncate``) and only written where rows land, so an
empty ring of a million rows costs no disk. Committed rows of an append-only store are
never rewritten; files only grow.

An append-only store keeps each observation once (format 1.2): for an observation key
``k``, ``next.k`` of row ``t`` is row ``t + 1``'s ``k`` bit for bit except where the chain
breaks (a trajectory's last row, a reset, the last row of a commit), and only those rows
are stored, as ``(position, row)`` records in ``data/next/k.once.memmap``. Readers gather
``k`` at ``t + 1`` and patch the few explicit rows: 100k pixel rows take 0.5x the bytes of
both copies at about the same sample rate (``benchmarks/bench_pixels_store.py``). A ring
keeps both copies (its oldest rows are overwritten, so row ``t + 1`` may be gone).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from rldata.stores.backend import _columns as col
from rldata.stores.backend._memmap_read import (
    _PWRITE,
    DATA_DIR,
    MemmapFiles,
    _record_bytes,
    _same_bits,
)
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import schema as sch
from rldata.stores.format.append_blocks import AppendBlockWriter
from rldata.stores.format.append_sha256 import RunningSha256
from rldata.stores.format.blocksums import block_rows_for
from rldata.stores.format.checksums import sha256_hex
from rldata.stores.format.commit import atomic_write, fsync_all

MIN_ROWS = 1024
GROW_BYTES = 16 << 20  # smallest growth of an append-only payload, all keys together
ONCE_SUFFIX = ".once.memmap"  # explicit next-observation records of a stored-once key


class MemmapStore(MemmapFiles):
    """A store whose payload is memory-mapped raw files (fastest random reads)."""

    supports_random_read = True
    next_stored_once = True
    """Append-only stores keep each observation once (format 1.2); False keeps both copies,
    as format 1.1 did (rings always do)."""
    block_digests = True
    """Append-only stores keep a digest per block of rows (format 1.4), so readers check only
    the rows they read; False writes a store as 1.3 did (checked whole at open, the episode
    index rewritten whole at each commit)."""

    resumes_from_tails = True
    """An append open of a store with block digests checks only what the writer extends
    (:mod:`rldata.stores.backend.append_open`); reads check the older blocks."""

    @property
    def episode_log(self) -> bool:  # type: ignore[override]
        return self.block_digests

    @property
    def chunk_log(self) -> bool:  # type: ignore[override]
        return self.block_digests

    def _init_payload(self) -> None:
        # append-only: each observation stored once (a ring keeps both copies)
        once = col.obs_keys(self._fields) if self.capacity is None and self.next_stored_once else []
        files = {}
        for name in self._fields:
            rel = Path(DATA_DIR, *sch.key_tuple(name)).with_suffix(".memmap")
            if name.startswith("next.") and name[len("next.") :] in once:
                rel = rel.with_suffix(ONCE_SUFFIX)
            files[name] = rel.as_posix()
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        self._m["payload"] = {
            "dir": DATA_DIR,
            "files": files,
            "byte_order": "little",
            "next_stored_once": once,  # [] for a ring: it keeps both copies
            "next_once_rows": {k: 0 for k in once},
        }
        for name in self._fields:
            self._fds[name] = os.open(self._file(name), os.O_RDWR | os.O_CREAT, 0o644)
        # new directory entries: fsynced with the payload at the first commit, before the
        # manifest names them
        self._new_dirs = {self._file(n).parent for n in self._fields} | {self.root}
        self._rows = 0
        self._fresh = 0
        self._row_bytes = {k: sch.row_bytes(e) for k, e in self._fields.items()}
        self._xpos = {k: np.zeros(0, np.int64) for k in once}
        self._xmap = {k: None for k in once}
        self._xsum = {k: hashlib.sha256() for k in once}
        self._pend = {}
        if self.capacity is None and self.block_digests:
            late = {f"next.{k}" for k in once}
            keys = [n for n in self._fields if n not in late]
            rows = block_rows_for(max(self._row_bytes.values()))
            self._bw = AppendBlockWriter(self.root, keys, rows, None)

    def _attach_payload(self) -> None:
        entry = self._m["checksums"].get("blocks") if self.schema is not None else None
        if self.writable and entry is not None and self._bw is None:
            # resumed from the recorded hash state, not by hashing every committed digest
            state = appended.file_state(self._m, entry["path"])
            self._bw = AppendBlockWriter(
                self.root, entry["keys"], entry["block_rows"], entry, state=state
            )
        super()._attach_payload()

    def record_faults(self) -> list[str]:
        """The explicit next rows against ``payload.next_once_sha256``: a writer's running
        hash of them starts from these bytes (a store without the field: its rows' chunk
        checksums were their check, so it is checked whole)."""
        want = self._m["payload"].get("next_once_sha256")
        if not self._xpos:
            return []
        if not isinstance(want, dict) or not set(self._xpos) <= set(want):
            return [f"{self.root}: manifest field 'payload.next_once_sha256' is missing a key"]
        return [
            f"{self.root}: explicit next rows of key 'next.{k}' in "
            f"{self._m['payload']['files'][f'next.{k}']}: sha256 does not match the manifest"
            for k in self._xpos
            if want[k] != sha256_hex(_record_bytes(self._explicit(k)))
        ]

    def _appended_hashes(self) -> dict[str, RunningSha256]:
        out = super()._appended_hashes()
        if isinstance(self._bw, AppendBlockWriter):
            out[self._bw.rel] = self._bw.hash
        return out

    # --- hooks --------------------------------------------------------------------------
    def _reserve(self, positions: int) -> None:
        if positions <= self._rows:
            return
        if self.capacity is not None:
            rows = self.capacity
        else:
            # grow in big sparse steps: each remap costs a syscall or two per key
            step = GROW_BYTES // max(1, sum(self._row_bytes.values()))
            rows = max(positions, 2 * self._rows, MIN_ROWS, step)
        self._map(rows, grow=True)

    def _write(self, position: int, tensors: dict[str, torch.Tensor]) -> None:
        self._dirty = True  # every append writes every key's file
        n = next(iter(tensors.values())).shape[0]
        if self._xpos:
            tensors = self._split_next(position, n, tensors)
        if _PWRITE and position + n > self._fresh:
            # rows never written: pwrite fills fresh page-cache pages about twice as fast as
            # first-touch faults on the mapping (which also zero each page first); the
            # mapping shares the page cache, so it sees the rows at once
            for name, t in tensors.items():
                _pwrite(self._fds[name], t, position * self._row_bytes[name])
            self._fresh = max(self._fresh, position + n)
        else:
            for name, t in tensors.items():
                self._views[name][position : position + n] = t

    def _split_next(
        self, position: int, n: int, tensors: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Store-once keys: record the rows whose ``next.k`` is not row ``t + 1``'s ``k``
        (the previous append's last row is decided now); return the row-indexed tensors."""
        for k in self._xpos:
            dtype = self._fields[k]["dtype"]
            cur = col.to_numpy(tensors[k], dtype)
            nxt = col.to_numpy(tensors[f"next.{k}"], dtype)
            keep = np.flatnonzero(~col.implied(cur, nxt)[:-1])
            pos, rows = [position + keep], [nxt[keep]]
            pend = self._pend.pop(k, None)
            if pend is not None and not _same_bits(pend[1], cur[:1]):
                pos.insert(0, np.array([pend[0]]))
                rows.insert(0, pend[1])
            self._pend[k] = (position + n - 1, nxt[n - 1 :].copy())
            self._add_explicit(k, np.concatenate(pos), np.concatenate(rows))
        late = self._late()
        return {name: t for name, t in tensors.items() if name not in late}

    def _add_explicit(self, k: str, pos: np.ndarray, rows: np.ndarray) -> None:
        if not len(pos):
            return
        recs = np.empty(len(pos), dtype=self._record(k))
        recs["pos"], recs["row"] = pos, rows
        start = len(self._xpos[k])
        _pwrite_bytes(self._fds[f"next.{k}"], recs, start * recs.dtype.itemsize)
        self._xsum[k].update(_record_bytes(recs))  # type: ignore[attr-defined]
        self._xpos[k] = np.concatenate([self._xpos[k], pos.astype(np.int64)])
        self._dirty = True

    def _flush(self, filled: int) -> None:
        # a committed row's next value must be readable: the last row's becomes explicit
        for k, (pos, row) in list(self._pend.items()):
            self._add_explicit(k, np.array([pos]), row)
        self._pend = {}
        if self._xpos:
            self._m["payload"]["next_once_rows"] = {k: len(p) for k, p in self._xpos.items()}
            self._m["payload"]["next_once_sha256"] = {
                k: h.hexdigest()  # type: ignore[attr-defined]
                for k, h in self._xsum.items()
            }
        fds = list(self._fds.values())
        if self._bw is not None and self._bw.dirty:
            fds.append(self._bw.fd)
            self._dirty, self._bw.dirty = True, False
            if self._bw.created:  # a new name in the payload directory
                self._new_dirs.add(self._bw.path.parent)
                self._bw.created = False
        if self.durable and (self._dirty or self._new_dirs):
            fsync_all(fds, self._new_dirs)
        self._dirty, self._new_dirs = False, set()
        self._write_td_meta(filled)

    def _extend_digests(self) -> None:
        if self._bw is not None:
            self._bw.extend(self._raw, self._end)
            self._m["checksums"]["blocks"] = self._bw.entry()

    def _write_td_meta(self, filled: int) -> None:
        """tensordict's ``meta.json`` files, so ``TensorDict.load_memmap`` opens committed rows.

        They are a convenience view, rewritten at each commit but not fsynced: the manifest
        alone says which rows are committed.
        """
        if filled == self._meta_rows:
            return
        self._meta_rows = filled
        for path, meta in self._td_meta(filled).items():
            atomic_write(path, json.dumps(meta).encode(), durable=False)  # advisory, see FORMAT.md

    def stored_bytes_check(self) -> tuple[list[str], set[str]]:
        """The stored-once keys ``next.k`` whose explicit records still have the bytes the
        writer hashed (``payload.next_once_sha256``, format 1.3): their rows are rebuilt from
        those records and ``k``'s rows, which the row checksums check in the same pass, so
        their own row checksums need not be recomputed (a rebuild and a hash of every row,
        ~40% of a HalfCheetah store's open). Records that differ, or a store without the
        field, leave ``next.k`` to its row checksums, which decide."""
        want = self._m["payload"].get("next_once_sha256")
        if not isinstance(want, dict) or self.writable:
            return [], set()
        return [], {
            f"next.{k}"
            for k in self._xpos
            if want.get(k) == sha256_hex(_record_bytes(self._explicit(k)))
        }

    def close(self) -> None:
        try:
            super().close()
        finally:
            fds, self._fds = self._fds, {}
            for fd in fds.values():
                os.close(fd)
            if self._bw is not None:
                self._bw.close()
            self._drop_read_fds()

    def __del__(self) -> None:  # a dropped reader frees its descriptors
        self._drop_read_fds()
        super().__del__()


def _pwrite(fd: int, t: torch.Tensor, offset: int) -> None:
    """Write a tensor's bytes (C order) at ``offset`` of a file."""
    try:
        buf = t.numpy()  # no copy for contiguous CPU tensors of numpy dtypes
    except (RuntimeError, TypeError):  # bfloat16, grads, other devices
        buf = t.detach().cpu().contiguous().view(torch.uint8).numpy()
    if not buf.flags.c_contiguous:
        buf = np.ascontiguousarray(buf)
    view = memoryview(buf).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
    done = os.pwrite(fd, view, offset)
    if done < buf.nbytes:  # short writes are rare (signals, a full disk): finish them
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)


def _pwrite_bytes(fd: int, a: np.ndarray, offset: int) -> None:
    """Write a numpy array's bytes (C order) at ``offset`` of a file."""
    view = memoryview(np.ascontiguousarray(a)).cast("B")  # type: ignore[arg-type]
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
