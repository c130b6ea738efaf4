"""What the chunk checksums cost the manifest as a store grows: its bytes, and the CPU time
of writing (``manifest.dumps``: serialize and self-checksum) and reading (``manifest.parse``:
JSON, self-checksum, field checks) it, for HalfCheetah-shaped stores (11 keys, 65,536-row
chunks) of 1M to 100M rows, with the chunk lists in the manifest (format 1.5) beside the
chunk sidecar's fixed entry (format 1.6). Every commit writes the manifest and every open
reads it. Synthetic digests; the quantile sketches are left out (only the checksums differ).

Usage: ``python benchmarks/bench_manifest.py [--rows 1000000 10000000 ...] [--repeat 15]``
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import halfcheetah_block  # noqa: E402

from rldata import stores  # noqa: E402
from rldata.stores.format import chunklog  # noqa: E402
from rldata.stores.format import manifest as mf  # noqa: E402


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _hex(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def manifest_of(base: dict, rows: int, sidecar: bool) -> dict:
    """``base`` (a real manifest) as if it held ``rows`` rows, in either layout."""
    m = copy.deepcopy(base)
    m["written"] = m["length"] = m["cursor"] = rows
    sums = m["checksums"]
    sums.pop("blocks", None)  # fixed size in both layouts
    c, keys = sums["chunk_rows"], sorted(m["schema"])
    full, r = divmod(rows, c)
    if sidecar:
        sums["chunks"] = {}
        sums[chunklog.FIELD] = {
            "path": chunklog.LOG,
            "keys": keys,
            "chunks": full,
            "bytes": full * len(keys) * chunklog.DIGEST,
            "sha256": _hex("sidecar"),
            "tail": {"rows": r, "sha256": {k: _hex(full, k) for k in keys}} if r else None,
        }
    else:
        sums.pop(chunklog.FIELD, None)
        tail = lambda k: [[r, _hex(full, k)]] if r else []  # noqa: E731
        sums["chunks"] = {k: [[c, _hex(i, k)] for i in range(full)] + tail(k) for k in keys}
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000, 100_000_000]
    )
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-manifest-")) / "s"
    with stores.create(root, durable=False) as w:
        w.append(halfcheetah_block(0, 70, seed=0))
    base = mf.read(root)
    base.pop("quantiles", None)
    print("| rows | chunk checksums | manifest, bytes | write (dumps), ms | read (parse), ms |")
    print("|---:|---|---:|---:|---:|")
    for rows in args.rows:
        for sidecar, name in ((False, "listed in the manifest (1.5)"), (True, "sidecar (1.6)")):
            m = manifest_of(base, rows, sidecar)
            data = mf.dumps(m)
            write = _median_ms(lambda m=m: mf.dumps(m), args.repeat)
            read = _median_ms(lambda data=data: mf.parse(data, "bench"), args.repeat)
            print(f"| {rows:,} | {name} | {len(data):,} | {write:.2f} | {read:.2f} |")


if __name__ == "__main__":
    main()
