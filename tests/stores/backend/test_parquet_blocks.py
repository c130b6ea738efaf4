"""Parquet block digests (format 1.7): each commit appends the digests of the blocks it
fills; a reader checks each block of rows the first time a read touches it (in place in a
PLAIN page, or its decoded rows), never the whole part, and serves nothing unchecked;
hostile sidecars, counts and footers are refused in one line (issue 19)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _memmap, _parquet, _parquet_blocks, _parquet_plain
from rldata.stores.format import manifest as mf
from rldata.stores.format.blocksums import BlockTable
from rldata.testing.tamper import edit_manifest, read_manifest
from rldata.testing.ted_factory import ted_transitions

ROWS, COMMIT, B, GROUP = 2000, 700, 64, 100  # blocks cross row groups and parts
SIDECAR = "data/_blocks.sha256"
HYPO = settings(
    max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def _write(root: Path, backend: str = "parquet", digests: bool = True, **rows) -> None:
    """``ROWS`` rows in commits of ``COMMIT`` (three parts and a tail block), ``B``-row
    blocks, ``GROUP``-row row groups."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_parquet_blocks, "block_rows_for", lambda widest: B)
        mp.setattr(_memmap, "block_rows_for", lambda widest: B)
        mp.setattr(_parquet, "_group_rows", lambda fields: GROUP)
        mp.setattr(_parquet.ParquetStore, "block_digests", digests)
        with stores.create(root, backend=backend, durable=False) as w:
            for k in range(0, ROWS, COMMIT):
                w.append(ted_transitions(min(COMMIT, ROWS - k), start_traj_id=k, **rows))
                w.commit()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pq_blocks") / "s"
    _write(root)
    return root


@pytest.fixture
def store(pristine, tmp_path) -> Path:
    root = tmp_path / "s"
    shutil.copytree(pristine, root)
    return root


@contextlib.contextmanager
def _copy(pristine: Path) -> Iterator[Path]:
    """A fresh copy for one hypothesis example (tmp_path is shared by every example),
    removed after it whatever the outcome."""
    top = Path(tempfile.mkdtemp(prefix="pq_blocks_"))
    try:
        shutil.copytree(pristine, top / "s")
        yield top / "s"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _same(a, b) -> None:
    for key, x in a.items(include_nested=True, leaves_only=True):
        y = b.get(key)
        assert x.dtype == y.dtype and torch.equal(x.view(torch.uint8), y.view(torch.uint8)), key


def _value_offset(root: Path, row: int, key: str) -> tuple[Path, int]:
    """The file and byte offset of ``row``'s first value of PLAIN column ``key``."""
    with stores.open(root, verify=False) as s:
        plain, lo, _ = s._groups.plain_span(row, row + 1)
        assert plain.learn(np.array([int(np.searchsorted(plain.starts, lo, side="right")) - 1]))
        c = plain.direct.index(key)
        g = int(np.searchsorted(plain.starts, lo, side="right")) - 1
        row_bytes = plain.cols[c][1] * plain.cols[c][2]
        at = int(plain.offsets[g, c]) + (lo - int(plain.starts[g])) * row_bytes
        i = int(np.searchsorted(s._groups._part_starts, row, "right")) - 1
        return root / s.manifest["payload"]["parts"][i]["path"], at


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_new_store_lists_digests_of_every_key_in_a_sidecar_datasets_skip(store):
    m = read_manifest(store)
    blocks = m["checksums"]["blocks"]
    assert m["format_version"] == mf.FORMAT_VERSION == "1.8.0"
    assert blocks["path"] == SIDECAR and blocks["block_rows"] == B
    assert blocks["keys"] == list(m["schema"])  # next.observation stored once included
    assert blocks["blocks"] == ROWS // B and blocks["tail"]["rows"] == ROWS % B
    assert (store / SIDECAR).stat().st_size == ROWS // B * len(m["schema"]) * 32


