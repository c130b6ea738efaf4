"""Parquet parts whose full columns are PLAIN and uncompressed: random rows read in place
(no row-group decode), bit for bit as memmap's; a part is hashed before any byte is served;
a footer or page header that does not fit the file is never followed; a writer holds only
its uncommitted rows (issue 19)."""

from __future__ import annotations

import types

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import rldata
import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _parquet, _parquet_plain, rowstore
from rldata.testing.ted_factory import assert_same_bits, episode_lengths, ted_batch

ROWS = 3000


def _write(path, backend: str, group: int, seed: int = 0, **kwargs) -> None:
    """``ROWS`` rows in three commits (three parts), row groups of ``group`` rows."""
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: 256)
    mp.setattr(_parquet, "_group_rows", lambda fields: group)
    lengths = episode_lengths(seed, ROWS, 150)
    third = len(lengths) // 3
    try:
        with stores.create(path, backend=backend) as w:
            traj = 0
            for part in (lengths[:third], lengths[third : 2 * third], lengths[2 * third :]):
                w.append(ted_batch(part, start_traj_id=traj, extra=True, **kwargs))
                traj += len(part)
                w.commit()
    finally:
        mp.undo()


def _no_group_decodes(monkeypatch) -> None:
    def refuse(self, f, part, g, names):
        raise AssertionError(f"row group {g} of {part['path']} was decoded")

    monkeypatch.setattr(_parquet.ParquetStore, "_decode_group", refuse)
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)  # a "large" store: no whole-store decode


def _codecs(path) -> dict[str, tuple[str, tuple]]:
    part = next((path / "data").glob("part-*.parquet"))
    rg = pq.ParquetFile(part).metadata.row_group(0)
    return {
        rg.column(i).path_in_schema.split(".list.")[0]: (
            rg.column(i).compression,
            rg.column(i).encodings,
        )
        for i in range(rg.num_columns)
    }


