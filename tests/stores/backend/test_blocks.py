"""row_blocks, the one streaming reader, and the whole-store passes built on it (verify, the
dataset card, the content digest, convert) in memory that does not grow with the rows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rldata.stores as stores
from rldata.stores.backend.blocks import BLOCK_BYTES, block_rows, row_blocks
from rldata.stores.format import schema as sch
from rldata.testing.ted_factory import marked_serial, ted_marked

ROOT = Path(__file__).resolve().parents[3]
SLOW = pytest.mark.slow


def make_store(path: Path, rows: int, *, backend: str = "memmap", capacity=None, **kw) -> str:
    with stores.create(path, backend=backend, capacity=capacity, durable=False) as w:
        for a in range(0, rows, 100_000):
            w.append(ted_marked(a, min(100_000, rows - a), episode_length=50, **kw))
            w.commit()
    return str(path)


@pytest.mark.parametrize("backend", ["memmap", "zarr", "parquet"])
@pytest.mark.parametrize(
    ("rows", "capacity", "step"),
    [(1, None, 7), (777, None, 64), (1000, 300, 97), (1000, 300, None)],
)
def test_blocks_are_the_readable_rows_in_write_order(tmp_path, backend, rows, capacity, step):
    cls = stores.backend.registry.load(backend)
    if capacity is not None and not getattr(cls, "supports_overwrite_rings", True):
        pytest.skip(f"{backend} keeps no rings")
    path = make_store(tmp_path / "s", rows, backend=backend, capacity=capacity)
    with stores.open(path) as s:
        want = s.get(s.readable())
        blocks = list(row_blocks(s, step))
        assert all(0 < b.n <= block_rows(s, step) for b in blocks)
        assert [b.offset for b in blocks] == [
            sum(x.n for x in blocks[:i]) for i in range(len(blocks))
        ]
        got = torch.cat([marked_serial(b.rows) for b in blocks])
        assert got.tolist() == marked_serial(want).tolist()
        for b in blocks:  # each block is the rows at its contiguous positions
            pos = torch.arange(b.position, b.position + b.n)
            assert marked_serial(s.get(pos)).tolist() == marked_serial(b.rows).tolist()


def test_a_sharded_store_yields_its_shards_in_order(tmp_path):
    from rldata.stores.backend._sharded import shard_name, write_parent

    root = tmp_path / "sh"
    root.mkdir()
    for k, (a, n) in enumerate([(0, 125), (125, 75)]):
        with stores.create(root / shard_name(k), durable=False) as w:
            w.append(ted_marked(a, n, episode_length=25))
            w.commit()
    write_parent(root, [shard_name(0), shard_name(1)])
    with stores.open(root) as s:
        blocks = list(row_blocks(s, 50))
        got = torch.cat([marked_serial(b.rows) for b in blocks])
        assert got.tolist() == marked_serial(s.get(s.readable())).tolist()
        assert [b.position for b in blocks] == [b.offset for b in blocks]


def test_a_block_never_holds_more_than_block_bytes(tmp_path):
    path = make_store(tmp_path / "s", 300, obs_dim=4096)  # ~32 KB a row
    with stores.open(path) as s:
        n = block_rows(s, 10_000)
        assert n < 10_000
        assert all(b.n <= n for b in row_blocks(s, 10_000))
        assert n * 2 * 4096 * 4 <= BLOCK_BYTES


# --- bounded memory ----------------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, threading
    import torch
    torch.set_num_threads(1)
    threading.stack_size(1 << 20)
    from rldata import stores
    from rldata.sharing.card import dataset_card
    from rldata.sharing.digest import store_digest
    from rldata.stores.interop.convert import convert

    path, out, budget_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = stores.open(path, verify=False)  # memmap maps its files here, before the limit
    small = sys.argv[4]  # a small store: every code path and pool started once
    dataset_card(small)
    stores.verify(stores.open(small, verify=False))
    convert(small, out + "-warm", backend="zarr")

    def vm():
        status = open("/proc/self/status").read()
        return int(status.split("VmSize:")[1].split()[0]) << 10

    resource.setrlimit(resource.RLIMIT_AS, (vm() + (budget_mb << 20),) * 2)
    assert stores.verify(store) == []
    digest = stores.content_digest(store)
    print("verify", "digest")
    if store.backend != "memmap":  # these open their own handles: a memmap maps the store again
        card = dataset_card(path)
        assert card["check"] == "ok" and card["content_digest"] == digest, card["check"]
        assert store_digest(path) == digest
        convert(path, out, backend="zarr")
        print("card", "convert")
    """
)


