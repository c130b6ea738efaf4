"""A writer at an s3:// URL killed with SIGKILL mid-recording: the store is its last complete
commit, verifies, and a new writer continues from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rldata import stores
from rldata.stores.location import remote_commit as rc
from rldata.stores.location.places import location
from rldata.testing import ted_batch

_WRITER = """
import sys
from rldata import stores
from rldata.testing import ted_batch
with stores.create(sys.argv[1], backend=sys.argv[2]) as w:
    for k in range(10_000):  # commits until killed
        w.append(ted_batch([50, 30], start_traj_id=2 * k))
        w.commit()
"""


@pytest.mark.slow  # a subprocess importing torch, then commits until killed: 5-20 s
@pytest.mark.parametrize("backend", ["zarr", "parquet"])
def test_killed_writer_leaves_its_last_commit(s3_env: str, backend: str, cache_dir: Path) -> None:
    import s3fs

    bucket = f"kill-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem().mkdir(bucket)
    url = f"s3://{bucket}/ds"
    loc = location(url)
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, backend],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 120
    try:
        while len(rc.numbers(loc)) < 4:  # a few commits landed; kill it mid-way of another
            assert proc.poll() is None, "the writer ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    number, _doc = rc.latest(loc)
    with stores.open(url) as r:
        assert len(r) == 80 * (number - 1) and stores.verify(r) == []
    with stores.open(url, mode="a") as w:  # the next writer takes the next number
        w.append(ted_batch([7], start_traj_id=w.next_traj_id()))
    assert rc.latest(loc)[0] == number + 1
    left = cache_dir / "writing"  # the killed writer's working copy was cleaned up
    assert not [p for p in left.iterdir() if p.name.startswith(f"{proc.pid}-")]
    with stores.open(url) as r:
        assert len(r) == 80 * (number - 1) + 7 and stores.verify(r) == []
