"""Format 1.3: zarr chunk files and parquet parts carry the SHA-256 of their stored bytes, so
opening a store checks what is stored without decoding it, and still refuses a flipped byte."""

from __future__ import annotations

import hashlib
import json

import pyarrow.parquet as pq
import pytest
import torch

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _parquet, _zarr
from rldata.testing.tamper import edit_manifest, read_manifest
from rldata.testing.ted_factory import marked_serial, ted_marked


def _zarr_store(root, monkeypatch, rows=45):
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)  # 10 rows a chunk
    monkeypatch.setenv("RLDATA_ZARR_COMPRESSION", "lz4")  # decoded chunks (raw: in place)
    with stores.create(root, backend="zarr") as w:
        w.append(ted_marked(0, 30))
        w.commit()
        w.append(ted_marked(30, rows - 30))
    return root


def _count_decodes(monkeypatch) -> list[int]:
    decoded: list[int] = []
    real = _zarr.ZarrStore._decode
    monkeypatch.setattr(
        _zarr.ZarrStore, "_decode", lambda self, c: decoded.append(c) or real(self, c)
    )
    return decoded


def _flip(path, at: int = -3) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_zarr_commit_records_each_chunk_file_and_array_metadata(tmp_path, monkeypatch):
    root = _zarr_store(tmp_path / "s", monkeypatch)
    p = read_manifest(root)["payload"]
    assert len(p["chunk_sha256"]) == 5  # 45 rows, 10 a chunk
    chunk = p["chunk_sha256"][2]
    assert set(chunk) == {*read_manifest(root)["schema"], "_implied/observation"}
    file = root / "data" / "action" / "c" / "2" / "0"
    assert chunk["action"] == hashlib.sha256(file.read_bytes()).hexdigest()
    meta = root / "data" / "next" / "reward" / "zarr.json"
    assert p["meta_sha256"]["next.reward"] == hashlib.sha256(meta.read_bytes()).hexdigest()
    # an all-zero chunk of a flag has no file in zarr: recorded as null
    assert chunk["terminated"] is None and not (root / "data" / "terminated" / "c" / "2").exists()


def test_opening_a_zarr_store_decodes_no_chunk(tmp_path, monkeypatch):
    root = _zarr_store(tmp_path / "s", monkeypatch)
    decoded = _count_decodes(monkeypatch)
    s = stores.open(root)
    assert decoded == []
    assert marked_serial(s.get(s.readable())).tolist() == list(range(45))
    assert stores.verify(s) == []  # full verify still decodes and checks every row


def test_a_flipped_byte_in_a_zarr_chunk_is_refused_on_the_first_read_of_it(tmp_path, monkeypatch):
    # a store before format 1.8 (1.8 checks blocks of rows: test_zarr_blocks.py)
    monkeypatch.setattr(_zarr.ZarrStore, "block_digests", False)
    root = _zarr_store(tmp_path / "s", monkeypatch)
    _flip(root / "data" / "action" / "c" / "1" / "0")
    decoded = _count_decodes(monkeypatch)
    s = stores.open(root)  # chunk files are hashed when a read first decodes them (issue 19)
    with pytest.raises(CorruptStoreError, match="action|chunk 1"):
        s.get(torch.arange(10, 20))
    assert decoded == [1]  # only the chunk whose stored bytes differ is decoded


def test_a_zarr_chunk_rewritten_by_a_live_writer_is_checked_by_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(stores.backend.rowstore, "CHUNK_BYTES", 10 * 24)
    root = tmp_path / "s"
    w = stores.create(root, backend="zarr")
    w.append(ted_marked(0, 25))
    w.commit()
    reader = stores.open(root)  # holds the manifest of 25 rows
    w.append(ted_marked(25, 3))  # rewrites chunk 2 (rows 20..27) with the same 5 old rows
    w.commit()
    assert stores.integrity_fault(reader) is None  # the old rows of chunk 2 still match
    assert marked_serial(reader.get(reader.readable())).tolist() == list(range(25))
    w.close()


def test_zarr_array_metadata_edited_falls_back_to_decoding(tmp_path, monkeypatch):
    root = _zarr_store(tmp_path / "s", monkeypatch)
    meta = root / "data" / "action" / "zarr.json"
    m = json.loads(meta.read_text())
    m["attributes"] = {"edited": True}  # harmless to the rows: they are decoded and pass
    meta.write_text(json.dumps(m))
    decoded = _count_decodes(monkeypatch)
    s = stores.open(root)
    assert sorted(set(decoded)) == [0, 1, 2, 3, 4]
    assert len(s) == 45


def test_a_zarr_store_of_format_1_2_opens_and_is_checked_by_its_rows(tmp_path, monkeypatch):
    root = _zarr_store(tmp_path / "s", monkeypatch)

    def old(m):
        m["format_version"] = "1.2.0"
        del m["payload"]["chunk_sha256"], m["payload"]["meta_sha256"]

    edit_manifest(root, old)
    assert len(stores.open(root)) == 45
    _flip(root / "data" / "action" / "c" / "1" / "0")
    with pytest.raises(CorruptStoreError):
        stores.open(root)


def test_a_resumed_zarr_store_keeps_and_extends_its_sums(tmp_path, monkeypatch):
    root = _zarr_store(tmp_path / "s", monkeypatch)
    with stores.open(root, mode="a") as w:
        w.append(ted_marked(45, 20))
    sums = read_manifest(root)["payload"]["chunk_sha256"]
    assert len(sums) == 7 and all(isinstance(e, dict) for e in sums)
    decoded = _count_decodes(monkeypatch)
    assert marked_serial(stores.open(root).get(slice(0, 65))).tolist() == list(range(65))
    assert len(set(decoded)) == 7  # decoded by the read, none by the open before it


