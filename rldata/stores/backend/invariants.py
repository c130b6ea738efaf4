"""The TED invariants of a store's rows, checked block by block: flags, trajectory ids,
the next-observation links between rows and the episode index against the rows.

Split from :mod:`rldata.stores.backend.verify` (which runs it after the integrity checks)
so each module keeps one job: that one proves bytes, this one proves meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from rldata import ted
from rldata.stores.backend.base import Store
from rldata.stores.backend.blocks import block_rows, row_blocks, runs

K = ted.TED_KEYS
_FLAGS = [
    tuple(ted.key_name(k) for k in K.flags),
    tuple(ted.key_name(K.nxt(k)) for k in K.flags),
]
_TRAJ = ted.key_name(K.traj_ids)
_REWARD = ted.key_name(K.nxt(K.reward))


def _np(t: torch.Tensor) -> np.ndarray:
    """A column of a block as a numpy array (no copy; bfloat16, which numpy lacks, as float32).
    The invariant pass runs in numpy: torch's intra-op pool costs a thread hand-off on every
    small op, ~15 ms each on a loaded 2-core machine, more than the work itself."""
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def _equal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N]``: row i of ``a`` equals row i of ``b`` (NaN equals NaN). Floats compare their
    bits first (one pass; rows of equal bits are equal), and only rows whose bits differ by
    value (-0.0 and 0.0, NaNs of other payloads)."""
    if a.dtype.kind == "f" and a.shape == b.shape and a.ndim > 1 and len(a):
        bits = np.dtype(f"u{a.dtype.itemsize}")
        try:
            same = (a.view(bits) == b.view(bits)).reshape(len(a), -1).all(-1)
        except ValueError:  # a layout numpy cannot reinterpret: by value
            return _equal_values(a, b)
        if not same.all():
            odd = np.flatnonzero(~same)
            same[odd] = _equal_values(a[odd], b[odd])
        return same
    return _equal_values(a, b)


def _equal_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    eq = a == b
    if a.dtype.kind in "fc":
        eq |= (a != a) & (b != b)
    return eq.reshape(eq.shape[0], int(np.prod(eq.shape[1:]))).all(-1) if eq.ndim > 1 else eq


