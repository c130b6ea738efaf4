"""The appended statistics log is read in memory that does not grow with the store: the
whole-store total and the verify check fold it line by line, and a hostile line is one
CorruptStoreError from every reader."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from rldata.errors import CorruptStoreError
from rldata.stores.format import stats as st

FEATURES = 17


def _record(t: int) -> st.Record:
    x = [float(t + i) for i in range(FEATURES)]
    return {"observation": [10, x, [v * v for v in x], x, [v + 1 for v in x]]}


def _log(lines: int, per_line: int = 200) -> tuple[bytes, dict]:
    """``lines`` commits of ``per_line`` new trajectories each (and the last trajectory of
    the line before, continued)."""
    body = b""
    for n in range(lines):
        first = n * per_line
        recs = {t: _record(t) for t in range(max(first - 1, 0), first + per_line)}
        body += st.log_line(recs)
    ref = {"path": "stats.log", "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    return body, ref


def _peak(read, body: bytes, ref: dict) -> int:
    tracemalloc.start()
    try:
        read(io.BytesIO(body), ref, "store s")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_total_equals_the_sum_of_the_trajectories_records():
    body, ref = _log(5)
    per_traj = st.read_log(io.BytesIO(body), ref, "s")
    total = st.log_total(io.BytesIO(body), ref, "s")
    want = st.summary(per_traj.values())
    got = st.summary([total])
    assert got.keys() == want.keys()
    for key in want:
        assert got[key]["count"] == want[key]["count"] == 5 * 200 * 10 + 4 * 10
        for f in ("mean", "std", "min", "max"):
            assert got[key][f] == pytest.approx(want[key][f], rel=1e-12)


@pytest.mark.parametrize("read", [st.log_total, st.check_log], ids=["total", "check"])
def test_reading_a_log_4x_longer_takes_no_more_memory(read):
    small, ref_small = _log(10)
    big, ref_big = _log(40)
    kept = _peak(st.read_log, big, ref_big)  # the per-trajectory records: 4x more
    assert kept > 2 * _peak(st.read_log, small, ref_small)
    assert _peak(read, big, ref_big) < 1.2 * _peak(read, small, ref_small)
    assert _peak(read, big, ref_big) < kept / 3


_hostile_record = hst.one_of(
    hst.none(),
    hst.integers(),
    hst.text(max_size=5),
    hst.lists(hst.integers(), max_size=6),
    hst.dictionaries(
        hst.text(max_size=3),
        hst.one_of(
            hst.integers(),
            hst.lists(hst.one_of(hst.integers(), hst.none(), hst.text(max_size=2)), max_size=6),
        ),
        min_size=1,
        max_size=2,
    ),
)


@settings(max_examples=60, deadline=None)
@given(rec=_hostile_record, where=hst.integers(0, 1))
def test_a_hostile_record_is_one_corrupt_store_error_from_every_reader(rec, where):
    good = {"0": _record(0), "1": _record(1)}
    lines = [dict(good), {"1": rec}] if where else [{"1": rec}, dict(good)]
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    ref = {"path": "stats.log", "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    outcomes = []
    for read in (st.read_log, st.log_total, st.check_log):
        try:
            read(io.BytesIO(body), ref, "store s")
            outcomes.append("ok")
        except CorruptStoreError as exc:
            assert "statistics log stats.log" in str(exc)
            outcomes.append("refused")
    # the whole-store readers merge every record, so they refuse what the check refuses
    assert outcomes[1] == outcomes[2]
    if not isinstance(rec, dict):
        assert outcomes == ["refused"] * 3
