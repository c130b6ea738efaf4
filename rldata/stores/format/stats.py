"""Statistics that merge exactly: per-trajectory sums recorded at commit time.

Each commit of an append-only store appends one line to ``stats.log`` (format 1.5;
stores written before it hold one ``stats-<generation>.json`` file a commit): for every
trajectory that has rows in the commit, and every numeric key, the row count and
per-feature ``sum``, ``sumsq``, ``min`` and ``max`` (float64) of those rows. Records of
one trajectory from several commits add up (sums add, minima and maxima combine), so a
dataset's, an episode subset's or a merge of datasets' statistics are exact without a
pass over the rows. Keys with more than :data:`MAX_FEATURES` values a row (pixels) are
pooled into one feature. Rings do not record them (their oldest rows are overwritten).

Quantiles come from a log-bucket sketch per feature (below), kept whole-store in the
manifest's ``quantiles`` field and merged at each commit; merging sketches is exact too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

import numpy as np
import torch

MAX_FEATURES = 64
SKIP = {"collector.traj_ids"}
Record = dict[str, list]  # key -> [count, sum, sumsq, min, max] (lists of features)


def numeric_keys(schema: dict[str, dict]) -> list[str]:
    """Keys whose statistics are recorded: numbers, not flags nor trajectory ids."""
    return sorted(k for k, e in schema.items() if e["dtype"] != "bool" and k not in SKIP)


def of_rows(columns: dict[str, torch.Tensor], traj_ids: torch.Tensor) -> dict[int, Record]:
    """Per-trajectory records of rows ``[N]`` (``columns``: key -> ``[N, ...]``).

    Rows are grouped into runs of one trajectory (already so for a single env's rows; else
    sorted by trajectory, stably) and reduced with numpy's ``reduceat`` on one thread: a
    commit's statistics cost about as much as copying its rows, where torch's scatter
    kernels took 6x longer on two threads of a busy machine than on one."""
    t = traj_ids.reshape(-1).numpy()
    n = len(t)
    if n == 0:
        return {}
    order = None
    if n > 1 and bool((t[1:] < t[:-1]).any()):  # interleaved trajectories (several envs)
        order = np.argsort(t, kind="stable")
        t = t[order]
    starts = np.flatnonzero(np.concatenate(([True], t[1:] != t[:-1])))
    ids = t[starts].tolist()
    counts = np.diff(np.append(starts, n))
    out: dict[int, Record] = {int(i): {} for i in ids}
    for key, values in columns.items():
        flat = values.reshape(n, -1)
        if flat.shape[1] > MAX_FEATURES:
            count = counts * flat.shape[1]
            v, v_sq, v_lo, v_hi = (x.numpy() for x in _pooled_rows(flat))
        else:
            v = _float64(flat)
            with np.errstate(over="ignore"):
                v_sq = v * v
            count, v_lo, v_hi = counts, v, v
        if order is not None:
            v, v_sq, v_lo, v_hi = v[order], v_sq[order], v_lo[order], v_hi[order]
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is nan, as recorded
            s = np.add.reduceat(v, starts, axis=0).tolist()
            sq = np.add.reduceat(v_sq, starts, axis=0).tolist()
        lo = np.minimum.reduceat(v_lo, starts, axis=0).tolist()
        hi = np.maximum.reduceat(v_hi, starts, axis=0).tolist()
        c = count.tolist()
        for j, i in enumerate(ids):
            out[int(i)][key] = [int(c[j]), s[j], sq[j], lo[j], hi[j]]
    return out


def _float64(t: torch.Tensor) -> np.ndarray:
    """``t`` as a float64 array, converted by numpy on this thread (torch's conversion
    splits over its threads, which stall on a busy machine); torch only for dtypes numpy
    lacks (bfloat16)."""
    try:
        return t.detach().numpy().astype(np.float64)
    except TypeError:
        return t.to(torch.float64).numpy()


def _pooled_rows(flat: torch.Tensor, rows: int = 1024) -> tuple[torch.Tensor, ...]:
    """Per-row sum, sum of squares, min and max ``[N, 1]`` (float64) of a pooled key, a
    slice of rows at a time (pixels: ~6x faster than one feature per value, and float64
    copies bounded to ``rows`` rows)."""
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    integers = not (flat.dtype.is_floating_point or flat.dtype.is_complex)
    for a in range(0, flat.shape[0], rows):
        block = flat[a : a + rows]
        lo, hi = torch.aminmax(block, dim=1)
        if integers:
            sums, squares = _integer_sums(block)
        else:
            v = block.to(torch.float64)
            sums, squares = v.sum(1), torch.linalg.vecdot(v, v)
        for out, x in zip(parts, (sums, squares, lo, hi)):
            out.append(x.to(torch.float64).unsqueeze(1))
    if not parts[0]:
        return tuple(torch.zeros(0, 1, dtype=torch.float64) for _ in range(4))
    return tuple(torch.cat(p) for p in parts)


def _integer_sums(block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sum and sum of squares of integer values, exact in int64 and without a
    float64 copy of the block (uint8 pixels: ~7x faster than the float path)."""
    a = block.contiguous().numpy()
    sums = a.sum(1, dtype=np.int64)
    squares = np.einsum("ij,ij->i", a, a, dtype=np.int64, casting="unsafe")
    return torch.from_numpy(sums), torch.from_numpy(squares)


