"""SIGKILLs of a writer whose every commit appends to the chunk sidecar (format 1.6): every
committed row survives, the store verifies and a resumed writer appends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import torch

import rldata.stores as stores
from rldata.testing.ted_factory import marked_serial, ted_marked

WRITER = """
import sys
from rldata import stores
from rldata.stores.backend import rowstore
from rldata.testing.ted_factory import ted_marked
rowstore.MAX_CHUNK_ROWS = 16  # a chunk fills at nearly every commit
w = stores.create(sys.argv[1])
print("ready", flush=True)
s = 0
while True:
    w.append(ted_marked(s, 7))
    s += 7
    if s % 21 == 0:
        w.commit()
        print(s, flush=True)
"""


def _kill_once(root, rng: random.Random) -> int:
    """Start the writer, SIGKILL it at a random moment; return the rows it reported committed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.05, 0.6))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = proc.stdout.read().split()
    return int(lines[-1]) if lines else 0


def test_kills_between_the_sidecar_and_the_manifest_lose_no_committed_row(tmp_path):
    rng = random.Random(19)
    filled = 0
    for i in range(5):
        root = tmp_path / f"k{i}"
        reported = _kill_once(root, rng)
        with stores.open(root) as r:
            assert stores.verify(r) == [], f"trial {i}"
            written = r.manifest["written"]
            filled = max(filled, r.manifest["checksums"]["chunk_log"]["chunks"])
            assert written >= reported, f"trial {i}: committed {reported}, lists {written}"
            if written:
                want = torch.arange(written)
                assert torch.equal(marked_serial(r.get(r.readable())), want), f"trial {i}"
        with stores.open(root, mode="a") as w:  # past a crashed writer's uncommitted records
            w.append(ted_marked(w.next_traj_id() * 1000 + 10**6, 40))
        with stores.open(root) as r:
            assert stores.verify(r) == [] and len(r) == written + 40, f"trial {i}"
    assert filled > 0  # the kills hit a writer that had appended to the sidecar
