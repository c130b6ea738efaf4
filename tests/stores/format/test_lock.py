"""One writer at a time, across handles and processes; readers never wait."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import rldata.stores as stores
from rldata.errors import StoreLockedError
from rldata.stores.format.lock import WriterLock

HOLD = textwrap.dedent(
    """
    import sys, time
    import rldata.stores as stores
    w = stores.open(sys.argv[1], mode="a")
    print("locked", flush=True)
    time.sleep(60)
    """
)


def test_second_handle_in_one_process_is_refused(tmp_path):
    w = stores.create(tmp_path / "s")
    with pytest.raises(StoreLockedError) as info:
        stores.open(tmp_path / "s", mode="a")
    msg = str(info.value)
    assert "locked by another writer" in msg and str(tmp_path / "s") in msg and "rldata.lock" in msg
    w.close()


def test_writer_in_another_process_is_named_and_freed_when_it_dies(tmp_path):
    root = tmp_path / "s"
    stores.create(root).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match=f"pid {proc.pid}"):
            stores.open(root, mode="a")
        assert len(stores.open(root)) == 0  # readers are not blocked
    finally:
        proc.kill()
        proc.wait()
    stores.open(root, mode="a").close()  # the OS released the dead writer's lock


def test_close_releases_and_lock_is_reentrant_safe(tmp_path):
    lock = WriterLock(tmp_path)
    lock.acquire()
    lock.acquire()  # idempotent for the holder
    other = WriterLock(tmp_path)
    with pytest.raises(StoreLockedError):
        other.acquire()
    lock.release()
    lock.release()
    other.acquire()
    assert other.held
    other.release()