def _unequal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the rows where ``a`` and ``b`` differ, as :func:`_equal_rows`
    judges them. Floats find their differing elements by bits, then check only those rows
    by value: a next-observation link differs at a few episode ends a block, and a
    per-row reduction over 17 features costs more than the comparison itself."""
    if a.dtype.kind == "f" and a.shape == b.shape and a.ndim > 1 and len(a):
        bits = np.dtype(f"u{a.dtype.itemsize}")
        try:
            diff = a.view(bits) != b.view(bits)
        except ValueError:  # a layout numpy cannot reinterpret: by value
            return np.flatnonzero(~_equal_values(a, b))
        at = np.flatnonzero(diff) // (diff.size // len(a))
        if not at.size:
            return at
        rows = at[np.concatenate(([True], at[1:] != at[:-1]))]
        return rows[~_equal_values(a[rows], b[rows])]
    return np.flatnonzero(~_equal_values(a, b))


def _key_blocks(store: Store, names: list[str]) -> Iterator[tuple[int, int, list[np.ndarray]]]:
    """``(offset, position, columns)`` of some keys of every readable row, oldest first, in
    blocks of :func:`~rldata.stores.backend.blocks.block_rows`: a row store's keys are read
    alone, not with every other key as :func:`row_blocks` does (memmap: by ``pread``, so no
    mapped page stays resident; other backends through their one-key reader)."""
    from rldata.stores.backend.rowstore import RowStore
    from rldata.stores.format import schema as sch

    if not isinstance(store, RowStore):
        for block in row_blocks(store):
            yield (
                block.offset,
                block.position,
                [_np(block.rows.get(sch.key_tuple(k))) for k in names],
            )
        return
    # memmap by pread; parquet decodes only the row groups of the block, one column (zarr
    # reads through its chunk cache)
    raw = store.backend in ("memmap", "parquet")
    entries = [store.schema[k] for k in names]  # type: ignore[index]
    types = [sch.dtype_of(e["dtype"]) for e in entries]
    step, offset = block_rows(store), 0
    for a, b in runs(store):
        for lo in range(a, b, step):
            hi = min(b, lo + step)
            cols = []
            for name, e, dt in zip(names, entries, types):
                if not raw:
                    pos = torch.from_numpy(
                        np.arange(lo, hi, dtype=np.int64)
                    )  # torch.arange: a pool wake-up
                    cols.append(_np(store._read_key(name, pos)))
                    continue
                data = store._raw(name, lo, hi)  # type: ignore[attr-defined]
                if dt == torch.bfloat16:  # numpy has no bfloat16
                    flat = _np(torch.frombuffer(bytearray(data), dtype=dt))
                else:
                    flat = np.frombuffer(data, dtype=torch.empty(0, dtype=dt).numpy().dtype)
                cols.append(flat.reshape(hi - lo, *e["shape"]))
            yield offset, lo, cols
            offset += hi - lo


Columns = Callable[[str], np.ndarray]
"""``col(name)``: the column of key ``name`` (dotted) of the rows of a block, as numpy."""


class EpisodeCheck:
    """Each row's trajectory id and each segment's return against the episode index, fed
    block by block (:meth:`feed`, in write order; only the trajectory id and reward keys are
    read): a row's segment comes from the index's cumulative lengths, never from a per-row
    table. :attr:`fault` is set at construction when the index does not cover the rows (no
    block need be fed); :meth:`finish` gives the return fault, once every block was fed.

    Raises (at construction):
        CorruptStoreError: the episode index cannot be read.
    """

    keys = (_TRAJ, _REWARD)

    def __init__(self, store: Store) -> None:
        seg = store.segments()  # type: ignore[attr-defined]
        lengths = seg["length"].numpy().astype(np.int64)
        total = int(lengths.sum())
        self.path = store.path
        self.fault: str | None = None
        if total != len(store):
            self.fault = f"{store.path}: episode index covers {total} rows, expected {len(store)}"
        self.ends = np.cumsum(lengths)
        self.seg_ids = seg["traj_id"].numpy()
        self.want = seg["return"].numpy().astype(np.float64)
        self.returns = np.zeros(len(lengths), dtype=np.float64)

    def feed(self, offset: int, position: int, col: Columns) -> str | None:
        """The first fault of the block of readable rows from ``offset`` (at ``position``)."""
        ids = col(_TRAJ).reshape(-1)
        n = len(ids)
        if not n:
            return None
        # the block's rows are consecutive: so are their segments, ``first`` to ``last``,
        # each ``counts`` rows here (no search per row)
        first = int(np.searchsorted(self.ends, offset, "right"))
        last = int(np.searchsorted(self.ends, offset + n - 1, "right"))
        cuts = np.clip(self.ends[first:last] - offset, 0, n)
        counts = np.diff(np.concatenate(([0], cuts, [n])))
        bad = ids != np.repeat(self.seg_ids[first : last + 1], counts)
        if bad.any():
            i = int(bad.argmax())
            seg = first + int(np.searchsorted(cuts, i, "right"))
            return (
                f"{self.path}: row {position + i} has traj id {int(ids[i])}, episode "
                f"index says {int(self.seg_ids[seg])}"
            )
        reward = col(_REWARD).reshape(n, -1).sum(-1, dtype=np.float64)
        some = counts > 0
        heads = (np.cumsum(counts) - counts)[some]
        self.returns[first : last + 1][some] += np.add.reduceat(reward, heads)
        return None

    def finish(self) -> str | None:
        """The first segment whose return differs from its rows' rewards (all blocks fed)."""
        returns, want = self.returns, self.want
        close = np.isclose(returns, want, rtol=1e-6, atol=1e-6) | (
            np.isnan(returns) & np.isnan(want)
        )
        if close.all():
            return None
        j = int((~close).argmax())
        return (
            f"{self.path}: episode segment {j} (traj {int(self.seg_ids[j])}): return "
            f"{float(want[j])} in the index, {float(returns[j])} in the rows"
        )


def episode_faults(store: Store, m: dict) -> Iterator[str]:
    """:class:`EpisodeCheck` over every block of the store, reading only its two keys
    (:func:`_key_blocks`)."""
    check = EpisodeCheck(store)
    if check.fault is not None:
        yield check.fault
        return
    for offset, position, cols in _key_blocks(store, list(EpisodeCheck.keys)):
        by_name = dict(zip(EpisodeCheck.keys, cols))
        fault = check.feed(offset, position, by_name.__getitem__)
        if fault is not None:
            yield fault
            return
    fault = check.finish()
    if fault is not None:
        yield fault


def _obs_keys(schema: dict) -> list[str]:
    reserved = {*_FLAGS[0], ted.key_name(K.action), ted.key_name(K.reward)}
    return [
        k
        for k in schema
        if not k.startswith((K.next + ".", "collector."))
        and k not in reserved
        and f"{K.next}.{k}" in schema
    ]


