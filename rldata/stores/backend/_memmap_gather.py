"""A batch's gathers from the memmap payload: whole rows taken as opaque numpy items,
the explicit ``next`` rows of a stored-once key found through a bucket table, and the plan
that builds a batch's tree (used by :meth:`rldata.stores.backend._memmap_read.MemmapFiles._read`).

Sampling 256 random rows is a fixed cost per key on top of the page cache's misses, so
each step here is a few numpy calls (no torch dispatch per key, no binary search).

A store larger than ``RLDATA_MAP_BYTES`` (default 512 MiB) is gathered with one ``pread``
a row instead (:class:`_PreadRows`): a random row read through a mapping maps the whole
page-cache folio around it into the process (~365 KiB a row on this machine's kernel), so
sampling a store larger than memory would grow the sampler's RSS towards the store's size.
A pread copies the row alone; the page cache stays the kernel's to reclaim."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _compat
from rldata.errors import CorruptStoreError
from rldata.stores.format import schema as sch


class _Rows:
    """A mapped key's rows as a 1-D numpy array of opaque items (one ``void`` item a row,
    no copy), and how a batch of them becomes a tensor of the key's dtype and shape.

    ``take`` of whole rows copies each row in one move: 256 random rows of the 11 keys of
    a HalfCheetah store gather ~30% faster than with ``index_select`` (the cost is the page
    cache's cache misses; this adds the least on top), and a batch's leaf costs three
    calls (take, view, from_numpy) instead of a torch dispatch."""

    __slots__ = ("items", "typed", "dtype", "shape", "rows")

    def __init__(self, items: np.ndarray, typed: np.dtype | None, view: torch.Tensor) -> None:
        self.items, self.typed = items, typed
        self.dtype, self.shape = view.dtype, tuple(view.shape[1:])
        # the rows as ``[n, *shape]`` of the key's dtype (the same bytes): taking whole rows
        # along axis 0 gives an array torch wraps directly (~1 us a key less than a view)
        self.rows = items.view(typed) if typed is not None else None

    def take(self, p: np.ndarray) -> torch.Tensor:
        """Rows at positions ``p`` (validated by the caller), a fresh tensor."""
        if self.rows is not None:
            return torch.from_numpy(self.rows.take(p, axis=0))
        return self._typed(self.items.take(p), len(p))

    def take_clipped(self, q: np.ndarray) -> torch.Tensor:
        """:meth:`take` with positions past the last row read as the last row."""
        if self.rows is not None:
            return torch.from_numpy(self.rows.take(q, axis=0, mode="clip"))
        return self._typed(self.items.take(q, mode="clip"), len(q))

    def _typed(self, got: np.ndarray, n: int) -> torch.Tensor:
        """``n`` rows as opaque items (owned, writable) as a tensor of the key's dtype."""
        if self.typed is not None:
            return torch.from_numpy(got.view(self.typed))
        flat = torch.from_numpy(got.view(np.uint8))
        return flat.view(self.dtype).view(n, *self.shape)


class _PreadRows(_Rows):
    """:class:`_Rows` read with one ``pread`` a row from the key's file (see the module
    docstring: the sampler's memory stays its batch); through the mapping when ``fd_of``
    has no descriptor (the path now names another file than the one mapped)."""

    __slots__ = ("fd_of", "path")

    def __init__(
        self, rows: _Rows, fd_of: Callable[[], int | None], path: object, view: torch.Tensor
    ) -> None:
        super().__init__(rows.items, rows.typed, view)
        self.fd_of, self.path = fd_of, path

    def take_clipped(self, q: np.ndarray) -> torch.Tensor:
        return self.take(np.minimum(q, len(self.items) - 1))

    def take(self, p: np.ndarray) -> torch.Tensor:
        fd = self.fd_of()
        if fd is None:
            return super().take(p)
        width = self.items.dtype.itemsize
        pread = os.pread
        got = bytearray().join([pread(fd, width, o) for o in (p * width).tolist()])
        if len(got) != len(p) * width:
            raise CorruptStoreError(
                f"{self.path}: short read of {len(p)} rows of {width} bytes "
                f"(got {len(got)} bytes): the file shrank under the store"
            )
        return self._typed(np.frombuffer(got, dtype=self.items.dtype), len(p))


def _as_rows(
    view: torch.Tensor, fd_of: Callable[[], int | None] | None = None, path: object = None
) -> _Rows | None:
    """:class:`_Rows` over ``view``'s memory (:class:`_PreadRows` reading from ``fd_of``'s
    descriptor when given); None when a row has no bytes."""
    n = view.shape[0]
    width = view.element_size() * math.prod(view.shape[1:])
    if width == 0 or not view.is_contiguous():
        return None
    raw = view.reshape(n, -1).view(torch.uint8).numpy()  # same bytes, any dtype (bfloat16 too)
    items = raw.view(np.dtype((np.void, width))).reshape(n)
    typed: np.dtype | None = None
    try:  # a subarray dtype: one view gives [n, *shape] (numpy lacks some torch dtypes)
        base = torch.empty(0, dtype=view.dtype).numpy().dtype
        typed = np.dtype((base, tuple(view.shape[1:])))
        if items[:0].view(typed).shape != (0, *view.shape[1:]):
            typed = None
    except (TypeError, RuntimeError, ValueError):
        typed = None
    rows = _Rows(items, typed, view)
    return rows if fd_of is None else _PreadRows(rows, fd_of, path, view)


def _take(
    view: torch.Tensor, rows: _Rows | None, positions: torch.Tensor, p: np.ndarray | None = None
) -> torch.Tensor:
    """Rows of ``view`` at ``positions`` (``p``: the same as numpy), a fresh tensor."""
    if rows is None or positions.device.type != "cpu":
        return view.index_select(0, positions)
    return rows.take(positions.numpy() if p is None else p)


class _ExplicitFinder:
    """Which of a batch's positions hold an explicit ``next`` row, and where in ``xpos``.

    A binary search of 256 random positions costs ~15 us (a mispredicted branch a step);
    a table of where each bucket of ``2**shift`` rows starts in ``xpos`` (about as many
    entries as explicit rows: memory follows the episodes, not the rows) finds them in
    five numpy calls when buckets hold at most one explicit row (episodes longer than a
    bucket), a few more when they hold several, else falls back to the binary search.
    """

    _MAX_STEPS = 4
    _NONE = np.iinfo(np.int64).min  # pads xpos: equals no position

    def __init__(self, xpos: np.ndarray, rows: int) -> None:
        self.xpos, self.rows = xpos, rows
        per = max(1, rows // max(1, xpos.size))
        self.shift = per.bit_length() - 1
        starts = np.arange(((max(rows, 1) - 1) >> self.shift) + 2, dtype=np.int64) << self.shift
        self.first = np.searchsorted(xpos, starts)
        self.steps = int(np.diff(self.first).max(initial=0))
        self.padded = np.concatenate([xpos, np.full(max(1, self.steps), self._NONE)])
        self.lone = self.padded[self.first]

    def __call__(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(hit, j)``: indices into ``p`` of the explicit positions, ascending, and their
        indices into ``xpos`` (``xpos[j] == p[hit]``)."""
        if self.steps <= 1:
            # one candidate a bucket: the first explicit row at or after the bucket's start
            # (``lone``), which a position equals only if it is that bucket's explicit row
            b = p >> self.shift
            hit = (self.lone.take(b, mode="clip") == p).nonzero()[0]
            return hit, self.first.take(b[hit], mode="clip")
        if self.steps > self._MAX_STEPS:
            xpos = self.xpos
            j = np.searchsorted(xpos, p)
            np.minimum(j, xpos.size - 1, out=j)
            hit = np.flatnonzero(xpos[j] == p)
            return hit, j[hit]
        # a position outside [0, rows) is clipped to an end bucket, whose explicit rows it
        # cannot equal (they lie in [0, rows)): never a false hit
        j0 = self.first.take(p >> self.shift, mode="clip")
        padded = self.padded
        hit = np.flatnonzero(padded[j0] == p)
        hits, js = [hit], [j0[hit]]
        for m in range(1, self.steps):
            j = j0 + m
            h = np.flatnonzero(padded[j] == p)
            hits.append(h)
            js.append(j[h])
        hit, j = np.concatenate(hits), np.concatenate(js)
        order = np.argsort(hit, kind="stable")
        return hit[order], j[order]


def _read_plan(
    fields: dict,
) -> tuple[int, list[tuple[str | None, int, str, int]], list[tuple[int, str, int]]]:
    """How :meth:`MemmapFiles._read` fills a batch's tree: the number of nested dicts, and
    in the order a walk of ``fields`` meets them, ``(name, node, key, -1)`` for a leaf
    (key ``name`` goes into dict ``node`` under ``key``) and ``(None, node, key, child)``
    for a nested dict (keys keep the order the walk gave them before); then the nested
    dicts ``(node, key, child)`` deepest first, the order they become TensorDicts."""
    index: dict[tuple[str, ...], int] = {(): 0}
    steps: list[tuple[str | None, int, str, int]] = []
    for name in fields:
        *parents, leaf = sch.key_tuple(name)
        path: tuple[str, ...] = ()
        for part in parents:
            child = (*path, part)
            if child not in index:
                index[child] = len(index)
                steps.append((None, index[path], part, index[child]))
            path = child
        steps.append((name, index[path], leaf, -1))
    nested = [(at, key, child) for name, at, key, child in reversed(steps) if name is None]
    return len(index), steps, nested


def _put_rows(out: torch.Tensor, at: np.ndarray, rows: torch.Tensor) -> None:
    """``out[at] = rows``: a few rows (a batch's explicit next values) copied one by one,
    ~20x cheaper than tensor-indexed assignment of large rows."""
    if len(at) > 16:
        out[torch.from_numpy(at)] = rows
        return
    for i, row in zip(at.tolist(), rows):
        out[i].copy_(row)


_LEAF, _NODE, _NEXT = 0, 1, 2  # the kinds of a batch plan's steps
_CPU = torch.device("cpu")


class _NextOnce:
    """``next.k`` of a batch for a key ``k`` stored once: ``k`` one row later (clipped to
    the mapped rows), its explicit rows patched in. Built for one mapping and one ``xpos``
    (see :class:`_Batch`)."""

    __slots__ = ("later", "find", "recs")

    def __init__(
        self, rows: np.ndarray, find: _ExplicitFinder | None, recs: np.ndarray | None
    ) -> None:
        # rows from the second on: position p of it is row p + 1, and the last position
        # clips to the last row, as take_clipped(p + 1) reads (without adding one to p)
        self.later = rows[1:] if len(rows) > 1 else rows
        self.find, self.recs = find, recs

    def __call__(self, p: np.ndarray) -> torch.Tensor:
        out = self.later.take(p, 0, None, "clip")
        find = self.find
        if find is None:
            return torch.from_numpy(out)
        if find.steps <= 1:  # _ExplicitFinder's first case, its j looked up only on a hit
            b = p >> find.shift
            hit = (find.lone.take(b, 0, None, "clip") == p).nonzero()[0]
            if hit.size:
                out[hit] = self.recs[find.first.take(b[hit])]  # type: ignore[index]
            return torch.from_numpy(out)
        hit, j = find(p)
        if hit.size:
            out[hit] = self.recs[j]  # type: ignore[index]  # the batch's own memory
        return torch.from_numpy(out)


class _Batch:
    """A batch's gathers, planned once per mapping: one numpy ``take`` of whole rows a
    key (``[rows, *shape]`` views of the mappings, each result wrapped by ``from_numpy``),
    ``next`` of the keys stored once, then the tree's TensorDicts.

    Each batch used to look every key up again (its rows, its finder, whether it is stored
    once); planning that when the mapping changes leaves a batch its gathers and one call
    a key (:meth:`MemmapFiles._read` checks ``arrays`` and ``xpos`` are still the handle's).
    Each node's dict is copied from a template holding its keys in the schema's order, so
    the leaves fill in any order and the tree keeps the order the general path gives it."""

    __slots__ = ("arrays", "xpos", "templates", "leaves", "nexts", "nested", "size")

    def __init__(
        self,
        arrays: dict,
        xpos: dict[str, np.ndarray],
        count: int,
        steps: list[tuple[int, int, str, object]],
        nested: list[tuple[int, str, int]],
    ) -> None:
        self.arrays, self.xpos = arrays, dict(xpos)
        self.templates: list[dict] = [{} for _ in range(count)]
        for _kind, at, key, _arg in steps:
            self.templates[at][key] = None
        self.leaves = [(at, key, arg.take) for kind, at, key, arg in steps if kind == _LEAF]  # type: ignore[attr-defined]
        self.nexts: list[tuple[int, str, _NextOnce]] = [
            (at, key, arg) for kind, at, key, arg in steps if isinstance(arg, _NextOnce)
        ]
        self.nested = nested
        self.size = torch.Size((0,))

    def current(self, arrays: dict, xpos: dict[str, np.ndarray]) -> bool:
        """Whether the plan was made over these mappings and explicit rows."""
        if arrays is not self.arrays or len(xpos) != len(self.xpos):
            return False
        # a writer replaces xpos[k] as explicit rows land (a loop: all() of a generator
        # costs ~0.4 us more a batch)
        for k, v in self.xpos.items():  # noqa: SIM110
            if xpos.get(k) is not v:
                return False
        return True

    def __call__(self, p: np.ndarray, n: int) -> TensorDict:
        nodes = [t.copy() for t in self.templates]
        from_numpy = torch.from_numpy
        for at, key, take in self.leaves:
            nodes[at][key] = from_numpy(take(p, 0))
        for at, key, once in self.nexts:
            nodes[at][key] = once(p)
        size = self.size
        if size[0] != n:
            size = self.size = torch.Size((n,))
        new_td = _compat.new_td
        for at, key, child in self.nested:  # deepest first: a child's dict is filled
            nodes[at][key] = new_td(nodes[child], size, _CPU)
        return new_td(nodes[0], size, _CPU)


def _plan_batch(
    fields: dict,
    arrays: dict[str, _Rows | None],
    xpos: dict[str, np.ndarray],
    finder: Callable[[str], _ExplicitFinder],
    explicit: Callable[[str], np.ndarray | None],
) -> _Batch | None:
    """The :class:`_Batch` of a mapping, or None when a key has no typed mapped rows (a
    dtype numpy lacks, rows read with ``pread``, a row of no bytes): those batches take
    the general path of :meth:`MemmapFiles._read`."""
    count, plan, nested = _read_plan(fields)
    steps: list[tuple[int, int, str, object]] = []
    for name, at, key, child in plan:
        if name is None:
            steps.append((_NODE, at, key, child))
            continue
        k = name[len("next.") :] if name.startswith("next.") else None
        if k not in xpos:  # a row-indexed key (``next.k`` too when stored twice)
            k = None
        rows = arrays.get(name if k is None else k)
        if rows is None or type(rows) is not _Rows or rows.rows is None:
            return None
        if k is None:
            steps.append((_LEAF, at, key, rows.rows))
            continue
        recs = explicit(k) if xpos[k].size else None
        if recs is not None and recs["row"].dtype != rows.rows.dtype:
            return None
        find = finder(k) if recs is not None else None
        once = _NextOnce(rows.rows, find, None if recs is None else recs["row"])
        steps.append((_NEXT, at, key, once))
    return _Batch(arrays, xpos, count, steps, nested)
