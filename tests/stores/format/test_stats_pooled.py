"""Keys wider than MAX_FEATURES (pixels) are pooled into one feature per trajectory."""

from __future__ import annotations

import torch

from rldata.stores.format import stats as st


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


def test_pooled_sums_are_exact_for_signed_integers_and_close_for_floats_across_slices():
    g = torch.Generator().manual_seed(1)
    wide = {
        "depth": torch.randint(-30000, 30000, (1100, 80), generator=g, dtype=torch.int16),
        "features": torch.randn(1100, 80, generator=g),
    }
    traj = torch.tensor([0] * 600 + [1] * 500)  # more rows than one 1024-row slice
    got = st.of_rows(wide, traj)
    for key, values in wide.items():
        for t, rows in ((0, values[:600]), (1, values[600:])):
            v = rows.double().reshape(-1)
            count, s, sq, lo, hi = got[t][key]
            assert count == v.numel() and lo == [v.min().item()] and hi == [v.max().item()]
            if key == "depth":  # integers: exact
                assert s == [v.sum().item()] and sq == [(v * v).sum().item()]
            else:
                assert abs(s[0] - v.sum().item()) < 1e-6 * v.abs().sum().item()
                assert abs(sq[0] - (v * v).sum().item()) < 1e-9 * (v * v).sum().item()
