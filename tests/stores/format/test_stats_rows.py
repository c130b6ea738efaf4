"""A commit's per-trajectory records equal those of each trajectory's rows taken alone,
whatever the order trajectories interleave in (several envs), and with non-finite values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rldata.stores.format.stats import MAX_FEATURES, of_rows

values = st.sampled_from([0.0, -1.5, 2.25, 1e300, -1e-300, math.inf, -math.inf, math.nan])


def _reference(columns: dict[str, torch.Tensor], traj: torch.Tensor) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for t in sorted(set(traj.tolist())):
        rows = (traj == t).nonzero().reshape(-1)
        out[t] = {}
        for key, v in columns.items():
            x = v[rows].reshape(len(rows), -1).to(torch.float64).numpy()
            if x.shape[1] > MAX_FEATURES:  # pooled: one feature over every value
                x = x.reshape(-1, 1)
            with np.errstate(all="ignore"):
                out[t][key] = [x.shape[0], x.sum(0), (x * x).sum(0), x.min(0), x.max(0)]
    return out


@pytest.mark.filterwarnings("error::RuntimeWarning")  # nothing for a user's log
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=40),
    st.data(),
)
def test_records_equal_each_trajectorys_rows_alone(traj_ids, data):
    n = len(traj_ids)
    traj = torch.tensor(traj_ids, dtype=torch.int64)
    obs = torch.tensor(data.draw(st.lists(values, min_size=3 * n, max_size=3 * n))).reshape(n, 3)
    columns = {
        "observation": obs,
        "action": torch.tensor(data.draw(st.lists(st.integers(-9, 9), min_size=n, max_size=n))),
        "pixels": torch.arange(n * 70, dtype=torch.uint8).reshape(n, 70),
        "reward": obs[:, :1].to(torch.bfloat16),  # a dtype numpy lacks
    }
    got, want = of_rows(columns, traj), _reference(columns, traj)
    assert got.keys() == want.keys()
    for t in want:
        for key, (count, s, sq, lo, hi) in want[t].items():
            g = got[t][key]
            assert g[0] == count, (t, key)
            for a, b in zip(g[1:], (s, sq, lo, hi)):
                assert np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True), (t, key, a, b)


def test_no_rows_have_no_records():
    assert of_rows({"observation": torch.zeros(0, 3)}, torch.zeros(0, dtype=torch.int64)) == {}