def test_a_digest_is_the_sha256_of_the_decoded_rows_whatever_the_backend(store, tmp_path):
    """Memmap's digests of the same rows are the same bytes (a convert could reuse them)."""
    _write(tmp_path / "m", backend="memmap")
    pq_table = BlockTable.read(store, read_manifest(store)["checksums"]["blocks"])
    mm_table = BlockTable.read(tmp_path / "m", read_manifest(tmp_path / "m")["checksums"]["blocks"])
    assert set(mm_table.keys) < set(pq_table.keys)
    with stores.open(store) as s:
        for i in range(pq_table.blocks):
            a, b = pq_table.span(i)
            rows = s.get(torch.arange(a, b))
            for key in pq_table.keys:
                got = rows.get(tuple(key.split("."))).contiguous().numpy().tobytes()
                assert hashlib.sha256(got).digest() == pq_table.digest(key, i), (key, i)
                if key in mm_table.keys:
                    assert mm_table.digest(key, i) == pq_table.digest(key, i), (key, i)


@pytest.mark.parametrize("pixels", [None, (2, 4, 4)])  # PLAIN parts; zstd parts decoded
def test_rows_equal_those_of_a_store_without_digests(tmp_path, pixels):
    _write(tmp_path / "new", pixels_shape=pixels)
    _write(tmp_path / "old", digests=False, pixels_shape=pixels)
    assert "blocks" not in read_manifest(tmp_path / "old")["checksums"]
    pos = torch.as_tensor(np.random.default_rng(0).integers(0, ROWS, 700))
    with stores.open(tmp_path / "new") as new, stores.open(tmp_path / "old") as old:
        _same(new.get(pos), old.get(pos))
        _same(new.get(torch.arange(ROWS)), old.get(torch.arange(ROWS)))
        assert new.hashed == 0 and old.hashed == 3  # no part hashed whole: blocks instead


def test_a_sample_hashes_only_the_blocks_it_touches(store):
    row_bytes = sum(
        int(np.prod(e["shape"], dtype=np.int64))
        * np.dtype(e["dtype"].replace("bool", "bool_")).itemsize
        for e in read_manifest(store)["schema"].values()
    )
    with stores.open(store) as s:
        assert s.block_bytes_hashed == 0  # the open hashed no rows
        rows = torch.tensor([3, 5, 200, 201, 1500])  # blocks 0, 3 and 23
        s.get(rows)
        assert np.flatnonzero(s._bchecked.any(1)).tolist() == [0, 3, 23]
        assert s._bchecked[[0, 3, 23]].all() and s.block_bytes_hashed == 3 * B * row_bytes
        s.get(rows[:2])
        assert s.block_bytes_hashed == 3 * B * row_bytes  # each block hashed once a handle
        assert s.hashed == 0


