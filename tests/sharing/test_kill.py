"""A push killed with SIGKILL mid-way, rerun, ends identical to the source (S3 and file://)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import fsspec
import pytest

import rldata
from rldata.sharing import objects as ob
from rldata.sharing import push
from rldata.sharing.digest import store_digest
from rldata.testing import ted_batch

_SCRIPT = """
import sys
from rldata.sharing import push
push(sys.argv[1], sys.argv[2], workers=1)
"""


@pytest.fixture(params=["s3", "file"])
def kill_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A destination a separate process can reach: the moto server, or a local directory URL."""
    if request.param == "file":
        return f"file://{tmp_path}/dest"
    request.getfixturevalue("s3_env")
    import s3fs

    bucket = f"kill-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem().mkdir(bucket)
    return f"s3://{bucket}/ds"


def _big_store(path: Path) -> Path:
    """200k rows (~10 MB of payload): 20 generated episodes, appended 10 times under new ids."""
    td = ted_batch([1000] * 20)
    with rldata.stores.create(path, capacity=None) as w:
        for k in range(10):
            part = td.clone()
            part["collector", "traj_ids"] += 20 * k
            w.append(part)
    return path


@pytest.mark.slow  # a subprocess importing torch, then a 10 MB push: 10-30 s on a loaded machine
def test_killed_push_rerun_ends_identical(tmp_path: Path, kill_target: str) -> None:
    src = _big_store(tmp_path / "big")
    fs, root = fsspec.core.url_to_fs(kill_target)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(src), kill_target],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 120
    local = kill_target.startswith("file://")
    # a local destination is built in a staging sibling (the destination policy)
    journal = (
        (lambda: any(Path(root).parent.glob(f".{Path(root).name}.rldata-staging-*/{ob.INDEX}")))
        if local
        else (lambda: fs.exists(f"{root}/{ob.INDEX}"))
    )
    try:
        while not journal():  # the first verified object is journalled
            assert proc.poll() is None, "the push ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/{ob.MANIFEST}")  # killed before the end: not a store yet
    with pytest.raises(rldata.errors.StoreNotFoundError):
        rldata.open(kill_target)

    summary = push(src, kill_target)
    if local:  # the killed run's staging sibling was removed, the copy swapped in whole
        assert not list(Path(root).parent.glob(f".{Path(root).name}.rldata-*"))
    else:
        assert summary.skipped >= 1  # the journalled objects did not travel again
    index = ob.read_index(fs.cat_file(f"{root}/{ob.INDEX}"))
    assert index is not None and index["complete"]
    for rel, entry in index["objects"].items():  # every object byte-identical to the source's
        assert fs.cat_file(f"{root}/{rel}") == (src / rel).read_bytes()[: entry["size"]], rel
    with rldata.open(kill_target) as s:
        assert rldata.api.content_digest(s) == store_digest(src)
        assert rldata.stores.verify(s) == []
