"""A pass over a whole raw zarr store (verify, the content digest; what push, pull and
convert run) in memory that does not grow with the store (issue 19): every block is read
in place from the checked shards, also a block that crosses a shard, and the mapped
shards' pages are dropped from the process every ``PASS_BYTES`` served, so the store's
resident pages stay under that bound at N and at 4N rows."""

from __future__ import annotations

import pytest
import torch

import rldata.api as api
import rldata.stores as stores
from rldata.stores.backend import _zarr, _zarr_plain, _zarr_shards, rowstore, verify
from rldata.testing.ted_factory import ted_batch

CHUNK, INNER = 1024, 64  # a 64-float observation: a 256 KiB shard per key
OBS = (64,)
N = 4 * CHUNK
PASS = 512 << 10  # the bound under test: two shards of a key (a 4N store maps 32)
EPISODE = 100


def _write(path, rows: int, compression: str) -> None:
    mp = pytest.MonkeyPatch()
    mp.setattr(rowstore.RowStore, "_pick_chunk_rows", lambda self: CHUNK)
    mp.setattr(_zarr, "inner_rows", lambda chunk, widest: INNER)
    mp.setenv("RLDATA_ZARR_COMPRESSION", compression)
    try:
        lengths = [EPISODE] * (rows // EPISODE) + ([rows % EPISODE] if rows % EPISODE else [])
        with stores.create(path, backend="zarr") as w:
            w.append(ted_batch(lengths, obs_shape=OBS))
            w.commit()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("pass")
    for rows in (N, 4 * N):
        _write(root / f"raw-{rows}", rows, "auto")
    _write(root / f"lz4-{4 * N}", 4 * N, "lz4")
    return root


def _mapped_resident(root) -> int:
    """Resident bytes of this process's mappings of files under ``root``."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(maxsplit=6)
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                inside = len(head) >= 6 and head[-1].strip().startswith(str(root))
            elif inside and line.startswith("Rss:"):
                total += int(head[1]) * 1024
    return total


@pytest.mark.parametrize("rows", [N, 4 * N])
@pytest.mark.parametrize("job", ["digest", "verify"])
def test_a_whole_store_pass_keeps_the_mapped_shards_under_the_pass_bound(
    written, monkeypatch, rows, job
):
    root = written / f"raw-{rows}"
    monkeypatch.setattr(_zarr_plain, "PASS_BYTES", PASS)
    peak = [0]
    served = [0]
    plain_raw = _zarr_plain.ZarrPlainReads._plain_raw

    def spy(self, name, start, stop):
        got = plain_raw(self, name, start, stop)
        served[0] += 0 if got is None else len(got)
        peak[0] = max(peak[0], _mapped_resident(root))
        return got

    monkeypatch.setattr(_zarr_plain.ZarrPlainReads, "_plain_raw", spy)
    if job == "digest":
        with stores.open(root, verify=False) as s:
            stores.content_digest(s)
    else:
        assert api.verify(str(root)) == []
    shard = CHUNK * 4 * OBS[0]
    assert served[0] > 4 * PASS or rows == N  # the large store's pass is several bounds
    # the bound, plus the shards of the block being read and the kernel's fault-around
    assert peak[0] <= PASS + 4 * shard, (rows, peak[0])


def test_a_block_across_shards_reads_in_place_and_digests_as_the_decode_path(written, monkeypatch):
    monkeypatch.setattr(verify, "block_rows", lambda store, rows=None: CHUNK - 300)
    with stores.open(written / f"lz4-{4 * N}", verify=False) as s:
        want = stores.content_digest(s)

    def no_decode(self, key, path, j):
        raise AssertionError(f"inner chunk {j} of {key} decoded: the pass left the shard map")

    monkeypatch.setattr(_zarr_shards.Objects, "inner", no_decode)
    with stores.open(written / f"raw-{4 * N}", verify=False) as s:
        assert stores.content_digest(s) == want


def test_a_run_of_rows_reads_in_place_and_leaves_the_cache_empty(written):
    """verify's and convert's reads of a store that fits the decoded cache: no copy of the
    whole store into it (a sample still fills it, for the gathers after)."""
    raw, lz4 = written / f"raw-{4 * N}", written / f"lz4-{4 * N}"
    with stores.open(raw, verify=False) as s, stores.open(lz4, verify=False) as ref:
        assert s._dense is not None  # the store fits the cache
        run = torch.arange(CHUNK - 7, 3 * CHUNK + 5)
        for key in ("observation", "next.observation", "action", "next.reward"):
            assert torch.equal(s._read_key(key, run), ref._read_key(key, run)), key
        assert not s._have.any()
        s._read_key("observation", torch.tensor([5, 3 * CHUNK + 1]))
        assert s._have.all()


def test_random_reads_keep_the_mapped_shards_under_the_map_bound(written, monkeypatch):
    """A sampler all over a store larger than ``RLDATA_MAP_BYTES``: the resident pages of
    every shard it mapped are dropped past the bound, also those of shards unmapped from the
    handle's bounded set whose views its gather table still holds (they kept the whole
    store resident: 3.4 GB of a 30M-row store)."""
    root = written / f"raw-{4 * N}"
    monkeypatch.setenv("RLDATA_ZARR_CACHE_BYTES", "1")  # past the cache: reads in place
    monkeypatch.setenv("RLDATA_MAP_BYTES", str(PASS))
    monkeypatch.setattr(_zarr_plain, "RSS_EVERY", 1)
    gen = torch.Generator().manual_seed(0)
    peak = 0
    with stores.open(root, verify=False) as s:
        assert s._dense is None
        for _ in range(400):
            s.get(torch.randint(4 * N, (64,), generator=gen))
            peak = max(peak, _mapped_resident(root))
    shard = CHUNK * 4 * OBS[0]
    assert (4 * N // CHUNK) * shard >= 4 * PASS  # the observation's shards alone: 4 bounds
    assert peak <= PASS + 4 * shard, peak
