"""The TED invariants of a store's rows, checked block by block: flags, trajectory ids,
the next-observation links between rows and the episode index against the rows.

Split from :mod:`rldata.stores.backend.verify` (which runs it after the integrity checks)
so each module keeps one job: that one proves bytes, this one proves meaning.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from rldata import ted
from rldata.stores.backend.base import Store
from rldata.stores.backend.blocks import Block, block_rows, row_blocks, runs

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
    """``[N]``: row i of ``a`` equals row i of ``b`` (NaN equals NaN)."""
    eq = a == b
    if a.dtype.kind in "fc":
        eq |= (a != a) & (b != b)
    return eq.reshape(eq.shape[0], int(np.prod(eq.shape[1:]))).all(-1) if eq.ndim > 1 else eq


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
                    cols.append(_np(store._read_key(name, torch.arange(lo, hi))))
                    continue
                data = store._raw(name, lo, hi)  # type: ignore[attr-defined]
                if dt == torch.bfloat16:  # numpy has no bfloat16
                    flat = _np(torch.frombuffer(bytearray(data), dtype=dt))
                else:
                    flat = np.frombuffer(data, dtype=torch.empty(0, dtype=dt).numpy().dtype)
                cols.append(flat.reshape(hi - lo, *e["shape"]))
            yield offset, lo, cols
            offset += hi - lo


def episode_faults(store: Store, m: dict) -> Iterator[str]:
    """Each row's trajectory id and each segment's return against the episode index, block by
    block, reading only those two keys (:func:`_key_blocks`): a row's segment comes from the
    index's cumulative lengths, never from a per-row table."""
    seg = store.segments()  # type: ignore[attr-defined]
    lengths = seg["length"].numpy().astype(np.int64)
    total = int(lengths.sum())
    if total != len(store):
        yield f"{store.path}: episode index covers {total} rows, expected {len(store)}"
        return
    ends = np.cumsum(lengths)
    seg_ids = seg["traj_id"].numpy()
    want = seg["return"].numpy().astype(np.float64)
    returns = np.zeros(len(lengths), dtype=np.float64)
    for offset, position, (ids, reward) in _key_blocks(store, [_TRAJ, _REWARD]):
        n = len(ids)
        seg_of_row = np.searchsorted(ends, np.arange(offset, offset + n), "right")
        ids = ids.reshape(-1)
        bad = ids != seg_ids[seg_of_row]
        if bad.any():
            i = int(bad.argmax())
            yield (
                f"{store.path}: row {position + i} has traj id {int(ids[i])}, episode "
                f"index says {int(seg_ids[seg_of_row[i]])}"
            )
            return
        reward = reward.reshape(n, -1).sum(-1, dtype=np.float64)
        first = int(seg_of_row[0])  # the block's rows are consecutive: so are their segments
        part = np.bincount(seg_of_row - first, weights=reward)
        returns[first : first + len(part)] += part
    close = np.isclose(returns, want, rtol=1e-6, atol=1e-6) | (np.isnan(returns) & np.isnan(want))
    if not close.all():
        j = int((~close).argmax())
        yield (
            f"{store.path}: episode segment {j} (traj {int(seg_ids[j])}): return "
            f"{float(want[j])} in the index, {float(returns[j])} in the rows"
        )


def _obs_keys(schema: dict) -> list[str]:
    reserved = {*_FLAGS[0], ted.key_name(K.action), ted.key_name(K.reward)}
    return [
        k
        for k in schema
        if not k.startswith((K.next + ".", "collector."))
        and k not in reserved
        and f"{K.next}.{k}" in schema
    ]


