"""Durability: the order of every commit's syscalls, a full disk, a read-only directory.

The order test patches ``os.fsync`` / ``os.replace`` / ``os.open`` and checks the protocol
of docs/FORMAT.md section 6. The disk tests mount a small tmpfs (they need root, which the
CI machine has; elsewhere they fail, naming why, rather than skip) and assert a clear
error with every committed row intact.
"""

from __future__ import annotations

import gc
import os
import subprocess
import uuid
from pathlib import Path

import pytest

import rldata.stores as stores
from rldata.errors import StoreError
from rldata.testing.ted_factory import marked_serial, ted_marked


def _name(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd{fd}"


@pytest.fixture
def trace(monkeypatch):
    log: list[tuple[str, str]] = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open

    def fsync(fd):
        log.append(("fsync", _name(fd)))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        log.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_replace(src, dst, **kw)

    def open_(path, flags, *args, **kw):
        fd = real_open(path, flags, *args, **kw)
        if flags & os.O_CREAT:
            log.append(("create", os.fspath(path)))
        return fd

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "open", open_)
    return log


def test_every_commit_follows_the_protocol(tmp_path, trace):
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 1100))  # fills a block of digests (1,024 of these rows)
        trace.clear()
        w.commit()
    ops = trace
    payload_syncs = [i for i, (op, p) in enumerate(ops) if op == "fsync" and p.endswith(".memmap")]
    temp = next(i for i, (op, p) in enumerate(ops) if op == "create" and "rldata.json.tmp-" in p)
    temp_sync = next(
        i for i, (op, p) in enumerate(ops) if op == "fsync" and "rldata.json.tmp-" in p
    )
    rename = next(
        i for i, (op, p) in enumerate(ops) if op == "replace" and p.endswith("/rldata.json")
    )
    dir_sync = [i for i, (op, p) in enumerate(ops) if op == "fsync" and p == str(root)]
    assert len(payload_syncs) == 11  # every key's file, once
    assert max(payload_syncs) < temp < temp_sync < rename < max(dir_sync)
    digests = next(i for i, (op, p) in enumerate(ops) if op == "fsync" and "blocks.sha256" in p)
    assert digests < temp  # the block digests (format 1.4) are durable with the payload
    index = next(i for i, (op, p) in enumerate(ops) if op == "fsync" and "episodes.log" in p)
    assert index < rename  # the index lines the manifest names are durable first


@pytest.fixture
def tmpfs():
    mount = Path(f"/tmp/rldata-tmpfs-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.fail("the disk tests mount a tmpfs and need root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def _writer_until_full(root: Path) -> int:
    """Append and commit until the disk refuses; return the rows of the last commit."""
    committed = 0
    w = stores.create(root, durable=True)
    try:
        for k in range(10_000):
            w.append(ted_marked(k * 500, 500, obs_dim=64))
            w.commit()
            committed = (k + 1) * 500
    except StoreError as err:
        assert "a write failed" in str(err) and "\n" not in str(err)
        with pytest.raises(StoreError, match="earlier write failed"):
            w.append(ted_marked(10**6, 5, obs_dim=64))
    finally:
        w.close()
    return committed


def test_a_full_disk_is_a_clear_error_and_keeps_every_commit(tmpfs):
    root = tmpfs / "s"
    committed = _writer_until_full(root)
    assert committed > 0
    with stores.open(root) as r:  # opens and verifies
        assert stores.verify(r) == []
        assert len(r) == committed
        assert marked_serial(r.get(r.readable())).tolist() == list(range(committed))


def test_a_read_only_directory_refuses_writers_and_serves_readers(tmpfs):
    root = tmpfs / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 30))
    del w
    gc.collect()  # the writer's shared mappings hold the file system busy until collected
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with pytest.raises(StoreError, match="read-only"):
        stores.open(root, mode="a")
    with stores.open(root) as r:
        assert len(r) == 30 and stores.verify(r) == []
