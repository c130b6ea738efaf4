"""A stored-once ``next`` column read from its row group's page (``_parquet_page``): the
explicit rows and values equal pyarrow's for every codec, encoding, dtype and shape the
writer may use; a reader learns them only for the row groups a batch touches, so the
first batch does not decode every part; a page whose bytes were changed either still
rebuilds the written rows or is refused in one line, never served (issue 19)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.backend import (
    _parquet,
    _parquet_blocks,
    _parquet_decode,
    _parquet_page,
    _parquet_plain,
)
from rldata.stores.backend._parquet_codec import decode_column, encode_table
from rldata.testing.ted_factory import ted_transitions

HYPO = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
ROWS, GROUP = 1200, 200


def _page_file(cur: np.ndarray, nxt: np.ndarray, dtype: str, codec: str, split: bool) -> bytes:
    """One parquet file of columns ``k`` and ``next.k`` (stored once), groups of ``GROUP``."""
    shape = list(cur.shape[1:])
    schema = {"k": {"shape": shape, "dtype": dtype}, "next.k": {"shape": shape, "dtype": dtype}}
    table = encode_table({"k": cur, "next.k": nxt}, schema, {}, ["k"], GROUP)
    leaf = _leaf(shape, dtype)
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        row_group_size=GROUP,
        compression=codec,
        use_dictionary=False,
        use_byte_stream_split=[leaf] if split and dtype != "int64" else False,
    )
    return buf.getvalue()


def _leaf(shape: list[int], dtype: str) -> str:
    scalar = shape in ([], [1]) and not dtype.startswith("complex")
    return "next.k" if scalar else "next.k.list.element"


def _columns(rng, n: int, dtype: str, shape: list[int], explicit: np.ndarray):
    d = col.np_dtype(dtype)
    if d.kind == "c":
        cur = (rng.normal(size=(n, *shape)) + 1j * rng.normal(size=(n, *shape))).astype(d)
    else:
        cur = (rng.normal(size=(n, *shape)) * 100).astype(d)
    nxt = np.concatenate([cur[1:], cur[:1]])
    nxt[explicit] = (nxt[explicit] + 1).astype(d)  # differs from the next row: stored
    return cur, nxt


@HYPO
@given(
    seed=hs.integers(0, 2**16),
    dtype=hs.sampled_from(["float32", "float64", "int64", "complex64"]),
    shape=hs.sampled_from([[], [1], [3], [2, 2]]),
    codec=hs.sampled_from(["none", "zstd", "snappy", "gzip"]),
    split=hs.booleans(),
    density=hs.floats(0, 0.5),
)
def test_explicit_rows_and_values_are_pyarrows(seed, dtype, shape, codec, split, density):
    rng = np.random.default_rng(seed)
    explicit = rng.random(ROWS) < density
    cur, nxt = _columns(rng, ROWS, dtype, shape, explicit)
    data = _page_file(cur, nxt, dtype, codec, split)
    f = pq.ParquetFile(io.BytesIO(data))
    meta = f.metadata
    leaf = [meta.schema.column(i).path for i in range(meta.num_columns)].index(_leaf(shape, dtype))
    column = meta.schema.column(leaf)
    levels = (column.max_definition_level, column.max_repetition_level)
    entry = {"shape": shape, "dtype": dtype}
    d = col.np_dtype(dtype)
    width = int(np.prod(shape, dtype=np.int64)) * (2 if d.kind == "c" else 1)
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        got = _parquet_page.explicit_rows(
            lambda a, n: data[a : a + n], rg.column(leaf), levels, rg.num_rows, width, d, len(data)
        )
        assert got is not None, (g, codec, split)
        values, nulls = decode_column(
            f.read_row_group(g, columns=["next.k"]).column(0), entry, rg.num_rows, True
        )
        assert np.flatnonzero(~nulls).tolist() == got[0].tolist()
        assert got[1].view(d).reshape(values.shape).tobytes() == values.tobytes()


@HYPO
@given(at=hs.floats(0, 1, exclude_max=True), xor=hs.integers(1, 255), cut=hs.booleans())
def test_any_changed_byte_of_a_page_is_a_none_or_a_result_never_an_error(at, xor, cut):
    rng = np.random.default_rng(0)
    cur, nxt = _columns(rng, ROWS, "float32", [3], rng.random(ROWS) < 0.05)
    data = bytearray(_page_file(cur, nxt, "float32", "zstd", True))
    meta = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    chunk = meta.row_group(1).column(1)
    first, total = chunk.data_page_offset, chunk.total_compressed_size
    i = first + int(at * total)
    if cut:
        data = data[:i]
    else:
        data[i] ^= xor
    got = _parquet_page.explicit_rows(
        lambda a, n: bytes(data[a : a + n]), chunk, (3, 1), GROUP, 3, np.dtype("float32"), len(data)
    )
    assert got is None or (len(got[0]) == len(got[1]) and (np.diff(got[0]) > 0).all())


def _write(root, **kwargs) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_parquet, "_group_rows", lambda fields: GROUP)
        mp.setattr(_parquet_blocks, "block_rows_for", lambda widest: 50)  # inside a group
        with stores.create(root, backend="parquet", durable=False) as w:
            for k in range(0, ROWS, 500):
                w.append(ted_transitions(min(500, ROWS - k), start_traj_id=k, episode_length=37))
                w.commit()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pq_page") / "s"
    _write(root)
    with stores.open(root) as s:
        rows = s.get(torch.arange(ROWS))
    return root, rows


def test_a_batch_learns_the_explicit_rows_of_the_groups_it_touches_only(pristine, monkeypatch):
    root, rows = pristine

    def no_pyarrow(*args, **kwargs):
        raise AssertionError("the page was decoded by pyarrow")

    monkeypatch.setattr(_parquet_decode.ParquetDecode, "_next_group", no_pyarrow)
    with stores.open(root) as s:
        got = s.get(torch.tensor([3, 210, 260]))  # part 0: groups 0 and 1 of 3
        assert torch.equal(got["next", "observation"], rows["next", "observation"][[3, 210, 260]])
        plain = s._groups._plain[0]
        assert plain.ok.tolist() == [True, True, False] and plain.page_reads == 2
        assert s._groups._plain.get(1) is None  # the other parts: not even opened
        assert all(r < 2 * GROUP for r in plain.next_rows["observation"].tolist())
        got = s.get(torch.arange(ROWS))  # every group, in any order: bit for bit
        assert torch.equal(got["next", "observation"], rows["next", "observation"])


def test_a_page_pyarrow_must_decode_gives_the_same_rows(pristine, monkeypatch):
    root, rows = pristine
    monkeypatch.setattr(_parquet_page, "explicit_rows", lambda *a, **k: None)
    monkeypatch.setattr("rldata.stores.backend._parquet_plain.explicit_rows", lambda *a, **k: None)
    with stores.open(root) as s:
        got = s.get(torch.randperm(ROWS))
        assert sum(p.page_reads for p in s._groups._plain.values() if p) == 0
    with stores.open(root) as s:
        order = torch.randperm(ROWS)
        got = s.get(order)
        assert torch.equal(got["next", "observation"], rows["next", "observation"][order])


@HYPO
@given(part=hs.integers(0, 2), group=hs.integers(0, 1), at=hs.floats(0, 1, exclude_max=True))
def test_a_changed_byte_in_a_next_page_is_served_as_written_or_refused(
    pristine, tmp_path_factory, part, group, at
):
    src, rows = pristine
    root = tmp_path_factory.mktemp("pq_page_hostile") / "s"
    shutil.copytree(src, root)
    try:
        path = sorted((root / "data").glob("part-*.parquet"))[part]
        meta = pq.read_metadata(path)
        names = [meta.schema.column(i).path for i in range(meta.num_columns)]
        g = min(group, meta.num_row_groups - 1)
        chunk = meta.row_group(g).column(names.index("next.observation.list.element"))
        data = bytearray(path.read_bytes())
        data[chunk.data_page_offset + int(at * chunk.total_compressed_size)] ^= 0x5A
        path.write_bytes(bytes(data))
        with stores.open(root) as s:
            index = torch.arange(ROWS)
            try:
                got = s.get(index)
            except CorruptStoreError as err:
                assert "\n" not in str(err) and (path.name in str(err) or "digest" in str(err))
            else:  # a byte the rows do not depend on (a statistic, a padding bit)
                assert torch.equal(got["next", "observation"], rows["next", "observation"])
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def test_pyarrow_codec_names_cover_what_the_writer_uses():
    assert _parquet.COMPRESSION.upper() in _parquet_page.CODECS
    assert pa.Codec.is_available(_parquet_page.CODECS["ZSTD"])


def test_a_store_with_block_digests_reads_no_page_header_of_a_full_column(pristine, monkeypatch):
    root, rows = pristine
    real, headers = _parquet_plain.value_start, []

    def counted(*args, **kwargs):
        headers.append(args[-1] if len(args) > 6 else kwargs.get("header", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(_parquet_plain, "value_start", counted)
    with stores.open(root) as s:
        order = torch.randperm(ROWS)
        assert torch.equal(s.get(order)["observation"], rows["observation"][order])
    assert headers and not any(headers)  # offsets from the footers alone


@HYPO
@given(shift=hs.integers(-64, 64).filter(bool), row=hs.integers(0, ROWS - 1))
def test_footer_offsets_that_miss_the_values_are_read_again_from_the_headers(pristine, shift, row):
    """A part whose pages are not where its footer alone puts them (another writer's
    layout): the rows fail their digests, the headers are read, the rows are served."""
    root, rows = pristine
    real = _parquet_plain.value_start

    def footer_misses(*args, **kwargs):
        at = real(*args, **kwargs)
        footer = not (args[-1] if len(args) > 6 else kwargs.get("header", True))
        return max(4, at + 4 * shift) if footer and at is not None else at

    with pytest.MonkeyPatch.context() as mp, stores.open(root) as s:
        mp.setattr(_parquet_plain, "value_start", footer_misses)
        got = s.get(torch.tensor([row]))
        assert all(not p.footer_only for p in s._groups._plain.values() if p is not None)
        for key in ("observation", ("next", "observation"), "action"):
            assert torch.equal(got[key], rows[key][[row]])