@pytest.mark.parametrize(
    ("backend", "rows", "obs_dim", "budget_mb"),
    [
        # memmap: ~4 checksum chunks of a stored-once next key (~9 MB each) are in flight
        pytest.param("memmap", 800_000, 17, 64, marks=SLOW),
        pytest.param("memmap", 1_500_000, 17, 96, marks=SLOW),
        # zarr keeps a few decoded chunks (~16 MB each) whatever the cache size: a larger budget
        pytest.param("zarr", 1_500_000, 17, 128, marks=SLOW),
    ],
)
def test_whole_store_passes_under_an_address_space_limit(
    tmp_path, backend, rows, obs_dim, budget_mb
):
    """Under ``RLIMIT_AS`` = the address space once the store is open + ``budget_mb``, verify,
    the content digest, the dataset card, ``store_digest`` and convert pass a store of
    ``rows`` rows, several times the budget (memmap's files are mapped before the limit: the
    passes that open their own handle run on zarr)."""
    path = make_store(tmp_path / "big", rows, backend=backend, obs_dim=obs_dim)
    small = make_store(tmp_path / "small", 3000, backend=backend, obs_dim=obs_dim)
    with stores.open(path) as s:
        decoded = rows * sum(sch.row_bytes(e) for e in s.schema.values())
    env = dict(os.environ, MALLOC_ARENA_MAX="1", RLDATA_ZARR_CACHE_BYTES=str(1 << 20))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, path, str(tmp_path / "copy"), str(budget_mb), small],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    done = out.stdout.split()
    assert done[:2] == ["verify", "digest"]
    if backend != "memmap":
        assert done[2:] == ["card", "convert"]
        with stores.open(tmp_path / "copy") as c:
            assert len(c) == rows
    assert decoded > 3 * (budget_mb << 20)  # the store is several times the budget


@pytest.mark.parametrize("interleave", [False, True])
def test_verify_finds_a_broken_link_across_blocks(tmp_path, monkeypatch, interleave):
    """With blocks of a few rows, a next observation that differs from the next step of its
    trajectory is found wherever it lies (within a block, across blocks, interleaved
    trajectories), and a sound store has no fault."""
    from rldata.stores.backend import blocks

    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)  # 7 rows a block
    td = ted_marked(0, 60, episode_length=20)
    if interleave:  # rows of trajectories 0 and 1 alternate
        td = td[
            torch.tensor(
                [i for pair in zip(range(20), range(20, 40)) for i in pair] + list(range(40, 60))
            )
        ]
    ids = td.get(("collector", "traj_ids")).tolist()
    last_of = {t: max(i for i, x in enumerate(ids) if x == t) for t in set(ids)}
    for p in [None, *range(0, 60, 7)]:
        bad = td.clone()
        if p is not None:
            bad.get(("next", "observation"))[p] += 1000
        path = tmp_path / f"s{p}"
        with stores.create(path, durable=False) as w:
            w.append(bad)
            w.commit()
        with stores.open(path, verify=False) as s:
            assert block_rows(s) < 10
            faults = [f for f in stores.verify(s, checksums=False) if "differs" in f]
        if p is None or last_of[ids[p]] == p:
            assert faults == []
        else:
            assert len(faults) == 1 and f"of row {p} differs" in faults[0], faults