def _parquet_store(root):
    with stores.create(root, backend="parquet") as w:
        w.append(ted_marked(0, 30))
        w.commit()
        w.append(ted_marked(30, 20))
    return root


def test_a_parquet_part_records_its_size_and_sha256(tmp_path):
    root = _parquet_store(tmp_path / "s")
    parts = read_manifest(root)["payload"]["parts"]
    assert len(parts) == 2
    for p in parts:
        data = (root / p["path"]).read_bytes()
        assert p["bytes"] == len(data)
        assert p["sha256"] == hashlib.sha256(data).hexdigest()


def test_opening_a_parquet_store_decodes_no_part(tmp_path, monkeypatch):
    root = _parquet_store(tmp_path / "s")
    reads: list[object] = []
    real, real_group = pq.read_table, pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: reads.append(a) or real(*a, **k))
    monkeypatch.setattr(
        pq.ParquetFile, "read_row_group", lambda *a, **k: reads.append(a) or real_group(*a, **k)
    )
    s = stores.open(root)
    assert reads == []
    assert marked_serial(s.get(s.readable())).tolist() == list(range(50))
    assert len(reads) <= 2  # at most each part's one row group (none: read in place, PLAIN)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_a_damaged_parquet_part_is_refused_at_open_naming_it(tmp_path, monkeypatch, damage):
    # without block digests (1.7), which refuse only the rows a flipped byte changes
    # (a byte of the footer's metadata changes none): test_parquet_blocks
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", False)
    root = _parquet_store(tmp_path / "s")
    part = root / read_manifest(root)["payload"]["parts"][1]["path"]
    if damage == "flip":
        _flip(part, len(part.read_bytes()) // 2)
    elif damage == "truncate":
        part.write_bytes(part.read_bytes()[:-10])
    else:
        part.unlink()
    if damage == "flip":  # same size: hashed and refused on its first read (issue 19)
        s = stores.open(root)
        with pytest.raises(CorruptStoreError, match="part-00001"):
            s.get(s.readable())
    else:
        with pytest.raises(CorruptStoreError, match="part-00001"):
            stores.open(root)
    assert "part-00001" in str(stores.first_fault(stores.open(root, verify=False)))


def test_a_parquet_store_of_format_1_2_is_checked_by_its_rows(tmp_path):
    root = _parquet_store(tmp_path / "s")

    def old(m):
        m["format_version"] = "1.2.0"
        for p in m["payload"]["parts"]:
            del p["sha256"], p["bytes"]

    edit_manifest(root, old)
    assert len(stores.open(root)) == 50
    part = root / read_manifest(root)["payload"]["parts"][0]["path"]
    part.write_bytes(part.read_bytes()[:-10])  # no stored sum: the decoded check finds it
    with pytest.raises(CorruptStoreError):
        stores.open(root)


# --- memmap: each observation stored once, its explicit next rows hashed as stored --------
def _memmap_store(root):
    with stores.create(root) as w:  # memmap; the last row of each commit is stored explicitly
        w.append(ted_marked(0, 30))
        w.commit()
        w.append(ted_marked(30, 15))
    with stores.open(root, mode="a") as w:  # a resumed writer hashes on from the file
        w.append(ted_marked(45, 5))
    return root


def _records(root) -> bytes:
    m = read_manifest(root)
    n = m["payload"]["next_once_rows"]["observation"]
    path = root / m["payload"]["files"]["next.observation"]
    return path.read_bytes()[: n * (8 + 3 * 8)]  # position int64, then 3 float64


def test_a_memmap_commit_records_the_sha256_of_its_explicit_next_rows(tmp_path):
    root = _memmap_store(tmp_path / "s")
    m = read_manifest(root)
    assert m["payload"]["next_once_rows"] == {"observation": 3}  # one per commit
    want = hashlib.sha256(_records(root)).hexdigest()
    assert m["payload"]["next_once_sha256"] == {"observation": want}


def test_opening_a_memmap_store_does_not_rebuild_stored_once_rows(tmp_path, monkeypatch):
    from rldata.stores.backend import _memmap, _verify_scan

    root = _memmap_store(tmp_path / "s")
    rebuilt: list[int] = []
    real = _memmap.MemmapStore._next_range
    monkeypatch.setattr(
        _memmap.MemmapStore,
        "_next_range",
        lambda self, k, a, b: rebuilt.append(a) or real(self, k, a, b),
    )
    scanned = _verify_scan._Buffers._rebuild  # a full verify's one pass rebuilds its own
    monkeypatch.setattr(
        _verify_scan._Buffers,
        "_rebuild",
        lambda self, *a: rebuilt.append(a[3]) or scanned(self, *a),
    )
    s = stores.open(root)
    assert rebuilt == []
    assert marked_serial(s.get(s.readable())).tolist() == list(range(50))
    assert stores.verify(s) == []  # full verify still rebuilds and checks every next row
    assert rebuilt


def test_a_flipped_byte_in_memmap_explicit_next_rows_is_refused_at_open(tmp_path):
    root = _memmap_store(tmp_path / "s")
    path = root / read_manifest(root)["payload"]["files"]["next.observation"]
    _flip(path, at=8 + 8 + 5)  # inside the first record's row, not its position
    with pytest.raises(CorruptStoreError, match="next.observation"):
        stores.open(root)


def test_a_memmap_store_without_the_records_sum_is_checked_by_its_rows(tmp_path):
    root = _memmap_store(tmp_path / "s")
    edit_manifest(root, lambda m: m["payload"].pop("next_once_sha256"))
    assert len(stores.open(root)) == 50
    path = root / read_manifest(root)["payload"]["files"]["next.observation"]
    _flip(path, at=8 + 8 + 5)
    with pytest.raises(CorruptStoreError, match="next.observation"):
        stores.open(root)
