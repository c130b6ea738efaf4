"""Opening a store with block digests to append checks what the writer extends (the rows
after the last full block, the bytes after each recorded hash state, the episode index, the
explicit next rows) and refuses a fault there in one line, leaving the store byte for byte as
it was; it reads no more of a larger store; and whatever else was altered is never certified
by the writer's commit: ``rldata verify`` still finds it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.api as api
import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import rowstore
from rldata.stores.format import append_sha256 as appended
from rldata.stores.format import blocksums
from rldata.stores.format import manifest as mf
from rldata.testing.ted_factory import ted_marked

pytestmark = pytest.mark.skipif(
    appended._lib() is None, reason="libcrypto's SHA256_* are not reachable through _hashlib"
)
BACKENDS = ["memmap", "parquet"]
CHUNK, BLOCK = 64, 16  # small units: full chunks and blocks, then partial ones


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store per backend: 1,000 rows in three commits (block tail 8 rows, chunk tail 40)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore, "MAX_CHUNK_ROWS", CHUNK)
    mp.setattr(blocksums, "MAX_BLOCK_ROWS", BLOCK)
    out = {}
    try:
        for backend in BACKENDS:
            out[backend] = _write(tmp_path_factory.mktemp(backend) / "s", backend, [300, 300, 400])
    finally:
        mp.undo()
    return out


def _write(path: Path, backend: str, commits: list[int], episode: int = 250) -> Path:
    with stores.create(path, backend=backend, durable=False) as w:
        at = 0
        for n in commits:
            w.append(ted_marked(at, n, episode_length=episode))
            w.commit()
            at += n
    return path


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _committed_ranges(root: Path, tails_only: bool) -> list[tuple[str, int, int]]:
    """``(file, start, stop)`` of committed bytes: every one (``tails_only=False``), or only
    those an append open must check (the block tail rows, the bytes after each recorded
    state, the whole episode index, memmap's explicit next rows)."""
    m = json.loads((root / "rldata.json").read_bytes())
    states = m[appended.FIELD]["files"]
    out = []
    for ref in (m["stats"], m["checksums"]["chunk_log"]):
        at = states[ref["path"]]["at"] if tails_only else 0
        out.append((ref["path"], at, ref["bytes"]))
    out.append((m["episodes"]["path"], 0, m["episodes"]["bytes"]))
    b = m["checksums"]["blocks"]
    need = b["blocks"] * len(b["keys"]) * 32
    out.append((b["path"], states[b["path"]]["at"] if tails_only else 0, need))
    payload = m["payload"]
    tail0 = b["blocks"] * b["block_rows"] if tails_only else 0
    if m["backend"] == "memmap":
        for key, rel in payload["files"].items():
            e = m["schema"][key]
            row = _row_bytes(e)
            once = key.startswith("next.") and key[5:] in payload["next_stored_once"]
            if once:
                count = payload["next_once_rows"][key[5:]]
                out.append((rel, 0, count * (8 + row)))
            else:
                out.append((rel, tail0 * row, m["written"] * row))
    elif not tails_only:
        out += [(p["path"], 0, p["bytes"]) for p in payload["parts"]]
    return [r for r in out if r[2] > r[1]]


def _row_bytes(entry: dict) -> int:
    from rldata.stores.format import schema as sch

    return sch.row_bytes(entry)


def _flip(root: Path, rel: str, offset: int, mask: int) -> None:
    with open(root / rel, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def _draw_flip(data, root: Path, tails_only: bool) -> tuple[str, int]:
    ranges = _committed_ranges(root, tails_only)
    rel, a, b = data.draw(hs.sampled_from(ranges), label="file")
    offset = data.draw(hs.integers(a, b - 1), label="offset")
    _flip(root, rel, offset, data.draw(hs.integers(1, 255), label="mask"))
    return rel, offset


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data(), backend=hs.sampled_from(BACKENDS))
def test_a_flipped_byte_the_writer_extends_is_refused_at_open_store_unchanged(
    built, tmp_path_factory, data, backend
):
    root = tmp_path_factory.mktemp("t") / "s"
    shutil.copytree(built[backend], root)
    _draw_flip(data, root, tails_only=True)
    before = _files(root)
    with pytest.raises(CorruptStoreError) as err:
        stores.open(root, mode="a")
    assert "\n" not in str(err.value)
    assert _files(root) == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=hs.data(), backend=hs.sampled_from(BACKENDS))
