"""A parquet reader's raw column reads (verify's checksum pass, the content digest) decode
only the row groups covering the rows asked for, one column at a time: never the whole
store, and the bytes equal memmap's."""

from __future__ import annotations

import pytest

import rldata.stores as stores
from rldata.stores.backend import _parquet, rowstore
from rldata.stores.backend.verify import content_digest
from rldata.testing.ted_factory import ted_batch

CHUNK, GROUP = 96, 16
LENGTHS = [40, 25, 60, 35, 50, 30, 45, 55, 20, 40]  # 400 rows, episodes across groups


def _write(path, backend: str) -> None:
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    mp.setattr(_parquet, "_group_rows", lambda fields: GROUP)
    try:
        with stores.create(path, backend=backend) as w:
            for i in range(0, len(LENGTHS), 4):  # three commits: three parts
                w.append(ted_batch(LENGTHS[i : i + 4], start_traj_id=i, extra=True))
                w.commit()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    for backend in ("memmap", "parquet"):
        _write(root / backend, backend)
    return root


def _probe(monkeypatch) -> list[int]:
    """Most rows one decode of row groups returns; ``_load`` (every row) fails the test."""
    largest = [0]
    real = _parquet.ParquetStore._decode_groups

    def decode(self, f, part, g0, g1, names):
        out = real(self, f, part, g0, g1, names)
        largest[0] = max(largest[0], len(next(iter(out.values()))))
        return out

    def load(self):
        raise AssertionError("a reader decoded the whole store")

    monkeypatch.setattr(_parquet.ParquetStore, "_decode_groups", decode)
    monkeypatch.setattr(_parquet.ParquetStore, "_load", load)
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)
    return largest


def test_verify_and_digest_decode_row_groups_not_the_store(written, monkeypatch):
    with stores.open(written / "memmap") as m:
        want = content_digest(m)
        rows = len(m)
    largest = _probe(monkeypatch)
    s = stores.open(written / "parquet", verify=False)
    assert stores.verify(s) == []
    assert content_digest(s) == want
    assert 0 < largest[0] <= CHUNK + GROUP < rows // 3


@pytest.mark.parametrize(("start", "stop"), [(0, 1), (15, 17), (5, 250), (130, 400), (399, 400)])
def test_a_raw_range_equals_memmap_bytes(written, monkeypatch, start, stop):
    _probe(monkeypatch)
    with stores.open(written / "memmap") as m, stores.open(written / "parquet") as p:
        for name in sorted(m.schema):
            assert bytes(p._raw(name, start, stop)) == bytes(m._raw(name, start, stop)), name


def test_a_scan_decodes_past_the_row_group_cache(written, monkeypatch):
    """row_blocks (verify, the card, convert) fills no cache: a whole-store pass holds one
    block, and its rows equal memmap's."""
    from rldata.stores.backend.blocks import row_blocks

    monkeypatch.setattr(_parquet, "SCAN_ROWS", 8)
    with stores.open(written / "memmap") as m:
        want = [b.rows for b in row_blocks(m, 50)]
    largest = _probe(monkeypatch)
    with stores.open(written / "parquet") as p:
        got = [b.rows for b in row_blocks(p, 50)]
        assert p._groups.cached_bytes == 0
    assert len(got) == len(want) == 8 and 0 < largest[0] <= 50 + 2 * GROUP
    for a, b in zip(got, want):
        assert (a == b).all()
