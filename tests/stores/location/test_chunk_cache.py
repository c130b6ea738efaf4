"""The chunk cache: units named by their expected SHA-256, verified before they are served or
kept, evicted least recently used first to stay under a size, shared by processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.location.chunk_cache import ChunkCache, configured_bytes


def _unit(i: int, size: int = 1000) -> tuple[str, bytes]:
    data = bytes([i % 251]) * size
    return hashlib.sha256(data).hexdigest(), data


class Fetches:
    """A fetch that counts its calls."""

    def __init__(self, data: bytes) -> None:
        self.data, self.calls = data, 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.data


def test_a_unit_is_fetched_once_then_served_from_disk(tmp_path: Path) -> None:
    sha, data = _unit(1)
    fetch = Fetches(data)
    assert ChunkCache(tmp_path, 10_000).get(sha, fetch, where="u") == data
    assert ChunkCache(tmp_path, 10_000).get(sha, fetch, where="u") == data  # another handle
    assert fetch.calls == 1
    assert ChunkCache(tmp_path).path(sha).read_bytes() == data


def test_wrong_bytes_are_refused_in_one_line_and_never_cached(tmp_path: Path) -> None:
    sha, _data = _unit(1)
    cache = ChunkCache(tmp_path, 10_000)
    with pytest.raises(CorruptStoreError) as err:
        cache.get(sha, lambda: b"not the unit", where="s3://b/ds: key 'obs' rows [0, 64)")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("s3://b/ds: key 'obs' rows [0, 64): sha256 ")
    assert not cache.path(sha).exists() and cache.held_bytes() == 0


def test_a_unit_damaged_on_disk_is_fetched_again(tmp_path: Path) -> None:
    sha, data = _unit(2)
    cache = ChunkCache(tmp_path, 10_000)
    cache.get(sha, lambda: data, where="u")
    cache.path(sha).write_bytes(b"x" * len(data))
    fetch = Fetches(data)
    assert cache.get(sha, fetch, where="u") == data and fetch.calls == 1
    assert cache.path(sha).read_bytes() == data


def test_a_name_that_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptStoreError, match="64 lowercase hex"):
        ChunkCache(tmp_path, 10).path("../../etc/passwd")


def test_the_least_recently_used_units_are_evicted_to_stay_under_the_size(
    tmp_path: Path,
) -> None:
    cache = ChunkCache(tmp_path, 5_000)  # five units of 1,000 bytes
    units = [_unit(i) for i in range(8)]
    for sha, data in units[:5]:
        cache.get(sha, lambda d=data: d, where="u")
        time.sleep(0.01)
    cache.get(units[0][0], lambda: b"", where="u")  # a hit: unit 0 is now the newest
    time.sleep(0.01)
    for sha, data in units[5:]:
        cache.get(sha, lambda d=data: d, where="u")
        assert cache.held_bytes() <= 5_000
    kept = {sha for sha, _ in units if cache.path(sha).exists()}
    assert units[0][0] in kept and units[7][0] in kept
    assert units[1][0] not in kept and units[2][0] not in kept


def test_a_unit_over_the_whole_budget_is_served_not_kept(tmp_path: Path) -> None:
    sha, data = _unit(3, size=4096)
    cache = ChunkCache(tmp_path, 1024)
    assert cache.get(sha, lambda: data, where="u") == data
    assert cache.held_bytes() == 0


def test_the_size_comes_from_the_keyword_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RLDATA_CHUNK_CACHE_BYTES", "12345")
    assert configured_bytes() == 12345
    assert configured_bytes(99) == 99
    monkeypatch.setenv("RLDATA_CHUNK_CACHE_BYTES", "lots")
    with pytest.raises(
        ConfigError, match="RLDATA_CHUNK_CACHE_BYTES must be a whole number of bytes"
    ):
        configured_bytes()
    monkeypatch.delenv("RLDATA_CHUNK_CACHE_BYTES")
    assert configured_bytes() == 2 << 30


def test_a_live_claim_makes_a_second_process_wait_for_the_unit(tmp_path: Path) -> None:
    sha, data = _unit(4)
    cache = ChunkCache(tmp_path, 10_000)
    claim = cache.path(sha).with_name(sha + ".claim")
    claim.parent.mkdir(parents=True)
    claim.touch()  # another process is downloading it

    def lands() -> None:
        time.sleep(0.2)
        ChunkCache(tmp_path, 10_000)._put(cache.path(sha), data)
        claim.unlink()

    proc = multiprocessing.get_context("fork").Process(target=lands)
    proc.start()
    fetch = Fetches(data)
    assert cache.get(sha, fetch, where="u") == data
    proc.join(10)
    assert fetch.calls == 0  # it waited, and took the other process's unit


def _hammer(root: str, seed: int, out: multiprocessing.Queue) -> None:
    cache = ChunkCache(root, 30_000)
    bad = 0
    for i in range(200):
        sha, data = _unit((i * 7 + seed) % 40)
        got = cache.get(sha, lambda d=data: (time.sleep(0.001), d)[1], where="u")
        bad += got != data
    out.put(bad)


def test_processes_sharing_the_cache_never_see_a_half_written_unit(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), s, out)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [out.get(timeout=5) for _ in procs] == [0, 0, 0, 0]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert ".tmp-" not in path.name and not path.name.endswith(".claim"), path
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    # each process may write a tenth of the budget before it counts the others' units
    assert ChunkCache(tmp_path, 30_000).held_bytes() <= 30_000 + 4 * (3_000 + 1_000)
    assert os.listdir(tmp_path)


def test_a_unit_added_without_a_fetch_is_kept(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path / "units", max_bytes=10_000)
    sha, data = _unit(7)
    assert cache.add(sha, data, where="unit 7") == data  # a batch's ranges land this way
    assert cache.cached(sha) == data
    assert (tmp_path / "units" / sha[:2] / sha).read_bytes() == data


def _pack_files(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


def test_a_batch_of_units_lands_as_one_file_another_handle_serves(tmp_path: Path) -> None:
    units = [_unit(i) for i in range(20)]
    assert ChunkCache(tmp_path, 100_000).add_many(units) == {sha for sha, _d in units}
    assert len(_pack_files(tmp_path)) == 1  # one file written for the whole batch
    other = ChunkCache(tmp_path, 100_000)  # a handle that never saw the pack written
    assert other.cached_many([sha for sha, _d in units]) == dict(units)
    fetch = Fetches(b"")
    assert other.get(units[3][0], fetch, where="u") == units[3][1] and fetch.calls == 0


def test_a_process_reads_the_pack_another_process_wrote(tmp_path: Path) -> None:
    units = [_unit(i) for i in range(10, 15)]
    reader = ChunkCache(tmp_path, 100_000)
    assert reader.cached_many([sha for sha, _d in units]) == {}  # nothing yet: indexed empty
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=lambda: ChunkCache(tmp_path, 100_000).add_many(units))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert reader.cached_many([sha for sha, _d in units]) == dict(units)


def test_a_unit_that_does_not_hash_to_its_name_is_not_packed(tmp_path: Path) -> None:
    (sha0, d0), (sha1, _d1) = _unit(0), _unit(1)
    cache = ChunkCache(tmp_path, 100_000)
    assert cache.add_many([(sha0, d0), (sha1, b"not unit 1")]) == {sha0}
    assert cache.cached(sha1) is None and cache.cached(sha0) == d0
    assert cache.held_bytes() == len(d0) + (32 + 16) + 16  # unit 0, its entry, the trailer


def test_a_damaged_unit_in_a_pack_is_fetched_again_never_served(tmp_path: Path) -> None:
    units = [_unit(i, size=500) for i in range(4)]
    ChunkCache(tmp_path, 100_000).add_many(units)
    (pack,) = _pack_files(tmp_path)
    raw = bytearray(pack.read_bytes())
    raw[2 * 500 + 7] ^= 0xFF  # a byte of unit 2
    pack.write_bytes(bytes(raw))
    cache = ChunkCache(tmp_path, 100_000)
    assert units[2][0] not in cache.cached_many([units[2][0]])
    assert not pack.exists()  # a damaged pack is removed whole
    fetch = Fetches(units[2][1])
    assert cache.get(units[2][0], fetch, where="u") == units[2][1] and fetch.calls == 1


def test_a_pack_whose_index_does_not_fit_its_file_is_removed(tmp_path: Path) -> None:
    units = [_unit(i) for i in range(3)]
    ChunkCache(tmp_path, 100_000).add_many(units)
    (pack,) = _pack_files(tmp_path)
    pack.write_bytes(pack.read_bytes()[:-5])  # a cut trailer
    assert ChunkCache(tmp_path, 100_000).cached_many([sha for sha, _d in units]) == {}
    assert not pack.exists()


def test_packs_are_evicted_least_recently_used_first(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 10_000)  # four packs of two 1,000-byte units fit, not five
    batches = [[_unit(2 * i), _unit(2 * i + 1)] for i in range(5)]
    for batch in batches[:4]:
        cache.add_many(batch)
        time.sleep(0.01)
    assert cache.cached(batches[0][0][0]) is not None  # a hit: batch 0's pack is the newest
    time.sleep(0.01)
    cache.add_many(batches[4])  # over: the oldest packs go until 80% of the budget is left
    assert cache.held_bytes() <= 8_000
    kept = [i for i, batch in enumerate(batches) if cache.cached(batch[1][0]) is not None]
    assert kept == [0, 3, 4]


def test_temporary_files_a_killed_writer_left_are_removed_once_stale(tmp_path: Path) -> None:
    cache = ChunkCache(tmp_path, 10_000)
    sha, data = _unit(4)
    assert cache.get(sha, lambda: data, where="t") == data
    hour_ago = time.time() - 2 * 3600
    killed_unit = cache.path(sha).with_name(f"{sha}.tmp-999-abcd")  # as a unit is written
    killed_pack = tmp_path / "packs" / ".tmp-0123-999"  # as a pack is written
    live_pack = tmp_path / "packs" / ".tmp-4567-1000"
    killed_pack.parent.mkdir(exist_ok=True)
    for f in (killed_unit, killed_pack, live_pack):
        f.write_bytes(b"x" * 5000)
    for f in (killed_unit, killed_pack):
        os.utime(f, (hour_ago, hour_ago))
    held = cache.held_bytes()  # any scan of the cache sweeps them
    assert not killed_unit.exists() and not killed_pack.exists()
    assert live_pack.exists()  # a writer's file of a moment ago stays
    assert held == len(data)  # temporary files are not counted as units
