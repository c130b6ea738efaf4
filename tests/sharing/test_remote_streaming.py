"""Streaming reads of a pushed memmap store (``rldata.load(URL)``, ``rldata.open(URL)``):
the first batch reads the manifest, the episode index and only the units it needs; every
unit is verified before it is served or cached; the chunk cache stays under its size, is
shared by processes and across commits; a lying remote is refused.

Stores here are written with small units (64 rows) so a batch touches a few of many.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

import rldata
from rldata import stores
from rldata.errors import CorruptStoreError, TransferError
from rldata.sharing import objects as ob
from rldata.sharing.cache import open_stream, stream_local
from rldata.sharing.transfer import pull, push
from rldata.stores.backend import rowstore
from rldata.stores.location import remote_units
from rldata.stores.location._packs import read_index
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.places import location
from rldata.stores.location.stream import StreamStore
from rldata.testing import ted_batch
from rldata.testing.byte_count import counting_reads

UNIT_ROWS = 64
LENGTHS = [200, 150, 250, 100] * 10  # 7,000 rows, 110 units a key
OBS = "data/observation.memmap"


@pytest.fixture(autouse=True)
def small_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores written here check 64 rows a unit (checksum chunks, or block digests), and a
    batch reads each unit it needs as its own range unless a test coalesces them."""
    monkeypatch.setattr(rowstore, "MAX_CHUNK_ROWS", UNIT_ROWS)
    monkeypatch.setattr(remote_units, "COALESCE_GAP", -1)
    try:
        from rldata.stores.format import blocksums
    except ImportError:  # a tree before format 1.4
        return
    monkeypatch.setattr(blocksums, "MAX_BLOCK_ROWS", UNIT_ROWS)


