"""Kill a writer process at a random moment and check what survived (soak and CI trials).

The writer (:func:`rldata.testing.writers.marked_writer`) appends rows whose values encode
their serial and reports each commit; it is SIGKILLed at a random moment, and the store
must then open, verify, hold every reported row byte for byte, and take a resumed writer.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path
from typing import cast

import torch

from rldata import stores
from rldata.errors import RldataError
from rldata.testing.ted_factory import marked_serial, ted_marked
from rldata.testing.writers import marked_writer


def _ctx() -> mp.context.ForkServerContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["rldata.testing.writers"])
    return ctx


def one_kill(root: Path, capacity: int | None, rng: random.Random) -> tuple[bool, str]:
    ctx = _ctx()
    conn, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=marked_writer, args=(str(root), capacity, 3, True, child))
    proc.start()
    child.close()
    if conn.recv() != "ready":
        return False, "writer did not start"
    time.sleep(rng.uniform(0.0, 0.3))
    os.kill(cast(int, proc.pid), signal.SIGKILL)  # pid is set once start() returned
    proc.join()
    reported = 0
    while conn.poll():
        try:
            reported = conn.recv()
        except EOFError:
            break
    try:
        with stores.open(root) as s:
            faults_found = stores.verify(s)
            if faults_found:
                return False, faults_found[0]
            written = s.manifest["written"]
            if written < reported:
                return False, f"committed {reported} rows, store lists {written}"
            if len(s):
                serials = marked_serial(s.get(s.readable()))
                want = torch.arange(written - len(s), written)
                if not torch.equal(serials, want):
                    return False, "rows differ from what was written"
        with stores.open(root, mode="a") as w:
            w.append(ted_marked(w.next_traj_id() * 1000 + 10**6, 5))
        return True, ""
    except RldataError as exc:
        return False, str(exc)