def test_a_flipped_committed_byte_is_refused_or_never_certified(
    built, tmp_path_factory, data, backend
):
    """Anywhere in the committed bytes: refused at the open, or the open is lazy and the
    commit after it (refused where it reads what was altered: the chunk sidecar it loads)
    leaves the fault for ``rldata verify`` to find."""
    root = tmp_path_factory.mktemp("t") / "s"
    shutil.copytree(built[backend], root)
    _draw_flip(data, root, tails_only=False)
    before = _files(root)
    try:
        w = stores.open(root, mode="a")
    except CorruptStoreError as exc:
        assert "\n" not in str(exc)
        assert _files(root) == before
        return
    manifest = (root / "rldata.json").read_bytes()
    try:
        with w:
            w.append(ted_marked(1000, 100, episode_length=250))
            w.commit()
    except CorruptStoreError as exc:
        assert "\n" not in str(exc)
        assert (root / "rldata.json").read_bytes() == manifest
    assert api.verify(str(root)) != []


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_append_after_a_lazy_open_verifies(built, tmp_path, backend):
    root = tmp_path / "s"
    shutil.copytree(built[backend], root)
    for k in range(3):  # each writer resumes the states the previous one recorded
        with stores.open(root, mode="a") as w:
            w.append(ted_marked(1000 + 37 * k, 37, episode_length=250))
    assert api.verify(str(root)) == []
    assert len(stores.open(root)) == 1000 + 3 * 37


class _Counted:
    """Bytes hashed and ``pread`` while counting is on."""

    def __init__(self, monkeypatch) -> None:
        self.n = 0
        self.on = False
        real_sha, real_pread = hashlib.sha256, os.pread
        real_update = appended.RunningSha256.update
        counter = self

        class Sha:
            def __init__(self, data=b"") -> None:
                self._h = real_sha(data)
                counter.add(data)

            def update(self, data) -> None:
                counter.add(data)
                self._h.update(data)

            def __getattr__(self, name):
                return getattr(self._h, name)

        def pread(fd, size, offset):
            got = real_pread(fd, size, offset)
            counter.add(got)
            return got

        def update(h, data) -> None:
            counter.add(data)
            real_update(h, data)

        monkeypatch.setattr(hashlib, "sha256", Sha)
        monkeypatch.setattr(os, "pread", pread)
        monkeypatch.setattr(appended.RunningSha256, "update", update)

    def add(self, data) -> None:
        if self.on:
            self.n += memoryview(data).nbytes


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_append_open_reads_no_more_of_a_larger_store(tmp_path, monkeypatch, backend):
    """Two stores of two episodes and two commits, the last of 200 rows: 1,000 rows and
    10,008 rows (the same block and chunk tails). The episode index and memmap's explicit
    next rows are read whole (a few records a trajectory), so the episodes stay fixed."""
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", CHUNK)
    monkeypatch.setattr(blocksums, "MAX_BLOCK_ROWS", BLOCK)
    small = _write(tmp_path / "small", backend, [800, 200], episode=500)
    large = _write(tmp_path / "large", backend, [9808, 200], episode=5004)
    counted = _Counted(monkeypatch)
    reads = {}
    for name, root in (("small", small), ("large", large)):
        counted.n, counted.on = 0, True
        stores.open(root, mode="a").close()
        counted.on = False
        reads[name] = counted.n
    assert reads["large"] <= 1.25 * reads["small"], reads  # 10x the rows (longer numbers)
    counted.n, counted.on = 0, True  # what a full check reads instead: the rows' bytes
    stores.open(large, verify="full").close()
    assert counted.n > 5 * reads["large"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crash_between_the_appended_files_and_the_manifest_recovers(
    built, tmp_path, monkeypatch, backend
):
    """The logs and sidecars were appended and fsynced, the manifest never written: the next
    writer resumes the old manifest's states and overwrites the uncommitted bytes."""
    root = tmp_path / "s"
    shutil.copytree(built[backend], root)
    manifest = (root / "rldata.json").read_bytes()
    w = stores.open(root, mode="a")
    w.append(ted_marked(1000, 300, episode_length=250))

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mf, "write", crash)
    with pytest.raises(Exception, match="No space left"):
        w.commit()
    monkeypatch.undo()
    w._lock.release()  # the process died: its lock is gone
    w._lock = None
    assert (root / "rldata.json").read_bytes() == manifest
    assert (root / "stats.log").stat().st_size > json.loads(manifest)["stats"]["bytes"]
    with stores.open(root, mode="a") as w2:
        w2.append(ted_marked(1000, 150, episode_length=250))
    assert api.verify(str(root)) == []
    assert len(stores.open(root)) == 1150
