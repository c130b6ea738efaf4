"""Quantile sketches: within 2% of the exact quantile, merged exactly, recorded at each commit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rldata.stores as stores
from rldata.stores.format import stats as st
from rldata.testing.ted_factory import ted_marked


def _exact_lower(x: np.ndarray, q: float) -> float:
    return float(np.sort(x)[int(q * (x.size - 1))])


@pytest.mark.parametrize(
    "draw",
    [
        lambda g: g.normal(0.0, 3.0, 20_000),
        lambda g: g.lognormal(0.0, 0.5, 20_000),
        lambda g: -g.uniform(0.5, 50.0, 20_000),
    ],
    ids=["normal", "lognormal", "negative"],
)
def test_quantiles_within_two_percent(draw) -> None:
    x = draw(np.random.default_rng(0))
    x = x[np.abs(x) > 0.2]  # a range of < 1.04**128 = 150x: no bucket is folded
    sketch = st.sketch_of({"k": torch.from_numpy(x)})["k"][0]
    for q in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
        got, want = st.quantile(sketch, q), _exact_lower(x, q)
        assert got is not None and abs(got - want) <= 0.0201 * abs(want), (q, got, want)


def test_merge_equals_the_sketch_of_the_union() -> None:
    g = np.random.default_rng(1)
    parts = [
        g.normal(0, 1, 1000) * 10.0 ** g.integers(-9, 6, 1000),  # wide: buckets get folded
        g.normal(5, 1, 700),
        np.zeros(10),
        np.array([np.nan, np.inf, 1e9]),
    ]
    sketches = [st.sketch_of({"k": torch.from_numpy(p[:, None])}) for p in parts]
    merged: dict = {}
    for s in sketches[::-1]:
        merged = st.merge_sketches(merged, s)
    union = st.sketch_of({"k": torch.from_numpy(np.concatenate(parts)[:, None])})
    assert merged == union
    side = union["k"][0]["pos"]
    assert len(side[1]) == st.MAX_BINS  # the fold was exercised


@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
def test_commits_record_the_sketch_of_every_row(tmp_path, backend) -> None:
    root = tmp_path / "s"
    with stores.create(root, backend=backend) as w:
        for k in range(3):
            w.append(ted_marked(k * 17, 17))
            w.commit()
    r = stores.open(root)
    rows = r.get(r.readable())
    keys = st.numeric_keys(r.schema)
    want = st.sketch_of({k: rows.get(tuple(k.split("."))) for k in keys})
    assert r.manifest["quantiles"] == want
    stats = r.stats()
    assert stats["next.reward"]["quantiles"]["0.5"] == [st.quantile(want["next.reward"][0], 0.5)]


def test_a_ring_computes_quantiles_from_its_rows(tmp_path) -> None:
    with stores.create(tmp_path / "ring", capacity=40) as w:
        w.append(ted_marked(0, 60))
    r = stores.open(tmp_path / "ring")
    assert "quantiles" not in r.manifest
    rows = r.get(r.readable())
    sketch = st.sketch_of({"observation": rows["observation"]})["observation"]
    assert r.stats()["observation"]["quantiles"]["0.95"] == [st.quantile(s, 0.95) for s in sketch]


def test_merged_dataset_quantiles_are_the_merge_of_the_sources(tmp_path) -> None:
    from rldata.sharing import merge

    for name, first in (("a", 0), ("b", 100)):
        with stores.create(tmp_path / name, backend="zarr") as w:
            w.append(ted_marked(first, 30))
    merge([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "m"))
    a, b, m = (stores.open(tmp_path / n) for n in "abm")
    assert m.manifest["quantiles"] == st.merge_sketches(
        a.manifest["quantiles"], b.manifest["quantiles"]
    )
