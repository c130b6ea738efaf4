"""A memmap batch planned once per mapping (``_memmap_gather._Batch``) serves, bit for bit,
the rows that were written and what the general read path serves: any positions
(duplicates, first and last rows, block edges), every storable dtype, ``next`` rebuilt
from a key stored once, rings, and a handle that remaps after a commit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend._memmap_gather import _Batch
from rldata.testing.ted_factory import assert_same_bits, ted_batch

# every dtype a schema may hold; bfloat16 has no numpy dtype, so a store holding it
# takes the general path for every batch (its own fixture below)
EXTRA = {
    "f64": (torch.float64, (2,)),
    "f16": (torch.float16, (3,)),
    "i32": (torch.int32, ()),
    "i16": (torch.int16, (1,)),
    "i8": (torch.int8, (2, 2)),
    "u8": (torch.uint8, (3, 4, 4)),
    "c64": (torch.complex64, (1,)),
    "c128": (torch.complex128, ()),
}
# short episodes put several explicit next rows in one bucket of the finder's table
LENGTHS = [1, 2, 1, 700, 3, 1, 1, 260, 1024, 5, 1, 40, 600, 1, 1, 2]
PIECES = 3  # appended and committed in this many pieces


def _rows(lengths, obs_dtype=torch.float32, extra=EXTRA, seed=0) -> object:
    td = ted_batch(lengths, obs_shape=(5,), obs_dtype=obs_dtype, extra=True)
    g = torch.Generator().manual_seed(seed)
    n = td.shape[0]
    for name, (dtype, shape) in extra.items():
        raw = torch.randn((n, *shape), generator=g, dtype=torch.float64) * 100
        if dtype.is_complex:
            td["more", name] = torch.complex(raw, -raw).to(dtype)
        elif dtype.is_floating_point:
            td["more", name] = raw.to(dtype)
        else:
            info = torch.iinfo(dtype)
            td["more", name] = raw.clamp(info.min, info.max).to(dtype)
    return td


def _write(root, data, capacity=None) -> None:
    n = data.shape[0]
    cuts = [n * i // PIECES for i in range(PIECES + 1)]
    with stores.create(root, durable=False, capacity=capacity) as w:
        for a, b in zip(cuts, cuts[1:]):
            w.append(data[a:b])
            w.commit()


@pytest.fixture(scope="module", params=[torch.float32, torch.uint8, torch.float64, torch.int64])
def written(request, tmp_path_factory):
    data = _rows(LENGTHS, obs_dtype=request.param)
    root = tmp_path_factory.mktemp("batch") / "s"
    _write(root, data)
    return root, data


@pytest.fixture(scope="module")
def bf16(tmp_path_factory):
    data = _rows([300, 1, 2, 500], extra={"bf": (torch.bfloat16, (2, 3)), **EXTRA})
    root = tmp_path_factory.mktemp("bf16") / "s"
    _write(root, data)
    return root, data


def _edges(store) -> list[int]:
    """First and last rows, and the rows on either side of each block edge."""
    n = len(store)
    entry = store.manifest["checksums"].get("blocks")
    b = entry["block_rows"] if entry else 1024
    out = {0, n - 1}
    for e in range(b, n, b):
        out |= {e - 1, e}
    return sorted(out)


def _positions(edges: list[int], n: int):
    one = hs.one_of(hs.sampled_from(edges), hs.integers(0, n - 1))
    return hs.lists(one, max_size=300)


def _check(store, data, pos: list[int], want_rows=None) -> None:
    index = torch.tensor(pos, dtype=torch.int64)
    got = store.get(index)
    general = store._read_general(index)
    want = data[index] if want_rows is None else want_rows(index)
    if pos:
        assert_same_bits(got, want)
        assert_same_bits(got, general)
    for a, b in ((got, want), (got, general)):  # an empty batch: no bytes to compare
        fa, fb = a.flatten_keys("."), b.flatten_keys(".")
        assert {k: (v.dtype, v.shape) for k, v in fa.items()} == {
            k: (v.dtype, v.shape) for k, v in fb.items()
        }
    # the same tree, keys in the same order, as the general path builds
    assert list(got.keys(True, True)) == list(general.keys(True, True))
    assert got.batch_size == torch.Size([len(pos)])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data())
def test_a_planned_batch_serves_the_written_rows(written, data) -> None:
    root, rows = written
    store = stores.open(root)
    assert store.manifest["payload"]["next_stored_once"] == ["observation"]
    pos = data.draw(_positions(_edges(store), len(store)))
    _check(store, rows, pos)
    assert isinstance(store._batch, _Batch)  # the planned path served it


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data())
def test_a_dtype_numpy_lacks_takes_the_general_path(bf16, data) -> None:
    root, rows = bf16
    store = stores.open(root)
    pos = data.draw(_positions(_edges(store), len(store)))
    _check(store, rows, pos)
    assert store._batch is None


@settings(max_examples=10, deadline=None)
@given(
    lengths=hs.lists(hs.integers(1, 300), min_size=1, max_size=12),
    seed=hs.integers(0, 2**16),
    picks=hs.lists(hs.integers(0, 10**9), max_size=64),
)
def test_drawn_episodes_rebuild_next_bit_for_bit(tmp_path_factory, lengths, seed, picks) -> None:
    data = _rows(lengths, extra={"i32": EXTRA["i32"]}, seed=seed)
    root = tmp_path_factory.mktemp("drawn") / "s"
    _write(root, data)
    store = stores.open(root)
    n = len(store)
    _check(store, data, [p % n for p in picks] + [0, n - 1, n - 1])


def test_a_ring_serves_the_rows_its_positions_hold(tmp_path) -> None:
    data = _rows([400, 1, 350, 249], extra={"f16": EXTRA["f16"]})  # 1,000 rows
    _write(tmp_path / "s", data, capacity=700)
    store = stores.open(tmp_path / "s")
    readable = store.readable()  # the positions of the serials start .. end - 1, in order
    serial = torch.full((700,), -1, dtype=torch.int64)
    serial[readable] = torch.arange(data.shape[0] - len(readable), data.shape[0])
    assert len(readable) > 500

    g = torch.Generator().manual_seed(1)
    pick = torch.randint(len(readable), (500,), generator=g)
    pos = readable[pick].tolist() + readable[[0, -1]].tolist()
    _check(store, data, pos, lambda index: data[serial[index]])


def test_a_commit_read_by_refresh_is_planned_again(tmp_path) -> None:
    data = _rows([30, 1, 500, 20], extra={})
    root = tmp_path / "s"
    with stores.create(root, durable=False) as w:
        w.append(data[:300])
        w.commit()
        reader = stores.open(root)
        _check(reader, data, list(range(0, 300, 7)) + [299])
        before = reader._batch
        w.append(data[300:])
        w.commit()
    assert reader.refresh()
    pos = list(range(0, data.shape[0], 3)) + [data.shape[0] - 1, 299, 300]
    _check(reader, data, pos)
    assert reader._batch is not before


def test_a_writer_reads_its_own_rows_through_either_path(tmp_path) -> None:
    data = _rows([40, 1, 60, 9], extra={"u8": EXTRA["u8"]})
    with stores.create(tmp_path / "s", durable=False) as w:
        w.append(data[:70])  # the last row's next value is undecided: the general path
        _check(w, data[:70], list(range(70)) + [69, 0])
        w.append(data[70:])
        w.commit()
        _check(w, data, list(range(data.shape[0])))


def test_a_planned_batch_never_serves_a_block_it_has_not_checked(tmp_path) -> None:
    data = _rows([3000, 1, 500], extra={})
    root = tmp_path / "s"
    _write(root, data)
    m = stores.open(root).manifest
    b = m["checksums"]["blocks"]["block_rows"]
    path = root / m["payload"]["files"]["action"]
    raw = bytearray(path.read_bytes())
    raw[2 * b * 4 + 1] ^= 0x10  # action is one float32 a row: a byte of block 2
    path.write_bytes(bytes(raw))
    with stores.open(root) as r:
        _check(r, data, [0, 5, b - 1])  # blocks 0 and 1 (the row after): planned, served
        assert isinstance(r._batch, _Batch)
        for _ in range(2):  # refused every time, never served
            with pytest.raises(CorruptStoreError, match="'action'"):
                r.get(torch.tensor([3, 2 * b + 7]))


@pytest.mark.parametrize("lengths, steps", [([300] * 8, 1), ([1, 1, 1, 300, 2, 300], 3)])
def test_both_cases_of_the_explicit_row_table_patch_next(tmp_path, lengths, steps) -> None:
    data = _rows(lengths, extra={})
    _write(tmp_path / "s", data)
    store = stores.open(tmp_path / "s")
    n = len(store)
    ends = torch.tensor(lengths).cumsum(0) - 1  # each episode's last row: its next is explicit
    pos = ends.tolist() + (ends[:-1] + 1).tolist() + list(range(0, n, 5)) + ends.tolist()
    _check(store, data, pos)
    assert store._finder("observation").steps == steps
