"""What readers pay for checking a store before serving it: open with and without
``verify`` on 1M Pendulum-shaped rows (11 keys, 10-row episodes), median of rounds with
the min-max spread. Both sides open the same committed store; the checked side also reads
every committed byte against its checksum, and the index and statistics files.

Usage: ``python benchmarks/bench_open.py [--rows 1000000] [--rounds 7]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rldata import stores
from rldata.testing.ted_factory import ted_transitions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rldata-open-") as d:
        root = Path(d) / "s"
        with stores.create(root, durable=False) as w:
            for k in range(0, args.rows, 100_000):
                w.append(ted_transitions(min(100_000, args.rows - k), start_traj_id=k))
                w.commit()
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for verify in (False, True):  # interleaved: the machine's noise hits both alike
                t0 = time.perf_counter()
                stores.open(root, verify=verify).close()
                times[verify].append(time.perf_counter() - t0)
    print(f"| {args.rows:,} rows, {args.rounds} rounds | open, s: median (min–max) |")
    print("|---|---:|")
    for verify, label in ((False, "verify=False"), (True, "verify=True (default)")):
        t = times[verify]
        print(f"| {label} | {statistics.median(t):.3f} ({min(t):.3f}–{max(t):.3f}) |")


if __name__ == "__main__":
    main()
