"""Push and pull in bounded memory: the resident memory a push and a pull of a zarr or parquet
store add stays below the store's decoded size, and the copies are the store (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rldata.stores as stores
from rldata.sharing.digest import store_digest
from rldata.stores.format import schema as sch
from rldata.testing.ted_factory import ted_marked

ROOT = Path(__file__).resolve().parents[2]
SLOW = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import sys
    from rldata.sharing import pull, push

    big, small, out = sys.argv[1], sys.argv[2], sys.argv[3]
    push(small, f"file://{out}/warm-pushed")  # every code path and pool started once
    pull(f"file://{out}/warm-pushed", f"{out}/warm-pulled")

    def status(key):
        return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) << 10

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the resident high-water mark starts again from here
    base = status("VmRSS")
    pushed = push(big, f"file://{out}/pushed")
    pulled = pull(f"file://{out}/pushed", f"{out}/pulled")
    print(pushed.content_digest, pulled.content_digest, status("VmHWM") - base)
    """
)


def make_store(path: Path, rows: int, backend: str) -> str:
    with stores.create(path, backend=backend, durable=False) as w:
        for a in range(0, rows, 100_000):
            w.append(ted_marked(a, min(100_000, rows - a), episode_length=1000, obs_dim=17))
            w.commit()
    return str(path)


@pytest.mark.parametrize(
    "backend", [pytest.param("zarr", marks=SLOW), pytest.param("parquet", marks=SLOW)]
)
def test_push_and_pull_hold_less_than_the_store(tmp_path, backend):
    """A push of a 2M-row store (~360 MB decoded, below zarr's 512 MiB decoded cache) to a
    folder and a pull of it back raise the process's resident high-water mark, measured from
    after a warm-up push and pull of a small store, by less than the store's decoded size
    (a pass that decodes through the cache holds the whole store), and both report the
    store's content digest; the pulled copy holds every row. The budget for mapped store
    files is set small (``RLDATA_MAP_BYTES``), as a user bounds it."""
    rows = 2_000_000
    big = make_store(tmp_path / "big", rows, backend)
    small = make_store(tmp_path / "small", 3000, backend)
    with stores.open(big) as s:
        decoded = rows * sum(sch.row_bytes(e) for e in s.schema.values())
    env = dict(os.environ, MALLOC_ARENA_MAX="1", RLDATA_MAP_BYTES=str(16 << 20))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, big, small, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    want = store_digest(big)
    pushed, pulled, grown = out.stdout.split()
    assert (pushed, pulled) == (want, want)
    assert int(grown) < decoded, f"grew {int(grown) / 1e6:.0f} MB, store {decoded / 1e6:.0f} MB"
    with stores.open(tmp_path / "pulled", verify="full") as c:
        assert len(c) == rows