@HYPO
@given(row=hs.integers(0, ROWS - 1), key=hs.sampled_from(["observation", "action", "next.reward"]))
def test_a_flipped_byte_is_refused_when_its_row_is_read_and_not_before(pristine, row, key):
    with _copy(pristine) as root:
        path, at = _value_offset(root, row, key)
        _flip(path, at)
        with stores.open(root) as s:  # the open reads no rows
            # next.observation of the row before holds this row's observation
            near = {row // B} | ({(row - 1) // B} if key == "observation" and row else set())
            others = [i * B for i in range(ROWS // B + 1) if i not in near and i * B < ROWS]
            assert s.get(torch.tensor(others)).batch_size[0] == len(others)
            with pytest.raises(CorruptStoreError) as err:
                s.get(torch.tensor([row]))
            why = str(err.value)
            assert "\n" not in why and path.name in why and "block digest" in why
            assert repr(key) in why or "'next.observation'" in why  # obs one row on feeds next
            with pytest.raises(CorruptStoreError):  # refused again, never served
                s.get(torch.tensor([row]))
        with stores.open(root, verify=False) as s:
            assert any(path.name in f for f in stores.verify(s))  # verify hashes every part


@HYPO
@given(cut=hs.floats(0, 1, exclude_max=True))
def test_a_sidecar_cut_short_is_refused_at_open(pristine, cut):
    with _copy(pristine) as root:
        with open(root / SIDECAR, "r+b") as f:
            f.truncate(int(cut * (root / SIDECAR).stat().st_size))
        with pytest.raises(CorruptStoreError, match="block digests") as err:
            stores.open(root)
        assert "\n" not in str(err.value)
        with stores.open(root, verify=False) as s:
            assert any("block digests" in f for f in stores.verify(s))


@HYPO
@given(at=hs.floats(0, 1, exclude_max=True))
def test_a_flipped_digest_is_refused_at_open(pristine, at):
    with _copy(pristine) as root:
        _flip(root / SIDECAR, int(at * (root / SIDECAR).stat().st_size))
        with pytest.raises(CorruptStoreError, match="sha256") as err:
            stores.open(root)
        assert "\n" not in str(err.value)


COUNTS = {
    "blocks": lambda b, d: b.update(blocks=max(0, b["blocks"] + d)),
    "block_rows": lambda b, d: b.update(block_rows=max(1, b["block_rows"] + d)),
    "tail.rows": lambda b, d: b["tail"].update(rows=max(0, b["tail"]["rows"] + d)),
}


@HYPO
@given(field=hs.sampled_from(sorted(COUNTS)), delta=hs.integers(-40, 40).filter(bool))
def test_block_counts_out_of_range_are_refused_naming_the_field(pristine, field, delta):
    with _copy(pristine) as root:
        edit_manifest(root, lambda m: COUNTS[field](m["checksums"]["blocks"], delta))
        with (
            pytest.raises(CorruptStoreError, match=r"checksums\.blocks") as err,
            stores.open(root) as s,
        ):
            s.get(torch.arange(ROWS))
        assert "\n" not in str(err.value)


def test_digests_of_some_keys_only_are_refused(store):
    edit_manifest(store, lambda m: m["checksums"]["blocks"]["keys"].pop())
    with pytest.raises(CorruptStoreError, match=r"checksums\.blocks"):
        stores.open(store)


@HYPO
@given(shift=hs.integers(-64, 64).filter(bool), row=hs.integers(0, ROWS - 1))
def test_a_footer_pointing_elsewhere_serves_nothing(pristine, shift, row):
    """A footer whose chunk offsets pass the bounds checks but point at other bytes (a page
    header forged to fit): the bytes read fail their digest, in one line."""
    real = _parquet_plain.value_start

    def elsewhere(*args, **kwargs):
        at = real(*args, **kwargs)
        return None if at is None else max(4, at + 4 * shift)

    with pytest.MonkeyPatch.context() as mp, stores.open(pristine) as s:
        mp.setattr(_parquet_plain, "value_start", elsewhere)
        with pytest.raises(CorruptStoreError, match="block digest") as err:
            s.get(torch.tensor([row]))
        assert "\n" not in str(err.value) and ".parquet" in str(err.value)


def test_verify_checks_every_part_and_the_sidecar_then_reads_hash_nothing(store):
    with stores.open(store, verify=False) as s:
        assert stores.verify(s) == []
        s.get(torch.arange(ROWS))
        assert s.block_bytes_hashed == 0  # every part matched its sha256: rows proven
    _flip(store / SIDECAR, 5)
    with stores.open(store, verify=False) as s:
        faults = stores.verify(s)
        assert len(faults) == 1 and SIDECAR in faults[0], faults


def test_a_resumed_writer_appends_digests_of_the_rows_it_adds(store):
    before = (store / SIDECAR).read_bytes()
    with pytest.MonkeyPatch.context() as mp, stores.open(store, mode="a", durable=False) as w:
        mp.setattr(_parquet, "_group_rows", lambda fields: GROUP)
        w.append(ted_transitions(300, start_traj_id=10_000))
        w.commit()
    after = read_manifest(store)["checksums"]["blocks"]
    assert after["blocks"] == (ROWS + 300) // B and after["tail"]["rows"] == (ROWS + 300) % B
    assert (store / SIDECAR).read_bytes()[: len(before)] == before  # appended, not rewritten
    with stores.open(store) as s:
        s.get(torch.arange(ROWS + 300))  # every block matches
        assert s._bchecked.all() and stores.verify(s) == []
