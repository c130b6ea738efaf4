"""StoreDataset and to_ray_dataset: every row once per epoch across ranks and workers,
per-epoch orders, a bounded shuffle buffer, bounded memory, torch.distributed and Ray."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rldata.stores as stores
from rldata.data import StoreDataset, streaming, to_ray_dataset
from rldata.data.streaming import shard_ranges
from rldata.errors import ConfigError, MissingDependencyError
from rldata.testing.ted_factory import marked_serial, ted_marked

ROOT = Path(__file__).resolve().parents[2]
SLOW = pytest.mark.slow


def make_store(path: Path, rows: int, *, backend: str = "memmap", capacity=None, **kw) -> str:
    with stores.create(path, backend=backend, capacity=capacity, durable=False) as w:
        for a in range(0, rows, 100_000):
            w.append(ted_marked(a, min(100_000, rows - a), episode_length=50, **kw))
        w.commit()
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return make_store(tmp_path_factory.mktemp("stream") / "s", 3001)  # an uneven row count


def read_epoch(ds: StoreDataset, epoch: int, workers: int = 0) -> list[torch.Tensor]:
    ds.set_epoch(epoch)
    return [marked_serial(td) for td in ds.loader(num_workers=workers)]


# --- the plan: index math only ---------------------------------------------------------------
PLANS = list(
    itertools.product([1, 7, 64, 1000, 1001], [1, 3, 64, 250], [1, 2, 3, 4, 7], [None, 0, 5])
)


@pytest.mark.parametrize(("rows", "block", "shards", "seed"), PLANS)
def test_shards_partition_the_rows(rows, block, shards, seed):
    plans = [
        shard_ranges(rows, block, shard=k, num_shards=shards, order_seed=seed)
        for k in range(shards)
    ]
    got = torch.cat([torch.arange(a, b) for p in plans for a, b in p] or [torch.zeros(0)])
    assert sorted(got.tolist()) == list(range(rows))  # every row exactly once
    sizes = [sum(b - a for a, b in p) for p in plans]
    assert max(sizes) - min(sizes) <= 1
    for p in plans:  # each range inside one block
        assert all((b - 1) // block == a // block for a, b in p)


@pytest.mark.parametrize(("rows", "block", "shards", "seed"), PLANS)
def test_keep_gives_every_shard_the_same_rows(rows, block, shards, seed):
    keep = rows // shards
    plans = [
        shard_ranges(rows, block, shard=k, num_shards=shards, order_seed=seed, keep=keep)
        for k in range(shards)
    ]
    rows_of = [torch.cat([torch.arange(a, b) for a, b in p] or [torch.zeros(0)]) for p in plans]
    assert [len(r) for r in rows_of] == [keep] * shards
    assert len(set(torch.cat(rows_of).tolist())) == keep * shards  # still disjoint


# --- ranks x workers ---------------------------------------------------------------------------
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_row_once_across_two_ranks_of_two_workers(store, shuffle):
    per_rank = []
    for rank in (0, 1):
        ds = StoreDataset(
            store, batch_size=32, block_rows=128, shuffle=shuffle, rank=rank, world_size=2
        )
        per_rank.append(torch.cat(read_epoch(ds, epoch=3, workers=2)))
    assert set(per_rank[0].tolist()).isdisjoint(per_rank[1].tolist())
    assert sorted(torch.cat(per_rank).tolist()) == list(range(3001))
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1


def test_a_plain_dataloader_with_workers_yields_tensordicts(store):
    """``DataLoader(ds, batch_size=None, num_workers=k)`` without ``collate_fn`` works too:
    what a worker hands over is not a mapping to torch's ``default_convert``."""
    from tensordict import TensorDict
    from torch.utils.data import DataLoader

    ds = StoreDataset(store, batch_size=64, block_rows=128)
    got = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert all(isinstance(td, TensorDict) for td in got)
    assert sorted(torch.cat([marked_serial(td) for td in got]).tolist()) == list(range(3001))


def test_drop_last_gives_every_rank_the_same_whole_batches(store):
    batches = []
    for rank in (0, 1):
        ds = StoreDataset(
            store, batch_size=32, block_rows=128, drop_last=True, rank=rank, world_size=2
        )
        batches.append(read_epoch(ds, epoch=0, workers=2))
    assert len(batches[0]) == len(batches[1]) > 0
    serials = torch.cat([b for bs in batches for b in bs])
    assert all(len(b) == 32 for bs in batches for b in bs)
    assert len(set(serials.tolist())) == len(serials)  # no row twice
    assert len(serials) > 3001 - 4 * 33  # fewer than shards x (batch + 1) rows dropped


def test_ring_store_reads_its_readable_rows_once(tmp_path):
    path = make_store(tmp_path / "ring", 1000, capacity=300)
    readable = stores.open(path).readable()
    ds = StoreDataset(path, batch_size=16, rank=1, world_size=2)
    other = StoreDataset(path, batch_size=16, rank=0, world_size=2)
    got = torch.cat(read_epoch(ds, 0, workers=2) + read_epoch(other, 0))
    # marked rows hold their serial; a ring's position p holds the serial it last wrote
    serial_at = {
        int(p): int(marked_serial(stores.open(path).get(p.reshape(1)))[0]) for p in readable
    }
    assert sorted(got.tolist()) == sorted(serial_at.values())


