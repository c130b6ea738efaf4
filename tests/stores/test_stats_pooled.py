"""Keys wider than MAX_FEATURES (pixels) are pooled into one feature per trajectory."""

from __future__ import annotations

import torch

from rldata.stores import stats as st


def test_pooled_records_match_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    traj = torch.tensor([3] * 20 + [7] * 30)
    got = st.of_rows({"pixels": pixels}, traj)
    for t, rows in ((3, pixels[:20]), (7, pixels[20:])):
        v = rows.double().reshape(-1)
        count, s, sq, lo, hi = got[t]["pixels"]
        assert count == v.numel()
        assert s == [v.sum().item()] and sq == [(v * v).sum().item()]
        assert lo == [v.min().item()] and hi == [v.max().item()]
