"""The block digest sidecar (format 1.4) read without a store handle, as FORMAT.md and
``rldata.stores.format.blocksums`` describe it, and its manifest entry's checks."""

from __future__ import annotations

import hashlib

import pytest

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.format import blocksums as bs
from rldata.stores.format import schema as sch
from rldata.testing.tamper import edit_manifest, read_manifest
from rldata.testing.ted_factory import ted_transitions


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "s"
    with stores.create(root, durable=False) as w:
        for k in range(0, 2500, 600):
            w.append(ted_transitions(min(600, 2500 - k), start_traj_id=k))
            w.commit()
    return root


def test_every_block_digest_is_the_sha256_of_its_byte_range(store):
    m = read_manifest(store)
    entry = m["checksums"]["blocks"]
    table = bs.BlockTable.from_bytes(entry, (store / entry["path"]).read_bytes())
    assert table.rows == m["written"] == 2500 and table.blocks == 3
    for key in entry["keys"]:
        payload = (store / m["payload"]["files"][key]).read_bytes()
        for i in range(table.blocks):
            lo, hi = table.byte_range(i, sch.row_bytes(m["schema"][key]))
            assert hashlib.sha256(payload[lo:hi]).digest() == table.digest(key, i)
    with pytest.raises(IndexError):
        table.span(table.blocks)


def test_sidecar_bytes_that_differ_from_the_manifest_are_refused(store):
    entry = read_manifest(store)["checksums"]["blocks"]
    data = bytearray((store / entry["path"]).read_bytes())
    data[0] ^= 1
    with pytest.raises(CorruptStoreError, match="sha256 does not match"):
        bs.BlockTable.from_bytes(entry, bytes(data))
    with pytest.raises(CorruptStoreError, match="truncated"):
        bs.BlockTable.from_bytes(entry, bytes(data[:10]))


@pytest.mark.parametrize("rows, want", [(1, 1024), (64, 1024), (68, 512), (21168, 2), (1 << 20, 1)])
def test_a_block_of_the_widest_key_fits_64_kib(rows, want):
    assert bs.block_rows_for(rows) == want


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda b: b.update(blocks=b["blocks"] + 1), "checksums.blocks.blocks"),
        (lambda b: b["tail"].update(rows=0), "checksums.blocks.tail.rows"),
        (lambda b: b.update(path="../x"), "checksums.blocks.path"),
        (lambda b: b.update(keys=["nope"]), "checksums.blocks.keys"),
        (lambda b: b.update(sha256="zz"), "checksums.blocks.sha256"),
    ],
)
def test_an_out_of_range_blocks_entry_is_refused_naming_the_field(store, change, field):
    edit_manifest(store, lambda m: change(m["checksums"]["blocks"]))
    with pytest.raises(CorruptStoreError, match=field.replace(".", r"\.")):
        stores.open(store, verify=False)


def _entry(path: str) -> dict:
    return {"path": path, "block_rows": 4, "keys": ["a"], "blocks": 2, "sha256": "0" * 64}


@pytest.mark.parametrize("backend", ["memmap", "parquet"])
def test_each_backend_keeping_block_digests_names_its_own_sidecar(backend):
    bs.check_entry(_entry(bs.SIDECARS[backend]), "s", 8, {"a": {}}, backend)
    other = bs.SIDECARS["parquet" if backend == "memmap" else "memmap"]
    with pytest.raises(CorruptStoreError, match=r"checksums\.blocks\.path"):
        bs.check_entry(_entry(other), "s", 8, {"a": {}}, backend)


@pytest.mark.parametrize("backend", ["hdf5", "sharded"])  # zarr keeps them since 1.8
def test_block_digests_of_a_backend_that_keeps_none_are_refused(backend):
    with pytest.raises(CorruptStoreError, match=f"null for backend '{backend}'"):
        bs.check_entry(_entry(bs.SIDECAR), "s", 8, {"a": {}}, backend)


def test_a_digest_is_the_same_whatever_the_backend_wrote_the_rows(tmp_path):
    """The definition is the decoded rows' bytes: memmap and parquet stores of the same rows
    share every digest of the keys both list."""
    tables = {}
    for backend in ("memmap", "parquet"):
        root = tmp_path / backend
        with stores.create(root, backend=backend, durable=False) as w:
            w.append(ted_transitions(2500))
        m = read_manifest(root)
        tables[backend] = bs.BlockTable.read(root, m["checksums"]["blocks"])
    mm, pq = tables["memmap"], tables["parquet"]
    assert (mm.block_rows, mm.full, mm.tail_rows) == (pq.block_rows, pq.full, pq.tail_rows)
    for key in mm.keys:
        assert [mm.digest(key, i) for i in range(mm.blocks)] == [
            pq.digest(key, i) for i in range(pq.blocks)
        ], key