class TedCheck:
    """TED's invariants, fed block by block in write order (:meth:`feed`), in numpy: the
    flags of each row, and between a row and the next row of its trajectory (sorted by
    trajectory within a block; across blocks through each open trajectory's last row). An
    ended trajectory keeps only its id and position; an open one its last row's next
    observations, so memory is the open trajectories, not the rows."""

    def __init__(self, store: Store) -> None:
        self.path = store.path
        self.obs = _obs_keys(store.schema or {})
        self.last: dict[int, tuple[int, list[np.ndarray] | None]] = {}  # traj -> (pos, next obs)

    def feed(self, position: int, n: int, col: Columns) -> str | None:
        """The first fault of a block of ``n`` rows at ``position`` (None: sound so far)."""
        obs, last, path = self.obs, self.last, self.path
        for done, term, trunc in _FLAGS:
            d, t, u = (col(k).reshape(n, -1) for k in (done, term, trunc))
            bad = (d != (t | u)).any(-1)
            if bad.any():
                i = int(bad.argmax())
                return f"{path}: row {position + i}: {done} != {term} | {trunc}"
        ids = col(_TRAJ).reshape(-1)
        ordered = bool((ids[1:] >= ids[:-1]).all())  # one writer's rows: already in that order
        order = np.arange(n) if ordered else np.argsort(ids, kind="stable")
        sids = ids if ordered else ids[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = sids[1:] != sids[:-1]
        heads = order[starts]
        fault = _pair_faults(path, obs, last, heads, ids, position, col)
        if fault is not None:
            return fault
        same = ~starts[1:]
        ended = col(_FLAGS[1][0]).reshape(n, -1)[:, 0]
        ended = ended if ordered else ended[order]
        bad = same & ended[:-1]
        if bad.any():
            i = int(bad.argmax())
            return (
                f"{path}: traj {int(sids[i])} continues at row "
                f"{position + int(order[i + 1])} after its episode ended at row "
                f"{position + int(order[i])}"
            )
        for key in obs:
            nxt, cur = col(f"{K.next}.{key}"), col(key)
            if not ordered:
                nxt, cur = nxt[order], cur[order]
            broken = _unequal_rows(nxt[:-1], cur[1:])
            broken = broken[same[broken]]
            if broken.size:
                j = int(broken[0])
                return (
                    f"{path}: key 'next.{key}' of row {position + int(order[j])} "
                    f"differs from {key!r} of row {position + int(order[j + 1])}, the "
                    f"next step of traj {int(sids[j])}"
                )
        tails = np.ones(n, dtype=bool)
        tails[:-1] = starts[1:]
        tail_idx = order[tails]
        tail_next = [col(f"{K.next}.{key}")[tail_idx] for key in obs]  # a copy: the block goes
        tail_done = ended[tails].tolist()
        for j, (i, t, d) in enumerate(zip(tail_idx.tolist(), ids[tail_idx].tolist(), tail_done)):
            last[t] = (position + i, None if d else [x[j] for x in tail_next])
        return None


def ted_faults(store: Store) -> Iterator[str]:
    """:class:`TedCheck` over every block of :func:`row_blocks`; the first fault."""
    from rldata.stores.format import schema as sch

    check = TedCheck(store)
    for block in row_blocks(store):
        rows = block.rows

        def col(name: str) -> np.ndarray:
            return _np(rows.get(sch.key_tuple(name)))  # noqa: B023 (used within the iteration)

        fault = check.feed(block.position, block.n, col)
        if fault is not None:
            yield fault
            return


def _pair_faults(
    path: str,
    obs: list[str],
    last: dict[int, tuple[int, list[np.ndarray] | None]],
    heads: np.ndarray,
    ids: np.ndarray,
    position: int,
    col: Columns,
) -> str | None:
    """The first fault between a trajectory's last row of earlier blocks (``last``) and its
    first row in the block at ``position`` (at ``heads``, in trajectory order)."""

    carried = [(int(i), last[t]) for i, t in zip(heads.tolist(), ids[heads].tolist()) if t in last]
    if not carried:
        return None
    ended = np.array([row is None for _, (_, row) in carried])
    open_ = [c for c, (_, (_, row)) in enumerate(carried) if row is not None]
    at = np.array([carried[c][0] for c in open_], dtype=np.int64)
    bad_key = np.full(len(carried), len(obs))  # the first key whose link breaks, per carried row
    for k in reversed(range(len(obs))):
        if not open_:
            break
        held = np.stack([carried[c][1][1][k] for c in open_])  # type: ignore[index]
        cur = col(obs[k])[at]
        bad_key[np.array(open_)[~_equal_rows(held, cur)]] = k
    faulty = ended | (bad_key < len(obs))
    if not faulty.any():
        return None
    c = int(faulty.argmax())
    i, (pos, _) = carried[c]
    if ended[c]:
        return (
            f"{path}: traj {int(ids[i])} continues at row {position + i} after "
            f"its episode ended at row {pos}"
        )
    key = obs[int(bad_key[c])]
    return (
        f"{path}: key 'next.{key}' of row {pos} differs from {key!r} of row "
        f"{position + i}, the next step of traj {int(ids[i])}"
    )
