"""The shuffle buffer of StoreDataset: the same batches, in the same order, as permuting the
buffered rows themselves (the buffer up to 41b6ef6), in bounded memory."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import tensordict
import torch

import rldata.stores as stores
from rldata.data import StoreDataset
from rldata.data._stream_shuffle import ShuffleBuffer, peak_rows
from rldata.data.streaming import _mix
from rldata.testing.ted_factory import marked_serial, ted_marked


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("shuffle") / "s"
    with stores.create(path, durable=False) as w:
        w.append(ted_marked(0, 3001, episode_length=50))  # an uneven row count
        w.commit()
    return str(path)


def permuting_rows(ds: StoreDataset, index: int = 0):
    """The batches of shard ``index``, computed as the shuffle buffer was first written: the
    buffered rows concatenated with each block and permuted as a whole."""
    gen = torch.Generator().manual_seed(_mix(ds.seed, ds.epoch, index + 1))
    bs, buffer = ds.batch_size, None
    with stores.open(ds.path) as store:
        for a, b in ds.ranges():
            rows = ds._read(store, a, b)
            buffer = rows if buffer is None else tensordict.cat([buffer, rows], 0)
            if ds.shuffle:
                buffer = buffer[torch.randperm(len(buffer), generator=gen)]
                n = (len(buffer) - ds.shuffle_buffer) // bs
            else:
                n = len(buffer) // bs
            if n > 0:
                yield from buffer[: n * bs].split(bs)
                buffer = buffer[n * bs :]
    if buffer is None or len(buffer) == 0:
        return
    if ds.shuffle:
        buffer = buffer[torch.randperm(len(buffer), generator=gen)]
    end = len(buffer) - len(buffer) % bs if ds.drop_last else len(buffer)
    if end:
        yield from buffer[:end].split(bs)


CASES = list(
    itertools.product(
        [7, 64, 300],  # batch
        [37, 3001],  # block rows
        [0, 500],  # shuffle buffer
        [True, False],  # shuffle
        [True, False],  # drop_last
    )
) + [(1, 128, 50, True, False), (3001, 128, 50, True, True), (4000, 128, 50, True, False)]


@pytest.mark.parametrize(("batch", "block", "buffer", "shuffle", "drop_last"), CASES)
def test_batches_equal_permuting_the_rows_themselves(
    store, batch, block, buffer, shuffle, drop_last
):
    ds = StoreDataset(
        store,
        batch_size=batch,
        block_rows=block,
        shuffle_buffer=buffer,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=3,
    )
    ds.set_epoch(2)
    got, want = list(ds), list(permuting_rows(ds))
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert g.batch_size == w.batch_size
        assert set(g.keys(True, True)) == set(w.keys(True, True))
        for key, value in w.items(True, True):
            assert g[key].dtype == value.dtype and torch.equal(g[key], value), key


def test_selected_keys_shuffle_the_same_way(store):
    kw = {"batch_size": 16, "block_rows": 100, "keys": ["observation", ("next", "reward")]}
    ds = StoreDataset(store, **kw)
    got, want = list(ds), list(permuting_rows(ds))
    assert [td["observation"][:, 0].tolist() for td in got] == [
        td["observation"][:, 0].tolist() for td in want
    ]
    assert set(got[0].keys(True, True)) == {"observation", ("next", "reward")}


@pytest.mark.parametrize("shuffle", [True, False])
def test_peak_rows_is_the_most_the_buffer_holds(shuffle):
    sizes, bs, keep = [37, 100, 100, 5, 100, 63], 16, 120
    held, most = 0, 0
    for m in sizes:  # the loop StoreDataset._runs runs
        held += m
        most = max(most, held)
        n = (held - (keep if shuffle else 0)) // bs
        held -= max(n, 0) * bs
    assert peak_rows(sizes, bs, keep, shuffle=shuffle) == most
    assert peak_rows(sizes, bs, keep, shuffle=True) >= peak_rows(sizes, bs, keep, shuffle=False)


def test_rows_are_written_once_and_slots_are_reused():
    buf = ShuffleBuffer(6, torch.Generator().manual_seed(0))
    buf.add({("x",): torch.arange(6.0)}, 6)
    first = buf.take(4)[("x",)]
    buf.add({("x",): torch.arange(6.0, 10.0)}, 4)  # into the 4 freed slots
    rest = buf.take(len(buf))[("x",)]
    assert sorted(torch.cat([first, rest]).tolist()) == list(range(10))
    assert buf.data[("x",)].shape == (6,)  # the 6 slots held all 10 rows
    assert sorted(buf.data[("x",)].tolist()) == sorted(rest.tolist())  # what was left


def test_more_rows_than_the_capacity_is_refused():
    buf = ShuffleBuffer(4, None)
    buf.add({("x",): torch.zeros(3)}, 3)
    with pytest.raises(RuntimeError, match="5 rows exceed its capacity 4"):
        buf.add({("x",): torch.zeros(2)}, 2)


def test_take_gathers_into_the_given_arrays():
    buf = ShuffleBuffer(8, None)
    buf.add({("a",): torch.arange(8).reshape(8, 1), ("b", "c"): torch.arange(8.0)}, 8)
    out = {("a",): torch.full((3, 1), -1), ("b", "c"): torch.full((3,), -1.0)}
    got = buf.take(3, out=out)
    assert got is out
    assert out[("a",)].flatten().tolist() == [0, 1, 2]
    assert out[("b", "c")].tolist() == [0.0, 1.0, 2.0]


def test_an_epoch_through_the_buffer_is_every_row_once(store):
    ds = StoreDataset(store, batch_size=33, block_rows=64, shuffle_buffer=200)
    serials = torch.cat([marked_serial(td) for td in ds])
    assert sorted(serials.tolist()) == list(range(3001))
    assert serials.tolist() != list(range(3001))  # shuffled


def test_a_ring_store_reads_the_same_as_permuting_rows(tmp_path):
    path = Path(tmp_path) / "ring"
    with stores.create(path, capacity=300, durable=False) as w:
        w.append(ted_marked(0, 1000, episode_length=50))
        w.commit()
    ds = StoreDataset(path, batch_size=16, block_rows=64, shuffle_buffer=100)
    got, want = list(ds), list(permuting_rows(ds))
    assert [marked_serial(td).tolist() for td in got] == [marked_serial(td).tolist() for td in want]
