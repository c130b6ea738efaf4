"""One pass over a memmap store's rows for a full verify: each byte read once, hashed and
checked for meaning from the same buffer.

A full ``rldata verify`` used to read a store three times (the section-7 chunk hashes, the
episode index check, the TED invariants), each read into fresh memory. :class:`Scan` reads
every checksum chunk once with ``pread`` into a few reused buffers (the kernel is asked to
read the next chunk ahead), hands each key's bytes to the hashing threads (hashlib releases
the GIL: every core hashes) and, while they hash, runs
:class:`~rldata.stores.backend.invariants.EpisodeCheck` and
:class:`~rldata.stores.backend.invariants.TedCheck` on those same buffers, block by block
(the blocks of :func:`~rldata.stores.backend.blocks.block_rows`, so every fault reads as
the separate passes report it). A stored-once ``next.k`` is rebuilt from ``k``'s buffer
and its explicit records, not read again. Memory is a few chunks of rows, whatever the
store's size.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np
import torch

from rldata.errors import CorruptStoreError
from rldata.stores.backend._verify_visits import Job, Piece, spans_of, visits
from rldata.stores.backend.base import Store
from rldata.stores.backend.blocks import block_rows, runs
from rldata.stores.backend.invariants import EpisodeCheck, TedCheck
from rldata.stores.format import schema as sch
from rldata.stores.format.checksums import hash_workers, sha256_hex

SETS = 2
"""Buffer sets: one read ahead while the other is hashed and checked (memory: two chunks and
two blocks of rows). A set is read again once its hashes are done and the block carried
from it was copied out."""


def applies(store: Store) -> bool:
    """Whether the one-pass scan serves ``store``, opened to read: a memmap row store not
    checking blocks on read (such a handle keeps the separate passes, whose reads refuse a
    faulty block), or a parquet row store (its range reader decodes without those checks;
    verify hashes every part before it runs)."""
    if getattr(store, "writable", True) or not getattr(store, "chunk_rows", None):
        return False
    backend = getattr(store, "backend", None)
    if backend == "parquet":
        return hasattr(store, "_span")
    return (
        backend == "memmap"
        and hasattr(store, "_slice")
        and hasattr(store, "_xpos")
        and not getattr(store, "_unchecked", 0)
    )


class Scan:
    """The one pass: :meth:`hashes` reads and hashes, checking invariants on the way;
    :meth:`faults` then gives the invariant faults in the order the separate passes gave
    them (the episode index's, then TED's)."""

    def __init__(self, store: Store, invariants: bool) -> None:
        self.store = store
        self.invariants = invariants
        self.ran = False
        self._error: CorruptStoreError | None = None
        self._faults: list[str] = []

    def hashes(self, jobs: list[Job]) -> Iterator[str]:
        """The hex SHA-256 of each job, in order; every readable row is checked for meaning
        on the same read (see :meth:`faults`)."""
        self.ran = True
        digests: list[str] = [""] * len(jobs)
        self._run(jobs, digests)
        return iter(digests)

    def beside_stored_check(self) -> bool:
        """Whether the scan may run while the store's stored objects are hashed: a parquet
        store with block digests, whose readers decode a part before it is hashed whole
        (its footer is checked first); other stores decode only what matched."""
        lazy = getattr(self.store, "_lazy_blocks", None)
        return getattr(self.store, "backend", None) == "parquet" and bool(lazy and lazy())

    def reset(self) -> None:
        """Forget the scan (the stored objects it read were damaged): the separate passes
        check the rows instead."""
        self.ran = False
        self._faults = []

    def faults(self) -> Iterator[str]:
        """The episode index's first fault, then TED's.

        Raises:
            CorruptStoreError: the episode index could not be read (as the separate pass).
        """
        if self._error is not None:
            raise self._error
        yield from self._faults

    def _run(self, jobs: list[Job], digests: list[str]) -> None:
        store = self.store
        rows = int(store.chunk_rows)  # type: ignore[attr-defined]
        duties: dict[int, list[int]] = {}
        for i, (_, c, _, _) in enumerate(jobs):
            duties.setdefault(c, []).append(i)
        feeder = self._feeder()
        route = visits(store, rows, duties, feeder is not None)
        names = feeder.names if feeder is not None else []
        plans = [spans_of(jobs, duties.get(c, []), piece, names) for c, piece in route]
        bufs: _Rows = (
            _Buffers(store, rows, feeder.step if feeder is not None else 0)
            if store.backend == "memmap"
            else _Decoded(store)
        )
        seen: set[int] = set()
        workers = hash_workers()
        with (
            ThreadPoolExecutor(workers, thread_name_prefix="rldata-verify") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="rldata-verify-read") as reader,
        ):
            pending: deque[list[tuple[int, Future]]] = deque()
            ahead: Future | None = None
            try:
                for n, ((c, piece), spans) in enumerate(zip(route, plans)):
                    if len(pending) >= SETS - 1:  # the next read's set: its hashes done
                        _collect(pending.popleft(), digests)
                    got = ahead.result() if ahead is not None else bufs.read(n % SETS, spans)
                    held = feeder.take_held() if feeder is not None and piece else None
                    cols = bufs.finish(n % SETS, spans, got, held)  # copies held: its set is free
                    ahead = None
                    if n + 1 < len(plans):  # the disk reads on while this one is checked
                        after = plans[n + 2] if n + 2 < len(plans) else None
                        ahead = reader.submit(_read, bufs, (n + 1) % SETS, plans[n + 1], after)
                    mine = [] if c in seen else duties.get(c, [])
                    seen.add(c)
                    futs = []
                    for i in mine:
                        name, _, a, b = jobs[i]
                        first, arr = cols[name]
                        w = bufs.width[name]
                        view = _bytes(arr)[(a - first) * w : (b - first) * w]
                        futs.append((i, pool.submit(sha256_hex, view)))
                    pending.append(futs)
                    if feeder is not None and piece is not None:
                        feeder.feed(piece, cols)
                while pending:
                    _collect(pending.popleft(), digests)
            finally:
                if ahead is not None:
                    ahead.cancel()
                for futs in pending:
                    for _, f in futs:
                        f.cancel()
        if feeder is not None:
            self._faults = feeder.finish()

    def _feeder(self) -> _Blocks | None:
        """The invariant checkers, fed blocks; None when the episode index cannot be read
        (kept, and raised by :meth:`faults` as the separate pass raised it)."""
        store = self.store
        if store.schema is None:
            return None
        try:
            episodes = EpisodeCheck(store)
        except CorruptStoreError as exc:
            self._error = exc
            return None
        return _Blocks(store, episodes, TedCheck(store) if self.invariants else None)


def _read(bufs: _Rows, k: int, spans: Spans, after: Spans | None) -> Any:
    """Read a visit into set ``k``, then ask for the next visit's bytes (the kernel fetches
    them while this one is checked; every read and advice on the reader thread)."""
    got = bufs.read(k, spans)
    if after is not None:
        bufs.advise(after)
    return got


def _collect(futs: list[tuple[int, Future]], digests: list[str]) -> None:
    for i, f in futs:
        digests[i] = f.result()


def _bytes(a: np.ndarray) -> memoryview:
    return memoryview(a.reshape(-1).view(np.uint8))  # type: ignore[arg-type]


def _raw_np(t: torch.Tensor) -> np.ndarray:
    """A tensor's memory as numpy (bfloat16, which numpy lacks, as its 16 bits)."""
    return t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()


