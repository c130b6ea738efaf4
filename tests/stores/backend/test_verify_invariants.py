"""The vectorised invariant checks of a full verify (:mod:`rldata.stores.backend.invariants`)
against per-row references, on drawn rows: the rows that differ between two arrays (NaN
equals NaN, -0.0 equals 0.0), and the episode index check fed in drawn blocks (segments of
any length, zero included; a wrong trajectory id anywhere; NaN rewards)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rldata.stores.backend.invariants import EpisodeCheck, _equal_rows, _unequal_rows

SPECIAL = [0.0, -0.0, np.nan, np.inf, -np.inf, 1.0]


@st.composite
def _pairs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_]))
    n = draw(st.integers(0, 40))
    width = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    if np.dtype(dtype).kind == "f":
        elements = st.one_of(st.sampled_from(SPECIAL), st.floats(-3, 3, width=32))
    else:
        elements = None
    a = draw(hnp.arrays(dtype, (n, *width), elements=elements))
    b = a.copy()
    for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=6)) if n else []:
        new = draw(hnp.arrays(dtype, width, elements=elements))
        b[i] = new
    if np.dtype(dtype).kind == "f" and n:  # same values, other bits: -0.0 and a NaN payload
        flat = b.reshape(-1)
        flat[flat == 0] = -flat[flat == 0]
    return a, b


@settings(max_examples=300, deadline=None)
@given(_pairs())
def test_unequal_rows_are_the_rows_equal_rows_refuses(pair):
    a, b = pair
    want = np.flatnonzero(~_equal_rows(a, b))
    got = _unequal_rows(a, b)
    assert got.tolist() == want.tolist()


class _Index:
    """A store's episode index, as :class:`EpisodeCheck` reads it."""

    path = "store"

    def __init__(self, lengths, ids, returns):
        self._seg = {
            "length": torch.tensor(lengths, dtype=torch.int64),
            "traj_id": torch.tensor(ids, dtype=torch.int64),
            "return": torch.tensor(returns, dtype=torch.float64),
        }
        self._len = int(sum(lengths))

    def segments(self):
        return self._seg

    def __len__(self):
        return self._len


def _reference(lengths, ids, want, rows_ids, rewards, cuts, position):
    """The first fault, searching each row's segment (the check before vectorising)."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    returns = np.zeros(len(lengths))
    for a, b in zip(cuts[:-1], cuts[1:]):
        seg = np.searchsorted(ends, np.arange(a, b), "right")
        bad = rows_ids[a:b] != np.asarray(ids)[seg]
        if bad.any():
            i = int(bad.argmax())
            return (
                f"store: row {position + a + i} has traj id {int(rows_ids[a + i])}, "
                f"episode index says {int(ids[seg[i]])}"
            )
        np.add.at(returns, seg, rewards[a:b].astype(np.float64))
    w = np.asarray(want)
    close = np.isclose(returns, w, rtol=1e-6, atol=1e-6) | (np.isnan(returns) & np.isnan(w))
    if close.all():
        return None
    j = int((~close).argmax())
    return (
        f"store: episode segment {j} (traj {int(ids[j])}): return {float(w[j])} in the "
        f"index, {float(returns[j])} in the rows"
    )


@st.composite
def _episodes(draw):
    lengths = draw(st.lists(st.integers(0, 9), min_size=1, max_size=12))
    n = sum(lengths)
    ids = list(range(len(lengths)))
    rows_ids = np.repeat(np.asarray(ids, dtype=np.int64), lengths)
    rewards = np.asarray(
        draw(st.lists(st.sampled_from([0.5, -1.0, 2.0, np.nan]), min_size=n, max_size=n)),
        dtype=np.float32,
    )
    want = [float(rewards[a : a + k].astype(np.float64).sum()) for a, k in _spans(lengths)]
    if draw(st.booleans()) and n:  # a wrong trajectory id
        rows_ids[draw(st.integers(0, n - 1))] += draw(st.integers(1, 3))
    if draw(st.booleans()):  # a wrong return
        want[draw(st.integers(0, len(want) - 1))] += 1.0
    inner = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=5))))
    cuts = [0, *[c for c in inner if 0 < c < n], n]
    return lengths, ids, want, rows_ids, rewards, cuts


def _spans(lengths):
    a = 0
    for k in lengths:
        yield a, k
        a += k


@settings(max_examples=300, deadline=None)
@given(_episodes(), st.integers(0, 1000))
def test_episode_check_in_blocks_matches_the_per_row_search(case, position):
    lengths, ids, want, rows_ids, rewards, cuts = case
    check = EpisodeCheck(_Index(lengths, ids, want))
    assert check.fault is None
    got = None
    for a, b in zip(cuts[:-1], cuts[1:]):
        cols = {
            "collector.traj_ids": rows_ids[a:b],
            "next.reward": rewards[a:b].reshape(-1, 1),
        }
        got = check.feed(a, position + a, cols.__getitem__)
        if got is not None:
            break
    if got is None:
        got = check.finish()
    assert got == _reference(lengths, ids, want, rows_ids, rewards, cuts, position)
