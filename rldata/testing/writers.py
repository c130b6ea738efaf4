"""A writer process body for crash and concurrency tests (importable, so any start method works)."""

from __future__ import annotations

from multiprocessing.connection import Connection

import rldata.stores as stores
from rldata.testing.ted_factory import ted_marked


def marked_writer(
    root: str, capacity: int | None, obs_dim: int, durable: bool, conn: Connection
) -> None:
    """Append :func:`ted_marked` rows forever (7 per append), committing every 21 rows.

    Sends ``"ready"`` once the store exists, then the committed row count after each commit,
    so a test knows what must survive when it kills this process.
    """
    w = stores.create(root, capacity=capacity, durable=durable)
    conn.send("ready")
    s = 0
    while True:
        w.append(ted_marked(s, 7, obs_dim=obs_dim))
        s += 7
        if s % 21 == 0:
            w.commit()
            conn.send(s)