@pytest.mark.parametrize("group", [61, 333])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_rows_are_read_in_place_and_equal_memmap_rows(tmp_path, monkeypatch, group, seed):
    _write(tmp_path / "m", "memmap", group, seed)
    _write(tmp_path / "p", "parquet", group, seed)
    ref = stores.open(tmp_path / "m", verify=False)
    _no_group_decodes(monkeypatch)
    s = stores.open(tmp_path / "p", verify=False)
    rng = np.random.default_rng(seed)
    for size in (1, 256, ROWS):
        pos = torch.as_tensor(rng.integers(0, ROWS, size))
        assert_same_bits(s.get(pos), ref.get(pos))
    ends = torch.tensor([0, group - 1, group, ROWS // 3 - 1, ROWS // 3, ROWS - 1])
    assert_same_bits(s.get(ends), ref.get(ends))  # group and part edges: next values across them
    assert_same_bits(s.get(slice(100, 400)), ref.get(slice(100, 400)))
    assert s._groups.cached_bytes == 0  # nothing decoded into the cache


def test_a_sampled_batch_is_whole_rows_of_the_store(tmp_path, monkeypatch):
    _write(tmp_path / "p", "parquet", 100)
    _no_group_decodes(monkeypatch)
    batch = rldata.load(tmp_path / "p", verify=False, batch_size=256).sample()
    s = stores.open(tmp_path / "p", verify=False)
    rows = s.get(s.readable())
    ids = batch["collector", "traj_ids"]
    assert batch.batch_size[0] == 256
    # every sampled row is a stored row: its observation and next observation appear together
    stored = {
        (o.numpy().tobytes(), n.numpy().tobytes())
        for o, n in zip(rows["observation"], rows["next", "observation"])
    }
    for o, n in zip(batch["observation"], batch["next", "observation"]):
        assert (o.numpy().tobytes(), n.numpy().tobytes()) in stored
    assert int(ids.min()) >= 0


def test_new_parts_store_full_columns_plain_and_uncompressed(tmp_path):
    _write(tmp_path / "p", "parquet", 100)
    codecs = _codecs(tmp_path / "p")
    for name in ("observation", "action", "next.reward", "collector.traj_ids", "done"):
        assert codecs[name] == ("UNCOMPRESSED", ("RLE", "PLAIN")) or (
            codecs[name][0] == "UNCOMPRESSED" and "PLAIN" in codecs[name][1]
        ), (name, codecs[name])
    assert codecs["next.observation"][0] == "ZSTD"  # mostly nulls: stored once, compressed


def test_a_store_with_uint8_pixels_keeps_compressed_parts_read_by_row_group(tmp_path):
    _write(tmp_path / "m", "memmap", 50, pixels_shape=(2, 4, 4))
    _write(tmp_path / "p", "parquet", 50, pixels_shape=(2, 4, 4))
    codecs = _codecs(tmp_path / "p")
    assert codecs["pixels"][0] == codecs["observation"][0] == "ZSTD"
    assert "BYTE_STREAM_SPLIT" in codecs["observation"][1]  # floats: ~9% smaller
    ref, s = stores.open(tmp_path / "m", verify=False), stores.open(tmp_path / "p", verify=False)
    pos = torch.as_tensor(np.random.default_rng(3).integers(0, ROWS, 300))
    assert_same_bits(s.get(pos), ref.get(pos))


def _flip_value_byte(path, group: int) -> None:
    """Flip one byte inside row group ``group``'s observation values (size unchanged)."""
    part = sorted((path / "data").glob("part-*.parquet"))[0]
    meta = pq.ParquetFile(part).metadata
    rg = meta.row_group(group)
    chunk = next(
        rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema.startswith("obs")
    )
    at = chunk.data_page_offset + chunk.total_compressed_size - 5
    data = bytearray(part.read_bytes())
    data[at] ^= 0xFF
    part.write_bytes(bytes(data))


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("digests", [True, False])
def test_a_tampered_row_group_is_refused_on_first_read(tmp_path, monkeypatch, verify, digests):
    """With block digests (1.7) the block holding the byte is refused (rows 0-1023 here);
    a store without them (before 1.7) refuses its whole part."""
    monkeypatch.setattr(_parquet.ParquetStore, "block_digests", digests)
    _write(tmp_path / "p", "parquet", 100)
    assert ("blocks" in stores.open(tmp_path / "p").manifest["checksums"]) is digests
    _flip_value_byte(tmp_path / "p", 3)
    s = stores.open(tmp_path / "p", verify=verify)  # a verified open checks sizes only
    why = "does not match its block digest" if digests else "does not match the manifest"
    for rows in ([350], [5], list(range(300, 310))):  # the group, another group of the part
        with pytest.raises(CorruptStoreError, match=why) as err:
            s.get(torch.tensor(rows))
        assert "\n" not in str(err.value) and "part-00000.parquet" in str(err.value)
    assert s.get(torch.tensor([ROWS - 1])).batch_size[0] == 1  # other parts still serve
    batch = rldata.load(tmp_path / "p", verify=False, batch_size=8)  # small: decoded whole
    with pytest.raises(CorruptStoreError, match="does not match"):
        for _ in range(50):
            batch.sample()


def _chunk(offset: int, total: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        compression="UNCOMPRESSED",
        dictionary_page_offset=None,
        is_stats_set=False,
        statistics=None,
        data_page_offset=offset,
        total_compressed_size=total,
    )


@pytest.mark.parametrize(
    ("offset", "total"),
    [(10**12, 4096), (8, 10**12), (2**62, 2**62), (0, 4096), (8, 16)],
)
def test_a_footer_declaring_a_chunk_outside_the_file_is_never_followed(tmp_path, offset, total):
    path = tmp_path / "f"
    path.write_bytes(b"\x00" * 8192)
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        got = _parquet_plain.value_start(
            lambda at, n: os.pread(fd, n, at), _chunk(offset, total), 100, 3, 8192, "float32"
        )
    finally:
        os.close(fd)
    assert got is None


def test_a_page_header_that_is_not_one_plain_page_is_not_read_in_place(tmp_path):
    """Garbage where the page header should be: the part is decoded by pyarrow instead
    (which refuses it in one line), never read at a guessed offset."""
    import os

    path = tmp_path / "f"
    body = bytes(range(256)) * 8
    path.write_bytes(body)
    fd = os.open(path, os.O_RDONLY)
    try:
        for at in range(4, 64, 7):
            chunk = _chunk(at, 1600)
            read = lambda at, n: os.pread(fd, n, at)  # noqa: E731
            assert _parquet_plain.value_start(read, chunk, 100, 3, len(body), "float32") is None
    finally:
        os.close(fd)


def test_a_large_writer_holds_only_its_uncommitted_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)
    monkeypatch.setattr(_parquet, "_group_rows", lambda fields: 64)
    _write(tmp_path / "m", "memmap", 64)
    lengths = episode_lengths(0, ROWS, 150)
    with stores.create(tmp_path / "p", backend="parquet") as w:
        traj = 0
        for i in range(0, len(lengths), 5):
            w.append(ted_batch(lengths[i : i + 5], start_traj_id=traj, extra=True))
            traj += len(lengths[i : i + 5])
            if (i // 5) % 2:
                w.commit()
                held = next(iter(w._tail.values())).shape[0]
                assert held <= 1024 and w._base == len(w)  # only room, no committed rows
        ref = stores.open(tmp_path / "m", verify=False)
        pos = torch.as_tensor(np.random.default_rng(0).integers(0, len(w), 500))
        assert_same_bits(
            w.get(pos), ref.get(pos)
        )  # committed rows from parts, the rest from the tail
        assert_same_bits(w.get(slice(0, len(w))), ref.get(slice(0, len(w))))


def test_resuming_a_large_store_decodes_none_of_its_parts(tmp_path, monkeypatch):
    _write(tmp_path / "p", "parquet", 100)
    monkeypatch.setattr(_parquet, "EAGER_BYTES", 0)

    def refuse(self, part, cols):
        raise AssertionError("a writer decoded a whole part")

    monkeypatch.setattr(_parquet.ParquetStore, "_decode_part", refuse)
    with stores.open(tmp_path / "p", mode="a") as w:
        w.append(ted_batch([5, 7], start_traj_id=w.next_traj_id(), extra=True))
        w.commit()
        assert w.columns() is None  # a large writer hands out no whole columns
    s = stores.open(tmp_path / "p")
    assert len(s) == ROWS + 12 and stores.verify(s) == []


def test_a_store_above_the_map_budget_drops_its_pages_after_each_batch(tmp_path, monkeypatch):
    _write(tmp_path / "m", "memmap", 100)
    _write(tmp_path / "p", "parquet", 100)
    monkeypatch.setenv("RLDATA_MAP_BYTES", "1")
    _no_group_decodes(monkeypatch)
    dropped: list[int] = []
    real = _parquet_plain.PlainPart.release
    monkeypatch.setattr(
        _parquet_plain.PlainPart, "release", lambda self: dropped.append(1) or real(self)
    )
    ref, s = stores.open(tmp_path / "m", verify=False), stores.open(tmp_path / "p", verify=False)
    for seed in range(3):
        pos = torch.as_tensor(np.random.default_rng(seed).integers(0, ROWS, 200))
        assert_same_bits(s.get(pos), ref.get(pos))  # rows read again after the pages were dropped
    assert len(dropped) >= 3
