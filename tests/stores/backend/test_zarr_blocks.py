"""Block digests of append-only zarr stores (format 1.8, issue 19): the same digests as a
memmap store of the same rows, a verified open that reads no shard, reads that hash only
the blocks they serve (as many bytes at any store size), a tampered shard, sidecar or
manifest field refused in one line, and stores written before 1.8 still read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rldata.api as api
import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _zarr, _zarr_cache, rowstore
from rldata.stores.format.blocksums import BlockTable
from rldata.testing.ted_factory import assert_same_bits, episode_lengths, ted_batch

CHUNK, INNER = 96, 16  # blocks of 512 rows then span several shards
ROWS = 2600  # two full blocks of 1,024 rows and a tail


def _write(path: Path, backend: str, rows: int = ROWS, *, compression: str = "auto", **kw):
    """``rows`` rows in two writer sessions (the second resumes), three commits."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    mp.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)
    mp.setenv("RLDATA_ZARR_COMPRESSION", compression)
    for k, v in kw.items():
        mp.setattr(_zarr.ZarrStore, k, v)
    try:
        lengths = episode_lengths(7, rows, 90)
        half = len(lengths) // 2
        with stores.create(path, backend=backend) as w:
            w.append(ted_batch(lengths[:half], extra=True))
            w.commit()
        with stores.open(path, mode="a") as w:
            third = half + (len(lengths) - half) // 2
            w.append(ted_batch(lengths[half:third], start_traj_id=half, extra=True))
            w.commit()
            w.append(ted_batch(lengths[third:], start_traj_id=third, extra=True))
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same rows in a zarr store (raw keys, and every key compressed) and a memmap store."""
    root = tmp_path_factory.mktemp("zb")
    for name, backend, comp in (("z", "zarr", "auto"), ("zc", "zarr", "lz4"), ("m", "memmap", "")):
        _write(root / name, backend, compression=comp or "auto")
    return root


def _table(root: Path) -> BlockTable:
    entry = json.loads((root / "rldata.json").read_text())["checksums"]["blocks"]
    return BlockTable.read(root, entry)


@pytest.mark.parametrize("name", ["z", "zc"])
def test_digests_equal_memmaps_for_the_same_rows(pair, name):
    m = json.loads((pair / name / "rldata.json").read_text())
    assert m["format_version"] >= "1.8.0"
    z, mm = _table(pair / name), _table(pair / "m")
    assert (
        (z.block_rows, z.blocks, z.rows)
        == (mm.block_rows, mm.blocks, mm.rows)
        == (
            z.block_rows,
            -(-ROWS // z.block_rows),
            ROWS,
        )
    )
    assert set(z.keys) - set(mm.keys) == {"next.observation"}  # memmap stores it once, no file
    for k in mm.keys:
        for i in range(mm.blocks):
            assert z.digest(k, i) == mm.digest(k, i), (k, i)


@pytest.mark.parametrize("name", ["z", "zc"])
def test_reads_serve_the_stored_rows_and_hash_each_block_once(pair, name):
    z, m = stores.open(pair / name), stores.open(pair / "m")
    pos = np.random.default_rng(0).integers(0, ROWS, 64)
    assert_same_bits(z.get(pos), m.get(pos))
    assert z._objects.hashed == 0  # no shard hashed whole
    once = z.block_bytes_hashed
    assert once > 0
    z.get(pos)
    assert z.block_bytes_hashed == once
    assert_same_bits(z.get(slice(0, ROWS)), m.get(slice(0, ROWS)))
    assert api.verify(pair / name) == []


def test_a_store_before_1_8_keeps_no_digests_and_still_reads(tmp_path, pair):
    _write(tmp_path / "old", "zarr", block_digests=False)
    m = json.loads((tmp_path / "old" / "rldata.json").read_text())
    assert m["checksums"].get("blocks") is None  # as every zarr store written before 1.8
    s = stores.open(tmp_path / "old")
    assert not s._lazy_blocks()
    pos = np.random.default_rng(1).integers(0, ROWS, 64)
    assert_same_bits(s.get(pos), stores.open(pair / "m").get(pos))
    assert s._objects.hashed > 0  # the whole-shard check, as before
    assert api.verify(tmp_path / "old") == []
    with stores.open(tmp_path / "old", mode="a") as w:  # resumed: still no digests
        w.append(ted_batch([5], start_traj_id=w.next_traj_id(), extra=True))
    assert (
        json.loads((tmp_path / "old" / "rldata.json").read_text())["checksums"].get("blocks")
        is None
    )


# --- reads counted, at two store sizes ----------------------------------------------------------
def _shard_reads(path: Path, pos: np.ndarray, monkeypatch) -> tuple[int, int, int]:
    """Bytes a verified open reads from shard files, and bytes a read of rows ``pos`` reads
    from them by ``pread`` plus the bytes it hashes (what it reads through the maps)."""
    got = {"open": 0, "pread": 0}
    phase = ["open"]
    real_pread, real_read = os.pread, os.read
    shard = f"{os.sep}c{os.sep}"
    fds: dict[int, str] = {}
    real_open = os.open

    def opening(p, *a, **k):
        fd = real_open(p, *a, **k)
        fds[fd] = str(p)
        return fd

    def pread(fd, n, off):
        data = real_pread(fd, n, off)
        if shard in fds.get(fd, ""):
            got["pread" if phase[0] == "read" else "open"] += len(data)
        return data

    def read(fd, n):
        data = real_read(fd, n)
        if shard in fds.get(fd, ""):
            got["pread" if phase[0] == "read" else "open"] += len(data)
        return data

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(os, "read", read)
    monkeypatch.setattr(_zarr_cache, "CACHE_BYTES", 4096)  # the cache holds a few units
    try:
        s = stores.open(path)  # verified
        phase[0] = "read"
        s.get(torch.as_tensor(pos))
        return got["open"], got["pread"], s.block_bytes_hashed
    finally:
        monkeypatch.undo()


def test_a_verified_open_and_a_read_touch_as_many_bytes_at_any_size(tmp_path, monkeypatch):
    small, large = tmp_path / "small", tmp_path / "large"
    _write(small, "zarr", 3072)
    _write(large, "zarr", 12288)
    pos = np.random.default_rng(2).integers(0, 2048, 48)  # in full blocks of both
    a = _shard_reads(small, pos, monkeypatch)
    b = _shard_reads(large, pos, monkeypatch)
    assert a[0] == b[0] == 0  # the open reads no shard
    assert a == b  # the same rows: the same shard indexes read, the same blocks hashed
    assert 0 < a[2] <= 48 * 512 * 200  # at most a block of every key per row read


# --- hostile input ------------------------------------------------------------------------------
@pytest.fixture
def victim(tmp_path):
    _write(tmp_path / "s", "zarr", ROWS)
    return tmp_path / "s"


def _payload_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "data").rglob("*") if p.is_file() and p.name != "zarr.json")


def _readers_refuse_or_serve_the_rows(root: Path, want) -> bool:
    """Every reader (a sample, a slice, a key's rows, every row) refuses in one line, or
    serves exactly the committed rows; whether one refused."""
    refused = False
    pos = torch.tensor([ROWS - 1, 0, 1500, 1024, 1023])
    reads = (
        (lambda s: s.get(pos), lambda: want[pos]),
        (lambda s: s.get(slice(900, 1200)), lambda: want[900:1200]),
        (lambda s: s._read_key("observation", pos), lambda: want["observation"][pos]),
        (lambda s: s.get(torch.arange(ROWS)), lambda: want),
    )
    for read, expected in reads:
        try:
            got = read(stores.open(root))
        except CorruptStoreError as exc:
            assert "\n" not in str(exc)
            refused = True
            continue
        if isinstance(got, torch.Tensor):
            assert torch.equal(got, expected())
        else:
            assert_same_bits(got, expected())
    return refused


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_tampered_shard_or_sidecar_is_refused_in_one_line(victim, data):
    want = stores.open(victim).get(torch.arange(ROWS))
    files = _payload_files(victim)
    path = data.draw(st.sampled_from(files), label="file")
    original = path.read_bytes()
    how = data.draw(st.sampled_from(["flip", "cut", "drop"]), label="how")
    try:
        if how == "flip" and original:
            at = data.draw(st.integers(0, len(original) - 1), label="at")
            bit = data.draw(st.integers(0, 7), label="bit")
            b = bytearray(original)
            b[at] ^= 1 << bit
            path.write_bytes(bytes(b))
        elif how == "cut":
            path.write_bytes(original[: data.draw(st.integers(0, max(0, len(original) - 1)))])
        else:
            path.unlink()
        if _readers_refuse_or_serve_the_rows(victim, want):
            assert api.verify(victim) != []  # what a reader refuses, verify lists
    finally:
        path.write_bytes(original)


FIELDS = st.sampled_from(["path", "block_rows", "blocks", "keys", "sha256", "tail"])
JUNK = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=3),
    st.just("data/../../etc/passwd"),
    st.just({"rows": 3, "sha256": {}}),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=FIELDS, junk=JUNK)
def test_a_tampered_manifest_block_field_is_refused_in_one_line(victim, field, junk):
    want = stores.open(victim).get(torch.arange(ROWS))
    mpath = victim / "rldata.json"
    original = mpath.read_bytes()
    m = json.loads(original)
    if m["checksums"]["blocks"].get(field) == junk:
        return
    m["checksums"]["blocks"][field] = junk
    mpath.write_text(json.dumps(m))
    try:
        _readers_refuse_or_serve_the_rows(victim, want)
    finally:
        mpath.write_bytes(original)


def test_a_block_pointing_elsewhere_names_the_key_rows_and_shard(victim):
    s = stores.open(victim)
    shard = Path(s._object_file("action", 1))
    s.close()
    data = bytearray(shard.read_bytes())
    data[0] ^= 0xFF  # the first row of chunk 1's action
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match=r"key 'action' rows \[0, 1024\)") as info:
        stores.open(victim).get(torch.tensor([CHUNK]))
    assert str(shard) in str(info.value) and "\n" not in str(info.value)
    stores.open(victim).get(torch.tensor([1024, ROWS - 1]))  # other blocks are served
