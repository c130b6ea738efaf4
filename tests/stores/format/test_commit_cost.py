"""What a memmap commit costs: it fsyncs only what changed, and nothing when nothing changed."""

from __future__ import annotations

import os
import signal
import time

import pytest

import rldata.stores as stores
from rldata.stores.backend._memmap import MemmapStore
from rldata.stores.format import commit as commit_mod
from rldata.testing.ted_factory import ted_marked


@pytest.fixture
def syncs(monkeypatch):
    """Every fsync/fdatasync and rename while the fixture is active, as (kind, path) pairs."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def fdatasync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync, raising=False)
    monkeypatch.setattr(os, "replace", replace)
    return events


def _rel(events, root):
    return [(kind, path.replace(str(root), "") or "/") for kind, path in events]


@pytest.mark.parametrize("capacity", [None, 64], ids=["append-only", "ring"])
def test_commit_with_new_rows_fsyncs_each_payload_file_once_and_the_directory_once(
    tmp_path, syncs, capacity
):
    root = tmp_path / "s"
    w = stores.create(root, capacity=capacity)
    w.append(ted_marked(0, 10))
    w.commit()
    w.append(ted_marked(10, 10))
    syncs.clear()
    w.commit()
    names = _rel(syncs, root)
    fsynced = [p for k, p in names if k == "fsync"]
    payload = ["/" + f for f in w.manifest["payload"]["files"].values()]
    episodes = "/" + w.manifest["episodes"]["path"]
    assert sorted(p for p in fsynced if p.endswith(".memmap")) == sorted(payload)
    assert fsynced.count("/") == 1  # the store directory, once, after the manifest rename
    assert names.index(("fsync", "/")) > names.index(("rename", "/rldata.json"))
    assert not [p for p in fsynced if p.endswith("meta.json")]  # advisory, never fsynced
    if capacity is None:  # format 1.4: the episode log and the block digests, appended
        assert names.index(("fsync", episodes)) < names.index(("rename", "/rldata.json"))
        assert "/data/blocks.sha256" not in fsynced  # no block filled: the tail is in the manifest
        # format 1.5: the statistics log, appended and fsynced before the manifest
        assert names.index(("fsync", "/stats.log")) < names.index(("rename", "/rldata.json"))
        assert ("rename", "/stats.log") not in names
        # payload, episode log, statistics log, manifest (temp file), directory
        assert len(fsynced) == len(payload) + 4
    else:  # a ring rewrites its (bounded) episode index whole
        assert names.index(("rename", episodes)) < names.index(("rename", "/rldata.json"))
        # payload, episode index (temp file), manifest (temp file), directory
        assert len(fsynced) == len(payload) + 3
    w.close()


@pytest.mark.parametrize("capacity", [None, 64], ids=["append-only", "ring"])
def test_commit_and_close_with_nothing_new_write_nothing(tmp_path, syncs, capacity):
    root = tmp_path / "s"
    w = stores.create(root, capacity=capacity)
    w.append(ted_marked(0, 10))
    w.commit()
    before = (root / "rldata.json").read_bytes(), sorted(os.listdir(root))
    syncs.clear()
    w.commit()
    w.close()
    assert syncs == []
    assert ((root / "rldata.json").read_bytes(), sorted(os.listdir(root))) == before


def test_reopened_writer_closing_without_appending_writes_nothing(tmp_path, syncs):
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 10))
    generation = stores.open(root).manifest["generation"]
    syncs.clear()
    stores.open(root, mode="a").close()
    assert syncs == []
    assert stores.open(root).manifest["generation"] == generation


def test_an_empty_store_commits_its_first_manifest(tmp_path):
    with stores.create(tmp_path / "s") as w:
        assert w.manifest["generation"] == 1
    assert len(stores.open(tmp_path / "s")) == 0


def test_meta_files_are_rewritten_only_when_the_row_count_changes(tmp_path):
    root = tmp_path / "s"
    w = stores.create(root, capacity=20)
    w.append(ted_marked(0, 20))
    w.commit()
    meta = root / "data" / "meta.json"
    inode = meta.stat().st_ino
    w.append(ted_marked(20, 5))  # a full ring: still 20 positions filled
    w.commit()
    assert meta.stat().st_ino == inode
    w.close()


def test_fsync_all_fsyncs_every_file_and_raises_the_first_error(tmp_path):
    fds = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT) for i in range(4)]
    try:
        commit_mod.fsync_all(fds)
        closed = os.open(tmp_path / "g", os.O_RDWR | os.O_CREAT)
        os.close(closed)
        with pytest.raises(OSError):
            commit_mod.fsync_all([*fds, closed])
    finally:
        for fd in fds:
            os.close(fd)


def test_fsync_all_works_in_a_forked_child(tmp_path):
    fds = [os.open(tmp_path / f"f{i}", os.O_RDWR | os.O_CREAT) for i in range(3)]
    commit_mod.fsync_all(fds)  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child has no pool threads: it must make its own, not hang
        try:
            commit_mod.fsync_all(fds)
            os._exit(0)
        except BaseException:
            os._exit(1)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)
    assert done[0] == pid, "fsync_all hung in a forked child"
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_first_commit_fsyncs_the_new_payload_directories_before_the_manifest(tmp_path, syncs):
    root = tmp_path / "s"
    w = stores.create(root)
    syncs.clear()
    w.append(ted_marked(0, 10))
    assert [k for k, _ in syncs if k == "fsync"] == []  # deferred to the commit
    w.commit()
    names = _rel(syncs, root)
    manifest_at = names.index(("rename", "/rldata.json"))
    before = {p for k, p in names[:manifest_at] if k == "fsync"}
    assert {"/data", "/data/next", "/data/collector", "/"} <= before
    syncs.clear()
    w.append(ted_marked(10, 10))
    w.commit()
    assert "/data/next" not in {p for k, p in _rel(syncs, root) if k == "fsync"}
    w.close()


@pytest.mark.parametrize("log", [False, True], ids=["whole index (ring, 1.3)", "episode log"])
def test_commits_keep_only_the_current_and_previous_episode_index(tmp_path, monkeypatch, log):
    monkeypatch.setattr(MemmapStore, "block_digests", log)
    root = tmp_path / "s"
    (root).mkdir()
    w = stores.create(root)
    (root / "episodes-99999999.json").write_text("{}")  # left by a crashed writer
    for s in range(0, 50, 10):
        w.append(ted_marked(s, 10))
        w.commit()
        names = sorted(p.name for p in root.glob("episodes-*.json"))
        if log:  # one file, appended (the crashed writer's file is not the store's)
            assert w.manifest["episodes"]["path"] == "episodes.log" and len(names) <= 1
        else:
            assert w.manifest["episodes"]["path"] in names
            assert len(names) <= 2, names
    w.close()