LOG = "stats.log"
"""The appended statistics of an append-only store (format 1.5): one JSON line a commit, so a
commit writes only its own records and the manifest holds one fixed-size entry."""


def log_line(records: dict[int, Record]) -> bytes:
    """The line a commit appends: its rows' records, traj id (as a string) -> record."""
    body = json.dumps({str(t): r for t, r in records.items()}, separators=(",", ":"))
    return body.encode() + b"\n"


def read_log(f: BinaryIO, ref: dict, where: object) -> dict[int, Record]:
    """Per-trajectory records of the commits in the first ``ref["bytes"]`` bytes of a
    statistics log, checked against ``ref["sha256"]`` (bytes past them are a crashed
    writer's line, never committed). One pass, a line at a time: memory holds the result
    and one commit's line, not the log; nothing is returned before the digest matched.

    Raises:
        CorruptStoreError: the file is shorter, its committed bytes differ, or a line is
            not a JSON object.
    """
    out: dict[int, Record] = {}

    def take(t: int, rec: Record) -> None:
        out[t] = merge(out[t], rec) if t in out else rec

    _scan_log(f, ref, where, take)
    return out


def log_total(f: BinaryIO, ref: dict, where: object) -> Record:
    """The record of every row the log's commits hold, folded line by line: memory is one
    record, not one a trajectory (100M rows hold 100k trajectories: ~0.8 GB of records),
    so ``stats()`` and ``rldata info`` stay flat as a store grows. Checked as
    :func:`read_log` checks."""
    total: list[Record] = [{}]

    def take(_t: int, rec: Record) -> None:
        total[0] = merge(total[0], rec)

    _scan_log(f, ref, where, take)
    return total[0]


def check_log(f: BinaryIO, ref: dict, where: object) -> None:
    """Check a statistics log as :func:`read_log` does, keeping nothing (``rldata verify``)."""

    def take(_t: int, rec: Record) -> None:
        merge({}, rec)  # its shape is checked as a merge would read it

    _scan_log(f, ref, where, take)


def _scan_log(f: BinaryIO, ref: dict, where: object, take: Callable[[int, Record], None]) -> None:
    """Read the committed lines, hand each trajectory's record to ``take``, then check the
    length and digest (``take`` must keep nothing a caller sees before this returns)."""
    from rldata import _untrusted as untrusted
    from rldata.errors import CorruptStoreError

    need, got, h = ref["bytes"], 0, hashlib.sha256()
    bad: str | None = None
    lines = 0
    while got < need:
        line = f.readline(need - got)
        if not line:
            break
        got, lines = got + len(line), lines + 1
        h.update(line)
        if bad is not None:
            continue
        try:
            data = untrusted.loads_json(line, where, "statistics log", error=CorruptStoreError)
            if not isinstance(data, dict):
                raise CorruptStoreError("expected a JSON object")
            for t, rec in data.items():
                if not isinstance(rec, dict):
                    raise CorruptStoreError(f"trajectory {t}: expected an object")
                take(int(t), rec)
        except (CorruptStoreError, ValueError, TypeError) as exc:
            bad = f"line {lines} malformed ({str(exc).splitlines()[0][:80]})"
    if got < need:
        raise CorruptStoreError(
            f"{where}: statistics log {ref['path']}: expected at least {need} bytes, found "
            f"{got} (truncated)"
        )
    if h.hexdigest() != ref["sha256"]:
        raise CorruptStoreError(
            f"{where}: statistics log {ref['path']}: sha256 does not match the manifest"
        )
    if bad is not None:
        raise CorruptStoreError(f"{where}: statistics log {ref['path']}: {bad}")


