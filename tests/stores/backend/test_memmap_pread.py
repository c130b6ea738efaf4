"""A memmap store larger than ``RLDATA_MAP_BYTES`` is gathered with pread, not through its
mappings: the rows served are the same, and sampling leaves the sampler's resident memory
at its batch, not at the store's size (a random row read through a mapping maps the whole
page-cache folio around it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import rldata
import rldata.stores as stores
from rldata._env import map_bytes
from rldata.errors import CorruptStoreError
from rldata.testing.ted_factory import ted_batch

EPISODES = [40, 1, 25, 7, 60, 3, 90]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("pread") / "s"
    data = ted_batch(EPISODES, obs_shape=(5,))
    with stores.create(path) as w:
        w.append(data)
    return path, data


def _gathers(store) -> set[str]:
    return {type(r).__name__ for r in store._arrays.values() if r is not None}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, sum(EPISODES) - 1), min_size=0, max_size=64))
def test_pread_gathers_serve_the_rows_the_mapping_serves(recorded, positions):
    path, data = recorded
    mapped = stores.open(path)
    os.environ["RLDATA_MAP_BYTES"] = "0"  # (hypothesis runs examples outside monkeypatch)
    try:
        read = stores.open(path)
    finally:
        del os.environ["RLDATA_MAP_BYTES"]
    assert _gathers(read) == {"_PreadRows"} and _gathers(mapped) == {"_Rows"}
    at = torch.tensor(positions, dtype=torch.int64)
    got, want = read.get(at), mapped.get(at)
    for key in want.keys(True, True):
        assert torch.equal(got[key], want[key]), key
        assert torch.equal(got[key], data[at][key]), key  # stored-once next rows too


def test_a_file_cut_short_under_a_pread_reader_is_refused_in_one_line(tmp_path, monkeypatch):
    with stores.create(tmp_path / "s") as w:
        w.append(ted_batch([50, 50], obs_shape=(4,)))
    monkeypatch.setenv("RLDATA_MAP_BYTES", "0")
    store = stores.open(tmp_path / "s", verify=False)
    path = store._file("action")
    os.truncate(path, 50 * store._views["action"][0].numel() * 4)  # float32 rows 0..49 left
    with pytest.raises(CorruptStoreError, match=r"action.*short read of 2 rows"):
        store._read_key("action", torch.tensor([1, 99]))


SAMPLER = textwrap.dedent(
    """
    import sys
    import rldata

    def rss_file_kib():
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])

    buffer = rldata.load(sys.argv[1], batch_size=256, verify=False)
    before = rss_file_kib()  # the store is opened (mapped), no row read yet
    for _ in range(int(sys.argv[2])):
        buffer.sample()
    print(rss_file_kib() - before)
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="reads RssFile from /proc")
@pytest.mark.parametrize("capacity", [None, 120_000], ids=["append-only", "ring"])
def test_sampling_a_store_past_the_map_budget_keeps_its_pages_out_of_the_sampler(
    tmp_path, capacity
):
    """64 MiB of rows sampled 300 times: through mappings the sampler would map most of the
    store; with pread its mapped file pages stay a small fraction of it. A ring keeps both
    copies of each observation (a zero-copy view a buffer would otherwise gather from)."""
    rows, obs = 120_000, 128  # ~0.5 KiB of observation a row, 64 MiB in all
    path = tmp_path / "big"
    with stores.create(path, capacity=capacity) as w:
        for start in range(0, rows, 20_000):
            batch = ted_batch([1000] * 20, obs_shape=(obs,), start_traj_id=start // 1000)
            w.append(batch)
    store_bytes = sum(f.stat().st_size for f in (path / "data").rglob("*.memmap") if f.is_file())
    assert store_bytes > 60 << 20

    def grown_kib(budget: int) -> int:
        env = {**os.environ, "RLDATA_MAP_BYTES": str(budget)}
        out = subprocess.run(
            [sys.executable, "-c", SAMPLER, str(path), "300"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        return int(out.stdout.split()[-1])

    mapped, pread = grown_kib(1 << 40), grown_kib(1 << 20)
    assert pread * 1024 < store_bytes / 8, (pread, mapped, store_bytes)
    # the case the pread path exists for: through mappings the sampler maps far more
    assert mapped > 4 * max(pread, 1024), (pread, mapped, store_bytes)


def test_a_store_within_the_budget_is_gathered_through_its_mappings(recorded):
    path, _ = recorded
    assert map_bytes() >= 64 << 20  # the default: small stores keep the fastest path
    store = stores.open(path)
    assert _gathers(store) == {"_Rows"}
    batch = rldata.load(path, batch_size=8).sample()
    assert np.isfinite(batch["observation"].numpy()).all()
