"""fill_implied: implied rows take the following row of ``cur``, explicit rows keep theirs,
whichever of its two ways (a gather, or a shifted copy) it takes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rldata.stores.backend._columns import fill_implied


def reference(cur: np.ndarray, nxt: np.ndarray, implied: np.ndarray) -> np.ndarray:
    out = nxt.copy()
    for i in np.flatnonzero(implied):
        out[i] = cur[i + 1]
    return out


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 40),
    extra=st.integers(0, 1),
    mask_short=st.integers(0, 3),
    density=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    width=st.sampled_from([(), (3,), (2, 2)]),
    dtype=st.sampled_from([np.float32, np.uint8, np.int64, np.bool_]),
    as_int_mask=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matches_a_row_by_row_reference(
    n, extra, mask_short, density, width, dtype, as_int_mask, seed
):
    rng = np.random.default_rng(seed)
    cur = rng.integers(0, 100, size=(n + extra, *width)).astype(dtype)
    nxt = rng.integers(100, 200, size=(n, *width)).astype(dtype)
    implied = rng.random(max(0, n - mask_short)) < density
    mask = implied.astype(np.uint8) if as_int_mask else implied
    rows = np.flatnonzero(implied)
    if rows.size and rows[-1] + 1 >= len(cur):
        with pytest.raises(IndexError):
            fill_implied(cur, nxt, mask)
        return
    want = reference(cur, nxt, implied)
    fill_implied(cur, nxt, mask)
    assert np.array_equal(nxt, want)