def merge(a: Record, b: Record) -> Record:
    """The record of the rows of ``a`` and ``b`` together."""
    out = dict(a)
    for key, (n, s, sq, lo, hi) in b.items():
        if key not in out:
            out[key] = [n, list(s), list(sq), list(lo), list(hi)]
            continue
        n0, s0, sq0, lo0, hi0 = out[key]
        out[key] = [
            n0 + n,
            [x + y for x, y in zip(s0, s)],
            [x + y for x, y in zip(sq0, sq)],
            [min(x, y) for x, y in zip(lo0, lo)],
            [max(x, y) for x, y in zip(hi0, hi)],
        ]
    return out


def by_trajectory(files: Iterable[dict[str, Record]]) -> dict[int, Record]:
    """Merge commit files (traj id as a string -> record) into one record per trajectory."""
    out: dict[int, Record] = {}
    for data in files:
        for t, rec in data.items():
            out[int(t)] = merge(out[int(t)], rec) if int(t) in out else rec
    return out


def summary(records: Iterable[Record]) -> dict[str, dict]:
    """Dataset statistics of some trajectories' records: per key ``count`` and per-feature
    ``mean``, ``std`` (population), ``min``, ``max``."""
    total: Record = {}
    for rec in records:
        total = merge(total, rec)
    out = {}
    for key, (n, s, sq, lo, hi) in sorted(total.items()):
        mean = [x / n for x in s] if n else []
        std = [math.sqrt(max(q / n - m * m, 0.0)) for q, m in zip(sq, mean)] if n else []
        out[key] = {"count": n, "mean": mean, "std": std, "min": lo, "max": hi}
    return out


# --- quantiles: a log-bucket sketch whose merge is exact ---------------------------------------
#
# Each feature's values fall in buckets of relative width GAMMA: a value x > 0 goes to bucket
# ceil(log_GAMMA(x)) (negatives likewise by magnitude, |x| < TINY to a zero count), so a
# quantile read back is within +-2% of a value of that rank. At most MAX_BINS buckets a sign
# are kept: those more than MAX_BINS below the largest magnitude fold into the lowest kept
# one. The fold depends only on the largest bucket, so merging two sketches (adding counts,
# then folding) equals the sketch of all their values: statistics of a merge are exact.