# --- epochs and seeds ----------------------------------------------------------------------------
def test_epochs_differ_and_repeat_for_the_same_seed(store):
    def order(seed, epoch):
        ds = StoreDataset(store, batch_size=50, block_rows=100, seed=seed, rank=0, world_size=1)
        return torch.cat(read_epoch(ds, epoch)).tolist()

    e0, e1 = order(0, 0), order(0, 1)
    assert sorted(e0) == sorted(e1) == list(range(3001))
    assert e0 != e1
    assert order(0, 1) == e1
    assert order(1, 1) != e1


def test_worker_k_reads_what_shard_k_reads_alone(store):
    """The plan depends on the shard index (rank x workers + worker), not on the process."""
    ds = StoreDataset(store, batch_size=40, block_rows=100, seed=4)
    with_workers = read_epoch(ds, 2, workers=2)
    alone = []
    for k in (0, 1):
        shard = StoreDataset(store, batch_size=40, block_rows=100, seed=4, rank=k, world_size=2)
        alone += read_epoch(shard, 2)
    assert sorted(tuple(b.tolist()) for b in with_workers) == sorted(
        tuple(b.tolist()) for b in alone
    )


# --- bounded buffer -------------------------------------------------------------------------------
@pytest.mark.parametrize(("buffer", "block", "batch"), [(0, 64, 16), (100, 64, 16), (500, 37, 64)])
def test_shuffle_buffer_holds_at_most_buffer_plus_block_plus_batch(
    store, monkeypatch, buffer, block, batch
):
    read = [0]
    real_open = stores.open

    def counting_open(*args, **kwargs):
        s = real_open(*args, **kwargs)
        real_get = s.get

        def get(index):
            td = real_get(index)
            read[0] += len(td)
            return td

        s.get = get
        return s

    monkeypatch.setattr(streaming.stores, "open", counting_open)
    ds = StoreDataset(store, batch_size=batch, block_rows=block, shuffle_buffer=buffer)
    yielded, held = 0, []
    for td in ds:
        yielded += len(td)
        held.append(read[0] - yielded)
    assert yielded == read[0] == 3001
    assert max(held) <= buffer + block + batch
    assert max(held) >= buffer  # the buffer is used: rows wait there to be mixed