def ted_faults(store: Store) -> Iterator[str]:
    """TED's invariants, block by block in write order, in numpy: the flags of each row, and
    between a row and the next row of its trajectory (sorted by trajectory within a block;
    across blocks through each open trajectory's last row). An ended trajectory keeps only
    its id and position; an open one its last row's next observations, so memory is the open
    trajectories, not the rows."""
    from rldata.stores.format import schema as sch

    obs = _obs_keys(store.schema or {})
    last: dict[int, tuple[int, list[np.ndarray] | None]] = {}  # traj -> (pos, next obs if open)
    for block in row_blocks(store):
        rows, n = block.rows, block.n

        def col(name: str) -> np.ndarray:
            return _np(rows.get(sch.key_tuple(name)))  # noqa: B023 (used within the iteration)

        for done, term, trunc in _FLAGS:
            d, t, u = (col(k).reshape(n, -1) for k in (done, term, trunc))
            bad = (d != (t | u)).any(-1)
            if bad.any():
                i = int(bad.argmax())
                yield f"{store.path}: row {block.position + i}: {done} != {term} | {trunc}"
                return
        ids = _np(rows.get(K.traj_ids)).reshape(-1)
        ordered = bool((ids[1:] >= ids[:-1]).all())  # one writer's rows: already in that order
        order = np.arange(n) if ordered else np.argsort(ids, kind="stable")
        sids = ids if ordered else ids[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = sids[1:] != sids[:-1]
        heads = order[starts]
        fault = _pair_faults(store, obs, last, heads, ids, block)
        if fault is not None:
            yield fault
            return
        same = ~starts[1:]
        ended = _np(rows.get(K.nxt(K.done))).reshape(n, -1)[:, 0]
        ended = ended if ordered else ended[order]
        bad = same & ended[:-1]
        if bad.any():
            i = int(bad.argmax())
            yield (
                f"{store.path}: traj {int(sids[i])} continues at row "
                f"{block.position + int(order[i + 1])} after its episode ended at row "
                f"{block.position + int(order[i])}"
            )
            return
        for key in obs:
            nxt, cur = col(f"{K.next}.{key}"), col(key)
            if not ordered:
                nxt, cur = nxt[order], cur[order]
            bad = same & ~_equal_rows(nxt[:-1], cur[1:])
            if bad.any():
                j = int(bad.argmax())
                yield (
                    f"{store.path}: key 'next.{key}' of row {block.position + int(order[j])} "
                    f"differs from {key!r} of row {block.position + int(order[j + 1])}, the "
                    f"next step of traj {int(sids[j])}"
                )
                return
        tails = np.ones(n, dtype=bool)
        tails[:-1] = starts[1:]
        tail_idx = order[tails]
        tail_next = [col(f"{K.next}.{key}")[tail_idx] for key in obs]  # a copy: the block goes
        tail_done = ended[tails].tolist()
        for j, (i, t, d) in enumerate(zip(tail_idx.tolist(), ids[tail_idx].tolist(), tail_done)):
            last[t] = (block.position + i, None if d else [x[j] for x in tail_next])


def _pair_faults(
    store: Store,
    obs: list[str],
    last: dict[int, tuple[int, list[np.ndarray] | None]],
    heads: np.ndarray,
    ids: np.ndarray,
    block: Block,
) -> str | None:
    """The first fault between a trajectory's last row of earlier blocks (``last``) and its
    first row in ``block`` (at ``heads``, in trajectory order)."""
    from rldata.stores.format import schema as sch

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
        cur = _np(block.rows.get(sch.key_tuple(obs[k])))[at]
        bad_key[np.array(open_)[~_equal_rows(held, cur)]] = k
    faulty = ended | (bad_key < len(obs))
    if not faulty.any():
        return None
    c = int(faulty.argmax())
    i, (pos, _) = carried[c]
    if ended[c]:
        return (
            f"{store.path}: traj {int(ids[i])} continues at row {block.position + i} after "
            f"its episode ended at row {pos}"
        )
    key = obs[int(bad_key[c])]
    return (
        f"{store.path}: key 'next.{key}' of row {pos} differs from {key!r} of row "
        f"{block.position + i}, the next step of traj {int(ids[i])}"
    )
