"""How StoreDataset's rows cross from DataLoader workers: a run in one shared-memory segment
rebuilt as views, every row once per epoch, the same batches as the per-batch hand-over."""

from __future__ import annotations

import io
import platform
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers torch's reductions on ForkingPickler)
from tensordict import TensorDict
from torch.utils.data import DataLoader

import rldata.stores as stores
from rldata.data import StoreDataset
from rldata.data._stream_transport import ALIGN, SharedRun, offsets, warm_heap
from rldata.testing.ted_factory import marked_serial, ted_marked

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool]
DTYPES += [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def make_store(path, rows: int) -> str:
    with stores.create(path, durable=False) as w:
        w.append(ted_marked(0, rows, episode_length=50))
        w.commit()
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return make_store(tmp_path_factory.mktemp("transport") / "s", 3001)  # an uneven count


def through_a_pipe(obj):
    """What a DataLoader worker's queue does to ``obj``: torch's pickler, then unpickling."""
    buf = io.BytesIO()
    ForkingPickler(buf).dump(obj)
    return ForkingPickler.loads(buf.getvalue())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (3,), (2, 0), (3, 4, 4)])
@pytest.mark.parametrize("rows", [0, 1, 7])
def test_a_run_crosses_as_views_of_one_shared_segment(dtype, shape, rows):
    td = TensorDict({"odd": torch.ones(rows, 1, dtype=torch.bool)}, batch_size=[rows])
    td.update(ted_marked(0, rows) if rows else {})
    value = (torch.arange(rows * int(torch.Size(shape).numel())) % 3).reshape(rows, *shape)
    td.set(("extra", "x"), value.to(dtype))
    leaves = {k if isinstance(k, tuple) else (k,): v for k, v in td.items(True, True)}
    run = SharedRun.allocate([(k, v.dtype, tuple(v.shape[1:])) for k, v in leaves.items()], rows)
    for k, v in leaves.items():
        run.columns[k].copy_(v)
    assert run.buf.untyped_storage().is_shared()  # made in shared memory: no copy to send
    out = through_a_pipe(run)
    assert isinstance(out, TensorDict) and out.batch_size == td.batch_size
    assert set(out.keys(True, True)) == set(td.keys(True, True))
    storages = set()
    for key, v in td.items(True, True):
        assert out[key].dtype == v.dtype and torch.equal(out[key], v), key
        if out[key].numel():
            storages.add(out[key].untyped_storage().data_ptr())
            assert out[key].data_ptr() % ALIGN == 0  # every key starts aligned
    assert len(storages) <= 1  # every key a view of the one segment
    out["extra", "x"].zero_()  # writable


def test_offsets_align_every_key():
    layout = [(("a",), torch.bool, (1,)), (("b",), torch.float64, (3,)), (("c",), torch.int8, ())]
    starts, size = offsets(layout, 5)
    assert starts == [0, 64, 192]
    assert size == 192 + 64


@pytest.mark.parametrize("rows", [1, 255, 3001])
@pytest.mark.parametrize("batch", [1, 64, 256, 4096])
@pytest.mark.parametrize("shuffle", [True, False])
def test_two_workers_yield_every_row_once(tmp_path, rows, batch, shuffle):
    if batch == 1 and rows == 3001:
        pytest.skip("3001 batches of one row: slow and covered by the smaller stores")
    path = make_store(tmp_path / "s", rows)
    ds = StoreDataset(path, batch_size=batch, block_rows=100, shuffle=shuffle, seed=7)
    ds.set_epoch(1)
    got = list(ds.loader(num_workers=2))
    serials = torch.cat([marked_serial(td) for td in got])
    assert sorted(serials.tolist()) == list(range(rows))
    assert sum(len(td) < batch for td in got) <= 2  # only each shard's last batch is short


def by_content(batches):
    return sorted(batches, key=lambda td: marked_serial(td).tolist())


@pytest.mark.parametrize("batch", [32, 100, 4096])
def test_runs_give_the_batches_of_the_per_batch_hand_over(store, batch):
    """``ds.loader(2)`` (a run a segment, cut in the main process) and a plain ``DataLoader``
    (a batch at a time through the pipe) yield the same batches for the same seed."""
    ds = StoreDataset(store, batch_size=batch, block_rows=128, shuffle_buffer=300, seed=11)
    ds.set_epoch(4)
    runs = by_content(ds.loader(num_workers=2))
    batches = by_content(DataLoader(ds, batch_size=None, num_workers=2))
    assert len(runs) == len(batches) > 0
    for a, b in zip(runs, batches, strict=True):
        assert a.batch_size == b.batch_size
        for key, value in b.items(True, True):
            assert a[key].dtype == value.dtype and torch.equal(a[key], value), key


def test_epochs_through_workers_repeat_for_the_same_seed(store):
    def epoch(e):
        ds = StoreDataset(store, batch_size=64, block_rows=128, seed=2)
        ds.set_epoch(e)
        return [marked_serial(td).tolist() for td in ds.loader(num_workers=2)]

    assert epoch(3) == epoch(3)
    assert epoch(3) != epoch(4)


def test_workers_keep_freed_memory_on_glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert warm_heap() is True


def test_persistent_workers_read_each_epoch_set_since(store):
    """Workers kept across epochs see ``set_epoch``: each epoch is the epoch new workers
    read, and each holds every row once."""
    kept = StoreDataset(store, batch_size=64, block_rows=128, seed=5)
    loader = kept.loader(num_workers=2, persistent_workers=True)
    pids = []
    for e in (0, 1, 0, 7):
        kept.set_epoch(e)
        got = [marked_serial(td).tolist() for td in loader]
        pids.append(tuple(w.pid for w in loader._loader._iterator._workers))
        fresh = StoreDataset(store, batch_size=64, block_rows=128, seed=5)
        fresh.set_epoch(e)
        assert got == [marked_serial(td).tolist() for td in fresh.loader(num_workers=2)], e
        assert sorted(sum(got, [])) == list(range(3001))
    assert len(set(pids)) == 1  # the same two processes read all four epochs


def test_the_epoch_survives_pickling(store):
    import pickle

    ds = StoreDataset(store, batch_size=64)
    ds.set_epoch(9)
    assert pickle.loads(pickle.dumps(ds)).epoch == 9
    assert through_a_pipe(ds).epoch == 9


def test_loader_keeps_its_workers_unless_told_not_to(store):
    ds = StoreDataset(store, batch_size=64, block_rows=128)
    assert ds.loader(num_workers=2).kwargs["persistent_workers"] is True
    assert ds.loader(num_workers=2, persistent_workers=False).kwargs["persistent_workers"] is False
    assert "persistent_workers" not in ds.loader().kwargs  # no workers: DataLoader refuses it
    loader = ds.loader(num_workers=2)
    first = sorted(sum((marked_serial(td).tolist() for td in loader), []))
    pids = [w.pid for w in loader._loader._iterator._workers]
    ds.set_epoch(1)
    again = sorted(sum((marked_serial(td).tolist() for td in loader), []))
    assert first == again == list(range(3001))
    assert [w.pid for w in loader._loader._iterator._workers] == pids