GAMMA = 1.04
MAX_BINS = 128
TINY = 1e-12
SKETCH_VALUES = 1 << 16
"""Values a commit sketches per pooled key (pixels): an even stride over the rows' values."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_LOG_GAMMA = math.log(GAMMA)
Side = list  # [lowest bucket index, [count, ...]] or [] when empty
Sketch = dict[str, Any]  # {"zero": int, "pos": Side, "neg": Side}


def sketch_of(columns: dict[str, torch.Tensor]) -> dict[str, list[Sketch]]:
    """Quantile sketches of rows ``[N]``: key -> one sketch per feature (pooled keys: one)."""
    out = {}
    for key, values in columns.items():
        n = values.shape[0] if values.dim() else 1
        rows = values.detach().reshape(n, -1)
        if rows.shape[1] > MAX_FEATURES:  # pooled: an even stride, before any conversion
            flat = rows.reshape(-1)
            rows = flat[:: max(1, flat.numel() // SKETCH_VALUES)].reshape(-1, 1)
        v = _float64(rows)
        out[key] = [_sketch(v[:, j]) for j in range(v.shape[1])]
    return out


def _sketch(x: np.ndarray) -> Sketch:
    x = x[np.isfinite(x)]
    big = np.abs(x) >= TINY
    return {
        "zero": int((~big).sum()),
        "pos": _side(x[big & (x > 0)]),
        "neg": _side(-x[big & (x < 0)]),
    }


def _side(mags: np.ndarray) -> Side:
    if mags.size == 0:
        return []
    idx = np.ceil(np.log(mags) / _LOG_GAMMA).astype(np.int64)
    lo = int(idx.min())
    return _fold(lo, np.bincount(idx - lo).tolist())


def _fold(lo: int, counts: list[int]) -> Side:
    """Fold buckets more than MAX_BINS below the highest into the lowest kept bucket."""
    extra = len(counts) - MAX_BINS
    if extra > 0:
        counts = [sum(counts[: extra + 1]), *counts[extra + 1 :]]
        lo += extra
    return [lo, counts]


def _merge_side(a: Side, b: Side) -> Side:
    if not a or not b:
        return list(a or b)
    lo = min(a[0], b[0])
    hi = max(a[0] + len(a[1]), b[0] + len(b[1]))
    counts = [0] * (hi - lo)
    for start, cs in (a, b):
        for i, c in enumerate(cs):
            counts[start - lo + i] += c
    return _fold(lo, counts)


def merge_sketches(
    a: dict[str, list[Sketch]] | None, b: dict[str, list[Sketch]] | None
) -> dict[str, list[Sketch]]:
    """The sketches of the values of ``a`` and ``b`` together (exactly those of the union)."""
    out = {k: list(v) for k, v in (a or {}).items()}
    for key, feats in (b or {}).items():
        if key not in out or len(out[key]) != len(feats):
            out[key] = list(feats)
            continue
        out[key] = [
            {
                "zero": x["zero"] + y["zero"],
                "pos": _merge_side(x["pos"], y["pos"]),
                "neg": _merge_side(x["neg"], y["neg"]),
            }
            for x, y in zip(out[key], feats)
        ]
    return out


def quantile(s: Sketch, q: float) -> float | None:
    """The value of rank ``q`` (0..1) in a sketch (None when it holds no value)."""
    neg = (
        [(-_value(s["neg"][0] + i), c) for i, c in enumerate(s["neg"][1])][::-1] if s["neg"] else []
    )
    pos = [(_value(s["pos"][0] + i), c) for i, c in enumerate(s["pos"][1])] if s["pos"] else []
    buckets = [*neg, (0.0, s["zero"]), *pos]
    total = sum(c for _, c in buckets)
    if total == 0:
        return None
    rank, seen = q * (total - 1), 0
    for value, c in buckets:
        seen += c
        if c and seen > rank:
            return value
    return buckets[-1][0]


def _value(i: int) -> float:
    """A bucket's representative: within GAMMA's relative error of every value in it."""
    return 2.0 * GAMMA**i / (GAMMA + 1.0)


def check_sketches(data: Any, where: object) -> dict[str, list[Sketch]]:
    """Sketches read from a manifest (untrusted): shape-checked, else CorruptStoreError."""
    from rldata.errors import CorruptStoreError

    def side_ok(side: Any) -> bool:
        return side == [] or (
            isinstance(side, list)
            and len(side) == 2
            and type(side[0]) is int
            and isinstance(side[1], list)
            and 0 < len(side[1]) <= MAX_BINS
            and all(type(c) is int and c >= 0 for c in side[1])
        )

    ok = isinstance(data, dict) and all(
        isinstance(feats, list)
        and all(
            isinstance(s, dict)
            and type(s.get("zero")) is int
            and side_ok(s.get("pos"))
            and side_ok(s.get("neg"))
            for s in feats
        )
        for feats in data.values()
    )
    if not ok:
        raise CorruptStoreError(
            f"{where}: manifest field 'quantiles': expected key -> per-feature sketches "
            f"{{zero, pos, neg}}"
        )
    return data


def add_quantiles(summary_: dict[str, dict], sketches: dict[str, list[Sketch]]) -> None:
    """Add ``"quantiles": {q: [per feature]}`` to each key of a :func:`summary` that has sketches."""
    for key, entry in summary_.items():
        feats = sketches.get(key)
        if feats:
            entry["quantiles"] = {str(q): [quantile(s, q) for s in feats] for q in QUANTILES}