# --- memory ------------------------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import torch
    torch.set_num_threads(1)
    from rldata.data import StoreDataset
    from rldata.testing.ted_factory import marked_serial

    path, budget_mb = sys.argv[1], int(sys.argv[2])
    ds = StoreDataset(path, batch_size=256, block_rows=8192, shuffle_buffer=8192, verify=False)
    it = iter(ds)
    first = next(it)  # the store open, its thread pools started, one block read

    def vm():
        status = open("/proc/self/status").read()
        return int(status.split("VmSize:")[1].split()[0]) << 10

    resource.setrlimit(resource.RLIMIT_AS, (vm() + (budget_mb << 20),) * 2)
    seen = torch.zeros(ds.num_rows, dtype=torch.bool)
    seen[marked_serial(first)] = True
    for td in it:
        s = marked_serial(td)
        assert not seen[s].any(), "a row twice"
        seen[s] = True
    print(int(seen.sum()), ds.num_rows)
    """
)


@pytest.mark.parametrize(
    ("backend", "rows", "budget_mb"),
    [
        ("memmap", 300_000, 24),
        pytest.param("zarr", 1_100_000, 96, marks=SLOW),
    ],
)
def test_iterating_a_store_several_times_the_address_space_limit(
    tmp_path, backend, rows, budget_mb
):
    """Under ``RLIMIT_AS`` = the address space after the first batch + ``budget_mb``, a
    store of ``rows`` rows of ~294 decoded bytes (memmap: 88 MB, zarr: 323 MB) streams
    through whole. memmap maps its files at open (file-backed, before the limit); zarr
    maps the shards it reads in place up to ``RLDATA_MAP_BYTES`` (16 MiB here, like its
    1 MiB decoded cache, a size the user sets) and decodes every other chunk inside the limit (a 65,536-row chunk decode peaks past the ~45 MB
    seen between batches: 64 MB failed now and then, so 96 MB and a 3.4x larger store)."""
    path = make_store(tmp_path / "big", rows, backend=backend, obs_dim=17)
    env = dict(os.environ, MALLOC_ARENA_MAX="1", RLDATA_ZARR_CACHE_BYTES=str(1 << 20))
    env["RLDATA_MAP_BYTES"] = str(16 << 20)  # zarr's mapped shards: sized like its cache
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, path, str(budget_mb)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(rows), str(rows)]
    assert rows * 294 > 3 * (budget_mb << 20)  # the store is several times the budget


# --- torch.distributed -------------------------------------------------------------------------
def _rank_main(rank: int, world: int, store: str, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        ds = StoreDataset(store, batch_size=32, block_rows=128, seed=1)  # rank from the group
        ds.set_epoch(5)
        rows = torch.cat([marked_serial(td) for td in ds])
        counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([len(rows)]))
        torch.save(
            {"rank": ds.rank_and_world_size(), "rows": rows, "counts": counts}, f"{out}/{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_read_disjoint_shards(store, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(2, store, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    got = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    assert [g["rank"] for g in got] == [(0, 2), (1, 2)]
    a, b = (g["rows"].tolist() for g in got)
    assert set(a).isdisjoint(b)
    assert sorted(a + b) == list(range(3001))


# --- Ray Data ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs whose workers can import rldata; shut down after."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pandas")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


@SLOW  # starting Ray takes 20-50 s here
def test_ray_dataset_reads_every_row_once(store, local_ray):
    ds = to_ray_dataset(store, block_rows=100, override_num_blocks=4)
    obs, nxt = [], []
    for batch in ds.iter_batches(batch_size=128, batch_format="numpy"):
        obs.append(torch.from_numpy(batch["observation"][:, 0]))
        nxt.append(torch.from_numpy(batch["next.observation"][:, 0]))
    obs_all, nxt_all = torch.cat(obs), torch.cat(nxt)
    assert sorted(obs_all.long().tolist()) == list(range(3001))
    assert torch.equal(nxt_all, obs_all + 1)  # rows arrive whole
    assert "collector.traj_ids" in batch


@pytest.mark.parametrize("parallelism", [1, 3, 5, 47, 100])
def test_ray_read_tasks_split_the_blocks(store, parallelism):
    pytest.importorskip("ray.data")
    from rldata.data.ray_dataset import _new_source

    tasks = _new_source(store, 3001, 64, None, None, 1).get_read_tasks(parallelism)
    assert len(tasks) == min(parallelism, 47)  # 3001 rows are 47 blocks of 64
    assert sum(t.metadata.num_rows for t in tasks) == 3001


@SLOW
def test_ray_dataset_columns_are_the_chosen_keys(store, local_ray):
    ds = to_ray_dataset(store, keys=["observation", ("next", "reward")], block_rows=64)
    assert sorted(ds.columns()) == ["next.reward", "observation"]
    assert ds.count() == 3001


def test_missing_ray_names_the_extra(store, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(MissingDependencyError, match=r"rldata\[ray\]"):
        to_ray_dataset(store)


# --- keys and mistakes -----------------------------------------------------------------------------
def test_keys_select_flat_and_nested(store):
    ds = StoreDataset(
        store, batch_size=100, keys=["observation", ("next", "reward")], shuffle=False
    )
    td = next(iter(ds))
    assert set(td.keys(include_nested=True, leaves_only=True)) == {
        "observation",
        ("next", "reward"),
    }
    assert torch.equal(td["observation"][:, 0], td["next", "reward"][:, 0].double())


BAD = [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -3}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"batch_size": 8, "block_rows": 0}, "block_rows"),
    ({"batch_size": 8, "shuffle_buffer": -1}, "shuffle_buffer"),
    ({"batch_size": 8, "rank": 0}, "rank and world_size"),
    ({"batch_size": 8, "world_size": 2}, "rank and world_size"),
    ({"batch_size": 8, "rank": 2, "world_size": 2}, "rank"),
    ({"batch_size": 8, "rank": -1, "world_size": 2}, "rank"),
    ({"batch_size": 8, "rank": 0, "world_size": 0}, "world_size"),
    ({"batch_size": 8, "keys": ["nope"]}, "no key 'nope'"),
    ({"batch_size": 8, "keys": [("next", "nope")]}, "no key 'next.nope'"),
]


@pytest.mark.parametrize(("kwargs", "names"), BAD)
def test_a_bad_argument_is_one_line_naming_it(store, kwargs, names):
    with pytest.raises(ConfigError, match=names) as err:
        StoreDataset(store, **kwargs)
    assert "\n" not in str(err.value)


# --- the hand-over from a worker -----------------------------------------------------------------
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool]
DTYPES += [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (3,), (2, 0), (3, 4, 4)])
def test_a_batch_crosses_the_worker_pipe_unchanged(dtype, shape):
    import pickle

    from tensordict import TensorDict

    from rldata.data._stream_transport import Packed

    td = TensorDict({"odd": torch.ones(7, 1, dtype=torch.bool)}, batch_size=[7])  # 7 bytes
    td.update(ted_marked(0, 7))  # float64 keys after an odd byte count: alignment matters
    value = (torch.arange(7 * int(torch.Size(shape).numel())) % 3).reshape(7, *shape)
    td.set(("extra", "x"), value.to(dtype))
    out = pickle.loads(pickle.dumps(Packed(td)))
    assert out.batch_size == td.batch_size
    assert set(out.keys(True, True)) == set(td.keys(True, True))
    for key, v in td.items(True, True):
        assert out[key].dtype == v.dtype and torch.equal(out[key], v)
