"""The chunk checksum sidecar (format 1.6): full chunks' digests appended to ``chunks.sha256``,
the manifest keeping only its committed length, SHA-256 and the partial chunk's digests."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import rowstore
from rldata.stores.backend._memmap import MemmapStore
from rldata.stores.backend.verify import verify
from rldata.stores.format import chunklog
from rldata.stores.format import manifest as mf
from rldata.testing.tamper import edit_manifest, read_manifest
from rldata.testing.ted_factory import ted_marked

CHUNK = 16  # rows a checksum chunk, so a few hundred rows fill many chunks


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", CHUNK)


def _write(root, rows, step=50, **kw):
    with stores.create(root, durable=False, **kw) as w:
        for a in range(0, rows, step):
            w.append(ted_marked(a, min(step, rows - a)))
            w.commit()
    return root


def _checksums_bytes(root) -> int:
    return len(json.dumps(read_manifest(root)["checksums"]))


def test_the_manifest_keeps_the_same_size_whatever_the_rows(tmp_path):
    small = _write(tmp_path / "small", 10 * CHUNK + 5)
    large = _write(tmp_path / "large", 100 * CHUNK + 5)
    m = read_manifest(large)
    log = m["checksums"]["chunk_log"]
    assert m["format_version"] == mf.FORMAT_VERSION == "1.8.0"
    assert m["checksums"]["chunks"] == {}  # readers before 1.6 refuse it, none misreads it
    assert (log["chunks"], log["tail"]["rows"], log["bytes"]) == (100, 5, 100 * 11 * 32)
    # only the counts' digits differ: the section does not grow with the chunks
    assert abs(_checksums_bytes(large) - _checksums_bytes(small)) < 16
    assert (large / "chunks.sha256").stat().st_size == log["bytes"]


def test_each_record_is_the_sha256_of_its_chunk_of_rows(tmp_path):
    root = _write(tmp_path / "s", 5 * CHUNK + 3)
    m = read_manifest(root)
    log = m["checksums"]["chunk_log"]
    side = (root / "chunks.sha256").read_bytes()
    assert hashlib.sha256(side).hexdigest() == log["sha256"]
    with stores.open(root) as r:
        for j, key in enumerate(log["keys"]):
            for i in range(log["chunks"]):
                want = side[(i * len(log["keys"]) + j) * 32 :][:32]
                assert hashlib.sha256(r._raw(key, i * CHUNK, (i + 1) * CHUNK)).digest() == want
            tail = hashlib.sha256(r._raw(key, 5 * CHUNK, 5 * CHUNK + 3)).hexdigest()
            assert log["tail"]["sha256"][key] == tail


def test_a_commit_only_appends_the_chunks_it_fills(tmp_path):
    root = tmp_path / "s"
    w = stores.create(root, durable=False)
    w.append(ted_marked(0, 3 * CHUNK + 4))
    w.commit()
    before = (root / "chunks.sha256").read_bytes()
    w.append(ted_marked(3 * CHUNK + 4, 2))  # the tail grows, no chunk fills
    w.commit()
    assert (root / "chunks.sha256").read_bytes() == before
    assert w.manifest["checksums"]["chunk_log"]["tail"]["rows"] == 6
    w.append(ted_marked(3 * CHUNK + 6, 2 * CHUNK))
    w.commit()
    after = (root / "chunks.sha256").read_bytes()
    assert after[: len(before)] == before and len(after) == len(before) + 2 * 11 * 32
    w.close()


def test_the_sidecar_is_fsynced_before_the_manifest_that_covers_it(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: (events.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append(f"rename {b}"), real_replace(a, b))
    )
    root = tmp_path / "s"
    with stores.create(root) as w:  # durable: the default
        w.append(ted_marked(0, 2 * CHUNK))
        events.clear()
        w.commit()
    side, manifest = str(root / "chunks.sha256"), f"rename {root / 'rldata.json'}"
    assert events.index(side) < events.index(manifest)
    assert events.index(str(root)) < events.index(manifest)  # the new file's name, too


def test_a_crash_after_the_append_leaves_the_old_manifest_true(tmp_path, monkeypatch):
    root = _write(tmp_path / "s", 2 * CHUNK + 1)
    w = stores.open(root, mode="a")
    w.append(ted_marked(2 * CHUNK + 1, 3 * CHUNK))

    def crash(*_a, **_k):
        raise KeyboardInterrupt("killed between the sidecar and the manifest")

    monkeypatch.setattr(mf, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        w.commit()
    monkeypatch.undo()
    w._lock.release()  # the process died: its lock with it
    assert (root / "chunks.sha256").stat().st_size == 5 * 11 * 32  # records past the manifest
    with stores.open(root) as r:
        assert len(r) == 2 * CHUNK + 1 and verify(r) == []
    with stores.open(root, mode="a") as w2:  # overwrites the uncommitted records
        w2.append(ted_marked(2 * CHUNK + 1, CHUNK))
    with stores.open(root) as r:
        assert len(r) == 3 * CHUNK + 1 and verify(r) == []
        assert r.manifest["checksums"]["chunk_log"]["chunks"] == 3
    assert (root / "chunks.sha256").stat().st_size == 3 * 11 * 32


def test_a_flipped_byte_in_a_chunk_the_sidecar_covers_is_reported_by_verify(tmp_path):
    root = _write(tmp_path / "s", 4 * CHUNK)
    m = read_manifest(root)
    path = root / m["payload"]["files"]["action"]
    data = bytearray(path.read_bytes())
    data[1] ^= 0xFF
    path.write_bytes(bytes(data))
    with stores.open(root, verify=False) as r:
        faults = verify(r)
    assert any("key 'action' chunk 0 rows [0, 16)" in f for f in faults), faults


def test_opening_and_reading_never_read_the_sidecar(tmp_path, monkeypatch):
    root = _write(tmp_path / "s", 6 * CHUNK)

    def refuse(*_a, **_k):
        raise AssertionError("the sidecar was read")

    monkeypatch.setattr(chunklog.ChunkTable, "read", refuse)
    with stores.open(root) as r:  # a verified open: block digests, checked as rows are read
        assert r.get(r.readable())["next", "reward"][:, 0].tolist() == list(range(6 * CHUNK))


def test_a_sidecar_shorter_than_the_manifest_says_is_refused_in_one_line(tmp_path):
    root = _write(tmp_path / "s", 4 * CHUNK)
    with open(root / "chunks.sha256", "r+b") as f:
        f.truncate(100)
    with stores.open(root, verify=False) as r:
        faults = verify(r)
    assert len(faults) >= 1 and "\n" not in faults[0]
    assert "chunks.sha256" in faults[0] and "expected at least 1408 bytes" in faults[0]
    assert "found 100" in faults[0]


def test_a_missing_sidecar_is_refused_naming_it(tmp_path):
    root = _write(tmp_path / "s", 2 * CHUNK)
    (root / "chunks.sha256").unlink()
    with stores.open(root, verify=False) as r:
        assert any("chunks.sha256 named by the manifest are missing" in f for f in verify(r))


def test_altered_committed_records_are_refused(tmp_path):
    root = _write(tmp_path / "s", 2 * CHUNK)
    data = bytearray((root / "chunks.sha256").read_bytes())
    data[0] ^= 1
    (root / "chunks.sha256").write_bytes(bytes(data))
    with stores.open(root, verify=False) as r:
        assert any("sha256 does not match the manifest" in f for f in verify(r))


@pytest.mark.parametrize(
    ("change", "field", "given"),
    [
        (lambda e: e.update(chunks=1 << 60), "checksums.chunk_log.chunks", str(1 << 60)),
        (lambda e: e.update(bytes=1 << 50), "checksums.chunk_log.bytes", str(1 << 50)),
        (
            lambda e: e.update(chunks=e["chunks"] + 1, bytes=e["bytes"] + 352),
            "chunks",
            "== written = 67, got 83",
        ),
        (lambda e: e["tail"].update(rows=CHUNK), "checksums.chunk_log.tail.rows", "16"),
        (lambda e: e.update(path="../x"), "checksums.chunk_log.path", "'../x'"),
        (lambda e: e.update(keys=["action"]), "checksums.chunk_log.keys", "['action']"),
        (lambda e: e.update(keys=[["action"]]), "checksums.chunk_log.keys", "[['action']]"),
        (lambda e: e.update(sha256="zz"), "checksums.chunk_log.sha256", "'zz'"),
    ],
)
def test_an_out_of_range_entry_is_refused_naming_the_field_and_values(
    tmp_path, change, field, given
):
    root = _write(tmp_path / "s", 4 * CHUNK + 3)
    edit_manifest(root, lambda m: change(m["checksums"]["chunk_log"]))
    with pytest.raises(CorruptStoreError, match=field.replace(".", r"\.")) as err:
        stores.open(root, verify=False)
    assert given in str(err.value) and "expected" in str(err.value)


def test_a_chunk_log_beside_chunk_lists_or_on_a_ring_is_refused(tmp_path):
    root = _write(tmp_path / "s", 2 * CHUNK)
    edit_manifest(root, lambda m: m["checksums"].update(chunks={"action": []}))
    with pytest.raises(CorruptStoreError, match=r"checksums\.chunks"):
        stores.open(root, verify=False)
    ring = _write(tmp_path / "r", 2 * CHUNK, capacity=40)
    entry = read_manifest(root)["checksums"]["chunk_log"]
    edit_manifest(ring, lambda m: m["checksums"].update(chunk_log=entry))
    with pytest.raises(CorruptStoreError, match=r"checksums\.chunk_log"):
        stores.open(ring, verify=False)


def test_a_ring_keeps_its_chunk_lists_in_the_manifest(tmp_path):
    root = _write(tmp_path / "s", 10 * CHUNK, capacity=5 * CHUNK)
    m = read_manifest(root)
    assert "chunk_log" not in m["checksums"] and not (root / "chunks.sha256").exists()
    assert set(m["checksums"]["chunks"]) == set(m["schema"])


def test_a_store_written_before_1_6_opens_verifies_and_keeps_its_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(MemmapStore, "chunk_log", False)  # writes chunk lists, as 1.5 did
    root = _write(tmp_path / "s", 3 * CHUNK + 2)
    edit_manifest(root, format_version="1.5.0")
    monkeypatch.undo()
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", CHUNK)
    with stores.open(root, mode="a") as w:  # this rldata appends the way the store is written
        w.append(ted_marked(3 * CHUNK + 2, 2 * CHUNK))
    m = read_manifest(root)
    assert m["format_version"] == "1.5.0" and "chunk_log" not in m["checksums"]
    assert len(m["checksums"]["chunks"]["action"]) == 6
    assert not (root / "chunks.sha256").exists()
    with stores.open(root) as r:
        assert len(r) == 5 * CHUNK + 2 and verify(r) == []


def test_a_resumed_writer_extends_the_sidecar_and_the_tail(tmp_path):
    root = _write(tmp_path / "s", 2 * CHUNK + 7)
    with stores.open(root, mode="a") as w:
        w.append(ted_marked(2 * CHUNK + 7, CHUNK))  # fills chunk 2 from the committed tail
    with stores.open(root) as r:
        log = r.manifest["checksums"]["chunk_log"]
        assert (log["chunks"], log["tail"]["rows"]) == (3, 7) and verify(r) == []


def test_chunk_table_from_bytes_refuses_short_bytes_naming_the_counts(tmp_path):
    root = _write(tmp_path / "s", 3 * CHUNK)
    entry = read_manifest(root)["checksums"]["chunk_log"]
    with pytest.raises(
        CorruptStoreError, match=r"expected at least 1056 bytes for 3 chunks, found 10"
    ):
        chunklog.ChunkTable.from_bytes(entry, CHUNK, b"x" * 10, "remote: ")