Held = tuple[int, dict[str, np.ndarray]]
"""The open block's first position and its rows so far, by key."""
Spans = dict[str, tuple[int, int]]
"""Rows ``[a, b)`` to read of each key, for one visit."""


class _Rows(Protocol):
    """Where a visit's rows come from: ``read`` (on the reader thread) gets them, ``finish``
    (on the scan's thread) puts the carried block's rows before them."""

    width: dict[str, int]

    def read(self, k: int, spans: Spans) -> Any: ...

    def advise(self, spans: Spans) -> None: ...

    def finish(
        self, k: int, spans: Spans, got: Any, held: Held | None
    ) -> dict[str, tuple[int, np.ndarray]]: ...


class _Decoded:
    """Rows of each visit decoded by the store's row-group reader (parquet: every key of a
    chunk's row groups in one read, ``next.k`` stored once rebuilt by the reader) into
    fresh arrays: the interface of :class:`_Buffers`, without reused buffers.

    Row groups need not align with checksum chunks (47,127-row groups under 65,536-row
    chunks at HalfCheetah's width): the last group a visit decoded is kept for the next
    visit, so each group is decoded once, not 1.75 times."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.width = {name: sch.row_bytes(e) for name, e in (store.schema or {}).items()}
        self._last: tuple[tuple[str, int, tuple[str, ...]], dict[str, np.ndarray]] | None = None

    def advise(self, spans: Spans) -> None:
        """Nothing: the parts are read ahead by their hashing thread."""

    def read(self, k: int, spans: Spans) -> dict[str, tuple[int, np.ndarray]]:
        """Each key's span decoded, keys of equal spans in one read (a reader thread runs
        this; pyarrow decodes without the GIL)."""
        by_span: dict[tuple[int, int], list[str]] = {}
        for name, span in spans.items():
            by_span.setdefault(span, []).append(name)
        out = {}
        for (a, b), names in by_span.items():
            got = self._span(a, b, names)
            for name in names:
                out[name] = (a, np.ascontiguousarray(got[name]))
        return out

    def _span(self, a: int, b: int, names: list[str]) -> dict[str, np.ndarray]:
        """Rows ``[a, b)`` of ``names``, group by group (the store's own range read where
        its rows are not read by row group: a small store's decoded columns)."""
        store: Any = self.store
        groups = getattr(store, "_groups", None)
        if (
            getattr(store, "_cols", None) is not None
            or groups is None
            or groups.complete() is not None
        ):
            return store._span(a, b, names, scan=True, check=False)  # type: ignore[no-any-return]
        pieces: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for f, part, g0, g1, first in groups.spans(a, b):
            got: list[dict[str, np.ndarray]] = []
            last = self._last
            if last is not None and last[0] == (part["path"], g0, tuple(names)):
                got.append(last[1])  # decoded by the last visit
                g0 += 1
            if g1 - 1 > g0:
                got.append(store._decode_groups(f, part, g0, g1 - 1, names))
            if g1 > g0:  # the last group alone: the next visit starts in it
                got.append(store._decode_groups(f, part, g1 - 1, g1, names))
                self._last = ((part["path"], g1 - 1, tuple(names)), got[-1])
            for d in got:
                n = len(d[names[0]])
                x, y = max(a, first), min(b, first + n)
                if y > x:
                    for name in names:
                        pieces[name].append(d[name][x - first : y - first])
                first += n
        return {n: v[0] if len(v) == 1 else np.concatenate(v) for n, v in pieces.items()}

    def finish(
        self,
        k: int,
        spans: dict[str, tuple[int, int]],
        got: dict[str, tuple[int, np.ndarray]],
        held: Held | None,
    ) -> dict[str, tuple[int, np.ndarray]]:
        """The rows read by key, after the carried block's rows (a copy of one block)."""
        out = {}
        for name, (a, arr) in got.items():
            part = held[1].get(name) if held is not None else None
            if part is not None and len(part):
                arr, a = np.concatenate([part, arr]), a - len(part)
            out[name] = (a, arr)
        return out


class _Buffers:
    """``SETS`` reused buffers a key, each a chunk of rows (and one more: ``next.k`` stored
    once reads ``k`` a row further) after a margin of one block, where the rows of the block
    carried from the previous chunk are copied (reads need not wait for the checks)."""

    def __init__(self, store: Store, rows: int, margin: int) -> None:
        self.store = store
        self.margin = margin
        self.cap = margin + rows + 1
        self.schema = store.schema or {}
        self.late = {f"next.{k}": k for k in store._xpos}  # type: ignore[attr-defined]
        self.width = {name: sch.row_bytes(e) for name, e in self.schema.items()}
        self.sets: list[dict[str, tuple[np.ndarray, torch.Tensor]]] = [{} for _ in range(SETS)]

    def _buf(self, k: int, name: str, rows: int) -> tuple[np.ndarray, torch.Tensor]:
        got = self.sets[k].get(name)
        if got is None or got[1].shape[0] < self.margin + rows:
            e = self.schema[name]
            shape = (max(self.cap, self.margin + rows), *e["shape"])
            t = torch.empty(shape, dtype=sch.dtype_of(e["dtype"]))
            got = self.sets[k][name] = (_raw_np(t), t)
        return got

    def _wide(self, spans: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """The spans with ``k`` read a row past each stored-once ``next.k``'s span."""
        spans = dict(spans)
        for name, (a, b) in list(spans.items()):
            k_name = self.late.get(name)
            if k_name is not None:  # next.k of [a, b) is k of [a + 1, b + 1)
                lo, hi = spans.get(k_name, (a + 1, b + 1))
                spans[k_name] = (min(lo, a + 1), max(hi, b + 1))
        return spans

    def advise(self, spans: Spans) -> None:
        """Ask the kernel to start reading ``spans`` now (``posix_fadvise(WILLNEED)``): the
        disk stays busy while a visit's ``pread`` waits on the one before."""
        fd_of = getattr(self.store, "_read_fd", None)
        if fd_of is None or not hasattr(os, "posix_fadvise"):
            return
        for name, (a, b) in self._wide(spans).items():
            try:  # advice only: a store whose files are not local (streamed units) has none
                fd = None if name in self.late else fd_of(name)
                if fd is not None and b > a:
                    w = self.width[name]
                    os.posix_fadvise(fd, a * w, (b - a) * w, os.POSIX_FADV_WILLNEED)
            except OSError:
                continue

    def read(self, k: int, spans: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """``pread`` each key's span into set ``k`` after the margin: the rows read, by key
        (a reader thread runs this; the reads release the GIL)."""
        out = {}
        for name, (a, b) in self._wide(spans).items():
            if name in self.late:
                continue
            b = max(a, min(b, self.store._views[name].shape[0]))  # type: ignore[attr-defined]
            _, tensor = self._buf(k, name, b - a)
            if b > a:
                lo = self.margin
                self.store._slice(name, a, b, out=tensor[lo : lo + b - a])  # type: ignore[attr-defined]
            out[name] = (a, b)
        return out

    def finish(
        self,
        k: int,
        spans: dict[str, tuple[int, int]],
        got: dict[str, tuple[int, int]],
        held: Held | None,
    ) -> dict[str, tuple[int, np.ndarray]]:
        """Set ``k``'s rows by key, ``{name: (position of row 0, rows)}``: the carried
        block's rows (``held``) first, then the rows read, and ``next.k`` rebuilt."""
        out: dict[str, tuple[int, np.ndarray]] = {}
        for name, (a, b) in got.items():
            out[name] = self._front(k, name, a, b, held)
        for name, k_name in self.late.items():
            if name in spans:
                out[name] = self._rebuild(k, name, k_name, *spans[name], out[k_name], held)
        return out

    def _front(
        self, k: int, name: str, a: int, b: int, held: Held | None
    ) -> tuple[int, np.ndarray]:
        """Rows ``[a, b)`` of set ``k``, after the carried block's rows of ``name``."""
        part = held[1].get(name) if held is not None else None
        t = 0 if part is None else len(part)
        arr, _ = self._buf(k, name, b - a)
        lo = self.margin
        if part is not None:
            arr[lo - t : lo] = part
        return a - t, arr[lo - t : lo + b - a]

    def _rebuild(
        self,
        k: int,
        name: str,
        k_name: str,
        a: int,
        b: int,
        src: tuple[int, np.ndarray],
        held: Held | None,
    ) -> tuple[int, np.ndarray]:
        """``next.k`` of rows ``[a, b)`` from ``k``'s rows one further and the explicit
        records (what the store's own reader does, on the rows already read)."""
        first, arr = self._front(k, name, a, b, held)
        t = a - first
        p, rows = src
        have = max(0, min(b - a, len(rows) - (a + 1 - p)))
        arr[t : t + have] = rows[a + 1 - p : a + 1 - p + have]
        xpos = self.store._xpos[k_name]  # type: ignore[attr-defined]
        i, j = np.searchsorted(xpos, [a, b])
        if j > i:
            recs = self.store._explicit(k_name)  # type: ignore[attr-defined]
            arr[t + xpos[i:j] - a] = np.asarray(recs["row"][i:j]).view(arr.dtype)
        return first, arr


class _Blocks:
    """Pieces of chunks in, blocks of :func:`block_rows` out (as the separate passes cut
    them; a block that goes on into the next chunk is carried to the front of its buffer),
    fed to the checkers until each finds its first fault."""

    def __init__(self, store: Store, episodes: EpisodeCheck, ted: TedCheck | None) -> None:
        schema = store.schema or {}
        self.episodes: EpisodeCheck | None = episodes if episodes.fault is None else None
        self.ted = ted
        self.episode_fault = [episodes.fault] if episodes.fault is not None else []
        self.ted_fault: list[str] = []
        bf16 = sch.dtype_name(torch.bfloat16)
        self.bf16 = {n for n, e in schema.items() if e["dtype"] == bf16}
        self.names = list(schema) if ted is not None else [n for n in EpisodeCheck.keys]
        self.step = block_rows(store)
        self.runs = runs(store)
        self._run = 0  # the run the open block is in
        self._held: Held | None = None
        self._offset = 0  # the open block's first readable row
        self._carry: int | None = None  # the position of the carried block, in this visit

    def take_held(self) -> Held | None:
        """The open block's rows, for the next visit to copy to the front of its buffers."""
        held, self._held = self._held, None
        self._carry = None if held is None else held[0]
        return held

    def feed(self, piece: Piece, cols: dict[str, tuple[int, np.ndarray]]) -> None:
        """Rows ``[lo, hi)`` of a chunk after any carried rows: ``cols[name] = (position of
        row 0, rows)`` (the carried open block starts at row 0)."""
        lo, hi, offset = piece
        s, off = (lo, offset) if self._carry is None else (self._carry, self._offset)
        while s < hi and (self.episodes is not None or self.ted is not None):
            while not self.runs[self._run][0] <= s < self.runs[self._run][1]:
                self._run += 1
            a, b = self.runs[self._run]
            e = min(b, a + ((s - a) // self.step + 1) * self.step)  # the block's end
            if e > hi:  # it goes on in the next chunk: carried there
                self._held = (
                    s,
                    {n: cols[n][1][s - cols[n][0] : hi - cols[n][0]] for n in self.names},
                )
                self._offset = off
                return
            self._emit(s, e, off, cols)
            s, off = e, off + e - s

    def _emit(self, s: int, e: int, off: int, cols: dict[str, tuple[int, np.ndarray]]) -> None:
        def col(name: str) -> np.ndarray:
            p, arr = cols[name]
            a = arr[s - p : e - p]
            if name in self.bf16:
                return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).float().numpy()
            return a

        if self.episodes is not None:
            fault = self.episodes.feed(off, s, col)
            if fault is not None:
                self.episode_fault, self.episodes = [fault], None
        if self.ted is not None:
            fault = self.ted.feed(s, e - s, col)
            if fault is not None:
                self.ted_fault, self.ted = [fault], None

    def finish(self) -> list[str]:
        """Every fault found, in report order (all blocks fed)."""
        if self.episodes is not None:
            fault = self.episodes.finish()
            self.episode_fault = [fault] if fault is not None else []
        return self.episode_fault + self.ted_fault
