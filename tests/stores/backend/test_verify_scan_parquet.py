"""A full verify of a parquet store decodes each row group once (:class:`rldata.stores.
backend._verify_scan._Decoded`): chunk checksums and invariants are checked on that decode,
while the part files are hashed on a thread beside it, and every fault is reported exactly
as the separate passes report it (sound, rows that break each invariant, row groups that
straddle checksum chunks, a damaged part that voids the scan)."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _parquet, _parquet_codec, _verify_scan, blocks, rowstore
from rldata.stores.backend import verify as verify_mod
from rldata.stores.backend.blocks import block_rows
from rldata.testing.ted_factory import ted_marked

ROWS, EPISODE = 60, 20


@pytest.fixture
def small(monkeypatch):
    """7-row blocks, 16-row checksum chunks, 11-row row groups: most blocks and groups
    straddle chunks."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 7 * 70)
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", 16)
    monkeypatch.setattr(_parquet_codec, "MIN_GROUP_ROWS", 11)
    monkeypatch.setattr(_parquet_codec, "MAX_GROUP_ROWS", 11)


def _rows(interleave: bool):
    td = ted_marked(0, ROWS, episode_length=EPISODE)
    if interleave:  # rows of trajectories 0 and 1 alternate
        pairs = [i for pair in zip(range(20), range(20, 40)) for i in pair]
        td = td[torch.tensor(pairs + list(range(40, ROWS)))]
    return td


def _write(path, td) -> None:
    with stores.create(path, backend="parquet", durable=False) as w:
        for a in range(0, len(td), 25):
            w.append(td[a : a + 25])
            w.commit()


def _decoded_as(monkeypatch, edits) -> None:
    """Every decode of the store's rows returns them with ``edits`` applied: ``(key, row,
    value)`` (what a part written wrong, but hashed as written, would decode to). Both the
    row-group decode and the range reader are patched: the separate passes read short
    ranges in place, not through the decode."""
    decode, span = _parquet.ParquetStore._decode_groups, _parquet.ParquetStore._span

    def apply(cols, first):
        out = dict(cols)
        for key, row, value in edits:
            a = out.get(key)
            if a is not None and first <= row < first + len(a):
                out[key] = a = a.copy()
                a[row - first] = value
        return out

    def decode_groups(self, f, part, g0, g1, names):
        first = part["start"] + sum(f.metadata.row_group(g).num_rows for g in range(g0))
        return apply(decode(self, f, part, g0, g1, names), first)

    def read_span(self, start, stop, names, scan=False, check=True):
        return apply(span(self, start, stop, names, scan, check), start)

    monkeypatch.setattr(_parquet.ParquetStore, "_decode_groups", decode_groups)
    monkeypatch.setattr(_parquet.ParquetStore, "_span", read_span)


def _both(path, monkeypatch, **kw) -> tuple[list[str], list[str]]:
    """(the one-pass verify's faults, the separate passes' faults) of the store at ``path``."""
    scans = []
    real = _verify_scan.Scan.hashes

    def spy(self, jobs):
        scans.append(len(jobs))
        return real(self, jobs)

    with monkeypatch.context() as m:
        m.setattr(_verify_scan.Scan, "hashes", spy)
        with stores.open(path, verify=False) as s:
            assert block_rows(s) <= 7 and s.chunk_rows <= 16
            beside = _verify_scan.Scan(s, True).beside_stored_check()
            one = stores.verify(s, **kw)
    assert scans and beside, "the one-pass scan did not run beside the part hashes"
    with monkeypatch.context() as m:
        m.setattr(verify_mod, "applies", lambda store: False)
        with stores.open(path, verify=False) as s:
            separate = stores.verify(s, **kw)
    return one, separate


EDITS = {
    "sound": [],
    "done flag": [("next.done", 13, True)],
    "end mid-trajectory": [("next.done", 16, True), ("next.terminated", 16, True)],
    "observation": [("observation", 15, 1e6)],
    "observation at a chunk start": [("observation", 32, -7.0)],
    "observation at a group start": [("observation", 22, -7.0)],
    "traj id": [("collector.traj_ids", 33, 5)],
    "reward": [("next.reward", 47, 123.0)],
    "two keys": [("action", 2, 9.0), ("observation", 50, float("nan"))],
}


@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("edit", list(EDITS))
def test_one_pass_reports_what_the_separate_passes_report(
    tmp_path, small, monkeypatch, interleave, edit
):
    path = tmp_path / "s"
    _write(path, _rows(interleave))
    _decoded_as(monkeypatch, EDITS[edit])
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert (one == []) == (edit == "sound"), one


def test_a_broken_next_observation_stored_explicitly_is_named(tmp_path, small, monkeypatch):
    td = _rows(False)
    td.get(("next", "observation"))[30, 1] += 1000
    path = tmp_path / "s"
    _write(path, td)
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert any(
        "'next.observation' of row 30 differs from 'observation' of row 31" in f for f in one
    )