@pytest.fixture(params=["memory", "s3", "file"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh base URL: memory, s3 (moto on loopback) or file."""
    name = f"rl-{uuid.uuid4().hex[:12]}"
    if request.param == "file":
        (tmp_path / "remote").mkdir()
        return f"file://{tmp_path / 'remote'}"
    if request.param == "memory":
        return f"memory://{name}"
    request.getfixturevalue("s3_env")
    location(f"s3://{name}").fs.mkdir(name)
    return f"s3://{name}"


def _write(path: Path, lengths: list[int], first_id: int = 0) -> Path:
    with stores.create(path, capacity=None) as w:
        w.append(ted_batch(lengths, start_traj_id=first_id))
    return path


def _open(url: str, **kw: object) -> StreamStore:
    """The streaming store at ``url`` (``file://`` too, which ``rldata.open`` serves in place)."""
    store = stream_local(url, **kw) if url.startswith("file://") else rldata.open(url, **kw)
    assert isinstance(store, StreamStore)
    return store


def _published(base: str, tmp_path: Path, name: str = "ds") -> tuple[Path, str]:
    src = _write(tmp_path / f"src-{name}", LENGTHS)
    url = f"{base}/{name}"
    push(src, url)
    return src, url


def _same_bits(a: object, b: object) -> None:
    for key in b.keys(True, True):  # type: ignore[attr-defined]
        x, y = a[key], b[key]  # type: ignore[index]
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert torch.equal(x.contiguous().view(torch.uint8), y.contiguous().view(torch.uint8)), key


def _unit_bytes(store: StreamStore) -> int:
    """The largest unit of any key (bytes)."""
    return max(c.units.unit_rows * c.units.row_bytes for c in store._views.values())  # type: ignore[attr-defined]


def _objects(url: str) -> dict[str, int]:
    """Object name -> size, as the store's object index declares."""
    loc = location(url)
    loc.fs.invalidate_cache()
    doc = ob.read_index(loc.fs.cat_file(loc.path(ob.INDEX)))
    assert doc is not None
    return {rel: e["size"] for rel, e in doc["objects"].items()}


def _payload_bytes(url: str) -> int:
    return sum(n for rel, n in _objects(url).items() if rel.endswith(".memmap"))


def _only_sound_units(root: Path) -> None:
    """Every unit the cache holds, one a file or in a pack, hashes to its name."""
    for path in root.rglob("*"):
        if path.is_file() and path.suffix == ".pack":
            entries = read_index(path)
            assert entries is not None, path
            raw = path.read_bytes()
            for sha, at, n in entries:
                assert hashlib.sha256(raw[at : at + n]).hexdigest() == sha
        elif path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_the_first_batch_reads_only_the_units_it_needs(base: str, tmp_path: Path) -> None:
    src, url = _published(base, tmp_path)
    fs = location(url).fs
    with counting_reads(fs) as got:
        store = _open(url)
        at_open = got.total
        rows = store.get(torch.tensor([5, 3000, 6999]))
    payload = sum(n for p, n in got.by_path.items() if "/data/" in p and p.endswith(".memmap"))
    keys = len(store._views)  # type: ignore[attr-defined]
    # three rows (and the rows after them, for next.observation): at most 2 units a row a key
    assert payload <= 3 * 2 * keys * _unit_bytes(store), got.by_path
    assert payload < _payload_bytes(url) / 10
    small = sum(
        (src / rel).stat().st_size for rel in ("rldata.json", store.manifest["episodes"]["path"])
    )
    assert at_open < small + 64 * 1024 + _payload_bytes(url) / 10, got.by_path  # no payload
    assert rows.batch_size == torch.Size([3])


def test_sampled_rows_equal_a_pulled_copy_bit_for_bit(base: str, tmp_path: Path) -> None:
    _src, url = _published(base, tmp_path)
    pulled = tmp_path / "pulled"
    pull(url, pulled)
    with _open(url) as s, stores.open(pulled) as p:
        for seed in range(3):
            idx = torch.randint(0, len(p), (256,), generator=torch.Generator().manual_seed(seed))
            _same_bits(s.get(idx), p.get(idx))
        _same_bits(s.get(slice(0, len(p))), p.get(slice(0, len(p))))
        assert stores.verify(s) == []  # a full check of every streamed byte
        assert len(s.episodes()) == len(LENGTHS)


def test_rldata_load_samples_through_the_stream(base: str, tmp_path: Path) -> None:
    if base.startswith("file://"):
        pytest.skip("rldata.load serves a file:// store in place")
    _src, url = _published(base, tmp_path)
    buffer = rldata.load(url, batch_size=32)
    assert isinstance(buffer.storage.store, StreamStore)
    assert buffer.sample()["observation"].shape[0] == 32


def test_the_cache_stays_under_its_size(base: str, tmp_path: Path, cache_dir: Path) -> None:
    src, url = _published(base, tmp_path)
    budget = _payload_bytes(url) // 4
    pulled = tmp_path / "pulled"
    pull(url, pulled)
    cache = ChunkCache(max_bytes=budget)
    with _open(url, cache_bytes=budget) as s, stores.open(pulled) as p:
        for seed in range(20):
            idx = torch.randint(0, len(p), (64,), generator=torch.Generator().manual_seed(seed))
            _same_bits(s.get(idx), p.get(idx))
            assert cache.held_bytes() <= budget
    assert cache.held_bytes() > 0


def test_the_cache_size_comes_from_the_environment(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _src, url = _published(base, tmp_path)
    monkeypatch.setenv("RLDATA_CHUNK_CACHE_BYTES", "4096")
    with _open(url) as s:
        s.get(torch.arange(0, 7000, 7))
    assert ChunkCache(max_bytes=4096).held_bytes() <= 4096


def test_a_second_process_reuses_the_cache(base: str, tmp_path: Path, cache_dir: Path) -> None:
    if base.startswith("memory://"):
        pytest.skip("a memory:// store lives in one process")
    _src, url = _published(base, tmp_path)
    child = textwrap.dedent(
        f"""
        import sys
        from rldata.sharing.cache import open_stream, stream_local
        url = {url!r}
        s = stream_local(url) if url.startswith("file://") else open_stream(url)
        s.get(slice(0, len(s)))
        """
    )
    env = {**os.environ, "RLDATA_CACHE": str(cache_dir)}
    subprocess.run([sys.executable, "-c", child], check=True, env=env, timeout=120)
    with counting_reads(location(url).fs) as got, _open(url) as s:
        s.get(slice(0, len(s)))
    assert not [p for p in got.by_path if p.endswith(".memmap")], got.by_path


def test_a_new_commit_reuses_the_units_it_shares(base: str, tmp_path: Path) -> None:
    src, url = _published(base, tmp_path)
    with _open(url) as s:
        s.get(slice(0, len(s)))  # every unit of the first commit in the cache
        unit = _unit_bytes(s)
        keys = len(s._views)  # type: ignore[attr-defined]
    before = _payload_bytes(url)
    records = sum(n for rel, n in _objects(url).items() if rel.endswith(".once.memmap"))
    with stores.open(src, mode="a") as w:
        w.append(ted_batch([300], start_traj_id=len(LENGTHS)))
    push(src, url, force=True)
    location(url).fs.invalidate_cache()
    with counting_reads(location(url).fs) as got, _open(url) as s:
        assert len(s) == sum(LENGTHS) + 300
        s.get(slice(0, len(s)))
    payload = sum(n for p, n in got.by_path.items() if p.endswith(".memmap"))
    grown = _payload_bytes(url) - before
    # the new rows, the unit the first commit left cut, and the explicit next records (whole)
    assert payload <= grown + records + 2 * keys * unit, (payload, grown)
    assert payload < _payload_bytes(url) / 4


def test_a_tampered_unit_is_refused_and_not_cached(
    base: str, tmp_path: Path, cache_dir: Path
) -> None:
    _src, url = _published(base, tmp_path)
    loc = location(url)
    raw = bytearray(loc.fs.cat_file(loc.path(OBS)))
    raw[12 * 70] ^= 0xFF  # row 70 of 12-byte observations: the second unit
    loc.fs.pipe_file(loc.path(OBS), bytes(raw))  # same size; the index keeps the old digest
    loc.fs.invalidate_cache()
    with _open(url) as s:
        s.get(torch.tensor([0]))  # the first unit is sound
        with pytest.raises(CorruptStoreError) as err:
            s.get(torch.tensor([70]))
    msg = str(err.value)
    assert "\n" not in msg and url in msg and "'observation'" in msg and "rows [64, 128)" in msg
    _only_sound_units(cache_dir / "units")


def test_an_object_of_another_size_than_declared_is_refused_at_open(
    base: str, tmp_path: Path
) -> None:
    _src, url = _published(base, tmp_path)
    loc = location(url)
    data = loc.fs.cat_file(loc.path(OBS))
    loc.fs.pipe_file(loc.path(OBS), data + os.urandom(4096))
    loc.fs.invalidate_cache()
    with pytest.raises(
        TransferError, match=f"declared {len(data)} bytes, holds {len(data) + 4096}"
    ):
        _open(url)


def test_a_range_answered_with_other_bytes_counts_is_refused(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if base.startswith("s3://"):
        pytest.skip("s3 ranges are read by get_object: see the test of a server ignoring Range")
    _src, url = _published(base, tmp_path)
    fs = location(url).fs
    real, real_ranges = fs.cat_file, fs.cat_ranges

    def longer(path: str, *args: object, **kwargs: object) -> bytes:
        data = real(path, *args, **kwargs)
        return data + b"\0" * 1000 if path.endswith(".memmap") else data

    def longer_ranges(paths: list[str], *args: object, **kwargs: object) -> list:
        got = real_ranges(paths, *args, **kwargs)
        return [d + b"\0" * 1000 if p.endswith(".memmap") else d for p, d in zip(paths, got)]

    with _open(url) as s:
        monkeypatch.setattr(fs, "cat_file", longer)  # a server that ignores the range's end
        monkeypatch.setattr(fs, "cat_ranges", longer_ranges)
        with pytest.raises(
            CorruptStoreError, match=r"rows \[0, 64\): expected \d+ bytes, got"
        ) as e:
            s.get(torch.tensor([1]))
    want, got = (int(w) for w in str(e.value).split("expected ")[1].split(" bytes, got "))
    assert got == want + 1000


def test_near_units_are_read_as_one_range_and_each_verified(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, url = _published(base, tmp_path)
    monkeypatch.setattr(remote_units, "COALESCE_GAP", 4096)  # units 0 and 3: one range
    rows = torch.tensor([5, 200, 6999])  # units 0, 3 and 109 of each key
    with _open(url) as s:
        got = s.get(rows)
        keys = len(s._views)  # type: ignore[attr-defined]
        assert s._remote.requests == 2 * keys  # not 3: one range per key covers units 0..3
        obs = s._views["observation"].units  # type: ignore[attr-defined]
        assert s._remote.cache.cached(obs.digest(3)) is not None  # wanted: verified, kept
        assert s._remote.cache.cached(obs.digest(2)) is not None  # read on the way: kept
        assert s._remote.cache.cached(obs.digest(4)) is None  # never read
    with stores.open(src) as local:
        _same_bits(got, local.get(rows))


def test_a_damaged_unit_between_wanted_ones_is_neither_served_nor_cached(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> None:
    _src, url = _published(base, tmp_path)
    loc = location(url)
    raw = bytearray(loc.fs.cat_file(loc.path(OBS)))
    raw[12 * 70] ^= 0xFF  # row 70: unit 1, inside the range that reads units 0..3
    loc.fs.pipe_file(loc.path(OBS), bytes(raw))
    loc.fs.invalidate_cache()
    monkeypatch.setattr(remote_units, "COALESCE_GAP", 4096)
    with _open(url) as s:
        s.get(torch.tensor([5, 200]))  # units 0 and 3 are sound and served
        units = s._views["observation"].units  # type: ignore[attr-defined]
        assert s._remote.cache.cached(units.digest(1)) is None
        with pytest.raises(CorruptStoreError, match=r"'observation' rows \[64, 128\)"):
            s.get(torch.tensor([70]))


def test_a_server_that_ignores_the_range_is_refused_before_its_body_is_read(
    s3_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"rl-{uuid.uuid4().hex[:12]}"
    location(f"s3://{name}").fs.mkdir(name)
    _src, url = _published(f"s3://{name}", tmp_path)
    fs = location(url).fs
    real = fs._call_s3
    body_bytes: list[int] = []

    class CountingBody:
        def __init__(self, body: object) -> None:
            self.body = body

        async def read(self, amt: int | None = None) -> bytes:
            data = await self.body.read(amt)  # type: ignore[attr-defined]
            body_bytes.append(len(data))
            return data

        def close(self) -> None:
            self.body.close()  # type: ignore[attr-defined]

    async def whole_object(method: str, *args: object, **kwargs: object) -> dict:
        if method == "get_object" and str(kwargs.get("Key", "")).endswith(OBS):
            kwargs.pop("Range", None)  # the server answers 200 and the whole object
            resp = await real(method, *args, **kwargs)
            resp["Body"] = CountingBody(resp["Body"])
            return resp
        return await real(method, *args, **kwargs)

    with _open(url) as s:
        whole = _objects(url)[OBS]
        monkeypatch.setattr(fs, "_call_s3", whole_object)
        with pytest.raises(
            CorruptStoreError,
            match=rf"'observation' rows \[0, 64\): expected 768 bytes, got {whole}",
        ):
            s.get(torch.tensor([1]))
    assert sum(body_bytes) == 0  # refused by its Content-Length, the body never read


@pytest.mark.parametrize("name", ["../../escape", "/abs/x", "data/\x00nul"])
def test_hostile_names_in_the_index_are_refused(base: str, tmp_path: Path, name: str) -> None:
    _src, url = _published(base, tmp_path)
    loc = location(url)
    doc = ob.read_index(loc.fs.cat_file(loc.path(ob.INDEX)))
    assert doc is not None
    doc["objects"][name] = {"size": 1, "sha256": "0" * 64}
    loc.fs.pipe_file(loc.path(ob.INDEX), ob.new_index(doc["objects"], complete=True, digest=None))
    with pytest.raises(CorruptStoreError, match="is refused"):
        _open(url)
    assert not (tmp_path / "escape").exists()


def test_other_backends_keep_the_whole_verified_pull(base: str, tmp_path: Path) -> None:
    if base.startswith("file://"):
        pytest.skip("a file:// store is served in place")
    src = tmp_path / "zarr-src"
    with stores.create(src, backend="parquet") as w:
        w.append(ted_batch([30, 20]))
    push(src, f"{base}/pq")
    with open_stream(f"{base}/pq") as s:
        assert not isinstance(s, StreamStore)
        assert len(s) == 50 and stores.verify(s) == []


@pytest.mark.parametrize("budget_share", [None, 4])
def test_coalesced_batches_in_flight_at_once_equal_a_local_read(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget_share: int | None
) -> None:
    src, url = _published(base, tmp_path)
    monkeypatch.setattr(remote_units, "COALESCE_GAP", 4096)  # near units share a range
    monkeypatch.setattr(remote_units, "FETCH_AT_ONCE", 8)  # more ranges than are in flight
    kw = {} if budget_share is None else {"cache_bytes": _payload_bytes(url) // budget_share}
    gen = torch.Generator().manual_seed(7)
    with _open(url, **kw) as s, stores.open(src) as local:
        for _ in range(12):
            idx = torch.randint(0, len(local), (96,), generator=gen)
            _same_bits(s.get(idx), local.get(idx))
        _same_bits(s.get(slice(6900, 7000)), local.get(slice(6900, 7000)))
        assert s._remote.requests > 0


def test_a_damaged_unit_in_the_cache_is_fetched_again_never_served(
    base: str, tmp_path: Path, cache_dir: Path
) -> None:
    src, url = _published(base, tmp_path)
    rows = torch.tensor([5, 700, 3000, 6999])
    with _open(url) as s:
        s.get(rows)
    packs = sorted((cache_dir / "units" / "packs").glob("*.pack"))
    assert packs
    for pack in packs:  # a byte of each pack's first unit flipped on disk
        raw = bytearray(pack.read_bytes())
        raw[0] ^= 0xFF
        pack.write_bytes(bytes(raw))
    with _open(url) as s, stores.open(src) as local:
        _same_bits(s.get(rows), local.get(rows))
        assert s._remote.requests > 0  # the damaged units were fetched again
    assert not [p for p in packs if p.exists()]  # the damaged packs are gone
    _only_sound_units(cache_dir / "units")


def test_the_statistics_are_fetched_when_first_asked_for_not_at_open(
    base: str, tmp_path: Path
) -> None:
    src, url = _published(base, tmp_path)
    stats = [rel for rel in _objects(url) if rel.startswith("stats")]
    assert stats
    fs = location(url).fs
    with stores.open(src) as local:
        want = local.stats()
    with counting_reads(fs) as got, _open(url) as s:
        s.get(torch.tensor([0, 6999]))
        assert not [p for p in got.by_path if p.rsplit("/", 1)[-1].startswith("stats")]
        assert s.stats() == want
    assert [p for p in got.by_path if p.rsplit("/", 1)[-1].startswith("stats")], got.by_path