def test_without_invariants_and_with_a_bad_episode_index(tmp_path, small, monkeypatch):
    path = tmp_path / "s"
    _write(path, _rows(True))
    _decoded_as(monkeypatch, [("collector.traj_ids", 40, 77)])
    one, separate = _both(path, monkeypatch, invariants=False)
    assert one == separate
    assert any("row 40 has traj id 77" in f for f in one), one


@pytest.mark.parametrize("at", [0.1, 0.5, 0.97])
def test_a_damaged_part_voids_the_scan(tmp_path, small, monkeypatch, at):
    """A flipped byte in a part: its hash fails beside the scan, and what the scan found
    (or raised: the byte may break the decode) gives way to the separate passes' report."""
    path = tmp_path / "s"
    _write(path, _rows(False))
    part = sorted((path / "data").glob("part-*.parquet"))[1]
    data = bytearray(part.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    part.write_bytes(bytes(data))
    one, separate = _both(path, monkeypatch)
    assert one == separate
    assert any(part.name in f for f in one), one


def test_each_row_group_is_decoded_once(tmp_path, small, monkeypatch):
    """Row groups straddling checksum chunks are kept from one visit to the next, not
    decoded again; the range reader is not used."""
    path = tmp_path / "s"
    _write(path, _rows(True))
    decoded: list[tuple[str, int]] = []
    real = _parquet.ParquetStore._decode_groups

    def count(self, f, part, g0, g1, names):
        decoded.extend((part["path"], g) for g in range(g0, g1))
        return real(self, f, part, g0, g1, names)

    def no_span(self, *a, **k):
        raise AssertionError("the one pass read through _span")

    with stores.open(path, verify=False) as s:
        groups = sum(
            s._groups._file(i).metadata.num_row_groups for i in range(len(s._groups._parts))
        )
        monkeypatch.setattr(_parquet.ParquetStore, "_decode_groups", count)
        monkeypatch.setattr(_parquet.ParquetStore, "_span", no_span)
        assert stores.verify(s) == []
    assert len(decoded) == len(set(decoded)) == groups


def test_a_fault_on_the_part_hashing_thread_is_raised(tmp_path, small, monkeypatch):
    path = tmp_path / "s"
    _write(path, _rows(False))

    def boom(self):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(_parquet.ParquetStore, "stored_bytes_check", boom)
    with stores.open(path, verify=False) as s, pytest.raises(RuntimeError, match="on fire"):
        stores.verify(s)


def test_a_row_group_that_does_not_decode_in_a_sound_part_is_raised(tmp_path, small, monkeypatch):
    """The parts match their hashes, but a group does not decode (a hostile writer): the
    scan's one-line error reaches the caller, as the separate passes' did."""
    path = tmp_path / "s"
    _write(path, _rows(False))

    def bad(self, f, part, g0, g1, names):
        raise CorruptStoreError(f"{part['path']}: row groups [{g0}, {g1}) do not decode")

    monkeypatch.setattr(_parquet.ParquetStore, "_decode_groups", bad)
    with stores.open(path, verify=False) as s, pytest.raises(CorruptStoreError, match="decode"):
        stores.verify(s)


def test_the_statistics_log_is_reported_after_the_scan(tmp_path, small, monkeypatch):
    """The log's fault is listed as the separate passes list it, and an unexpected error
    while checking it reaches the caller."""
    from rldata.stores.format import stats

    path = tmp_path / "s"
    _write(path, _rows(False))

    def damaged(f, ref, where):
        raise CorruptStoreError(f"{where}: statistics log {ref['path']}: line 1 malformed")

    with monkeypatch.context() as m:
        m.setattr(stats, "check_log", damaged)
        one, separate = _both(path, monkeypatch)
    assert one == separate and len(one) == 1 and "statistics log" in one[0], one

    def broken(f, ref, where):
        raise RuntimeError("parser crashed")

    monkeypatch.setattr(stats, "check_log", broken)
    with stores.open(path, verify=False) as s, pytest.raises(RuntimeError, match="crashed"):
        stores.verify(s)


def test_memory_is_a_few_chunks(tmp_path, small, monkeypatch):
    """The scan holds a chunk's decoded rows a visit and one carried group: never a part."""
    path = tmp_path / "s"
    _write(path, _rows(False))
    largest = [0]
    real = _verify_scan._Decoded.read

    def watch(self, k, spans):
        got = real(self, k, spans)
        largest[0] = max(largest[0], max(len(a) for _, a in got.values()))
        return got

    monkeypatch.setattr(_verify_scan._Decoded, "read", watch)
    with stores.open(path, verify=False) as s:
        assert stores.verify(s) == []
        assert 0 < largest[0] <= s.chunk_rows
