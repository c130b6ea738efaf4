"""Stores at a URL (numbered manifests, put-if-absent): create, commit, read, race, refuse.

Every test runs on ``memory://`` and on ``s3://`` through s3fs against the moto server.
"""

from __future__ import annotations

import threading

import fsspec
import pytest
import torch

import rldata
from rldata import api, stores
from rldata.errors import (
    ConfigError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
    UnsupportedURLError,
)
from rldata.stores.location import remote_commit as rc
from rldata.stores.location.places import location
from rldata.testing import ted_batch

BACKENDS = ["zarr", "parquet"]
MEMORY_FIRST = pytest.mark.parametrize(
    "remote", ["memory", pytest.param("s3", marks=pytest.mark.slow)], indirect=True
)
"""Secondary cases: memory:// by default, the S3 server in the slow run (keeps the default
suite short; the acceptance cases above them run on both by default)."""


def _numbers(url: str) -> list[int]:
    return sorted(rc.numbers(location(url)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_load_sample_verify(remote: str, backend: str) -> None:
    url = f"{remote}/ds"
    with rldata.create(url, backend=backend) as w:
        assert w.path == url
        w.append(ted_batch([20, 10]))
        w.commit()
        w.append(ted_batch([15], start_traj_id=2))
    assert _numbers(url) == [1, 2, 3]  # the empty store, then one manifest per commit
    with rldata.open(url) as r:
        assert len(r) == 45 and r.backend == backend
        assert torch.equal(r.get(torch.arange(45))["observation"], _rows()["observation"])
    buffer = rldata.load(url)
    batch = buffer.sample(16)
    assert batch.batch_size == torch.Size([16])
    assert api.verify(url) == []
    card = api.dataset_card(url)
    assert card["path"] == url and card["transitions"] == 45 and card["check"] == "ok"


def _rows() -> object:
    return torch.cat([ted_batch([20, 10]), ted_batch([15], start_traj_id=2)])


@MEMORY_FIRST
@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_continues_numbering(remote: str, backend: str) -> None:
    url = f"{remote}/ds"
    with stores.create(url, backend=backend) as w:
        w.append(ted_batch([5, 5]))
    with rldata.open(url, mode="a") as w:
        assert w.next_traj_id() == 2
        w.append(ted_batch([7], start_traj_id=2))
    assert _numbers(url) == [1, 2, 3]
    with stores.open(url) as r:
        assert len(r) == 17 and stores.verify(r) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_racing_writers_one_commit_one_error(remote: str, backend: str) -> None:
    url = f"{remote}/ds"
    with stores.create(url, backend=backend) as w:
        w.append(ted_batch([10]))
    writers = [stores.open(url, mode="a") for _ in range(2)]
    for i, w in enumerate(writers):  # different rows, the same next commit number (3)
        w.append(ted_batch([4 + i], start_traj_id=1))
    barrier = threading.Barrier(2)
    errors: list[tuple[object, BaseException]] = []

    def commit(w: object) -> None:
        barrier.wait()
        try:
            w.commit()  # type: ignore[attr-defined]
        except StoreError as exc:
            errors.append((w, exc))

    threads = [threading.Thread(target=commit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1
    loser, error = errors[0]
    message = str(error)
    assert url in message and "manifests/000000000003.json" in message
    assert _numbers(url) == [1, 2, 3]
    with pytest.raises(StoreError, match="earlier write failed"):
        loser.append(ted_batch([2], start_traj_id=9))  # type: ignore[attr-defined]
    for w in writers:
        w.close()
    with stores.open(url) as r:
        assert len(r) in (14, 15) and stores.verify(r) == []


@MEMORY_FIRST
def test_racing_creators_one_store(remote: str) -> None:
    url = f"{remote}/ds"
    barrier = threading.Barrier(2)
    made: list[object] = []
    refused: list[BaseException] = []

    def create(backend: str) -> None:
        barrier.wait()
        try:
            made.append(stores.create(url, backend=backend))
        except StoreExistsError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=create, args=(b,)) for b in BACKENDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and len(refused) == 1 and url in str(refused[0])
    made[0].close()  # type: ignore[attr-defined]
    assert _numbers(url) == [1]
    with pytest.raises(StoreExistsError, match="already holds a store"):
        stores.create(url, backend="zarr")


@MEMORY_FIRST
def test_reader_takes_highest_complete_manifest(remote: str) -> None:
    url = f"{remote}/ds"
    with stores.create(url, backend="parquet") as w:
        w.append(ted_batch([6]))
    loc = location(url)
    loc.put(rc.commit_name(3), b'{"format": "rldata-commit", "torn')  # bad checksum
    missing = {"rldata.json": {"size": 3, "sha256": "0" * 64}}
    loc.put(rc.commit_name(4), rc.encode(4, missing))  # names an object that is not there
    number, _doc = rc.latest(loc)
    assert number == 2
    with stores.open(url) as r:
        assert len(r) == 6


@MEMORY_FIRST
def test_damaged_object_is_refused(remote: str) -> None:
    url = f"{remote}/ds"
    with stores.create(url, backend="zarr") as w:
        w.append(ted_batch([6]))
    loc = location(url)
    _n, doc = rc.latest(loc)
    sha = doc["objects"]["episodes-00000002.json"]["sha256"]
    loc.put(f"{rc.OBJECTS}/{sha}", b"[]")
    with pytest.raises(StoreError, match="does not match its sha256"):
        stores.open(url)


@MEMORY_FIRST
def test_refusals_are_one_line(remote: str) -> None:
    url = f"{remote}/ds"
    with pytest.raises(ConfigError, match="backend 'memmap' is refused at a URL"):
        stores.create(url, backend="memmap")
    with pytest.raises(ConfigError, match="a ring"):
        stores.create(url, backend="zarr", capacity=64)
    with pytest.raises(StoreNotFoundError):
        stores.open(url)
    with pytest.raises(UnsupportedURLError, match="not a file system fsspec knows"):
        stores.create("nosuchscheme://x/y", backend="zarr")
    with pytest.raises(UnsupportedURLError, match="refused for safety"):
        stores.create("http://example.com/x", backend="zarr")


def test_scheme_without_put_if_absent_is_refused() -> None:
    loc = location("https://example.com/store")
    with pytest.raises(StoreError, match="no put-if-absent"):
        loc.check_exclusive_create()


def test_no_credentials_in_the_store(s3_env: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("creds-check")
    url = "s3://creds-check/ds"
    with stores.create(url, backend="zarr", provenance={"note": "x"}) as w:
        w.append(ted_batch([8]))
    for path in fs.find("creds-check"):
        data = fs.cat_file(path)
        assert b"testing" not in data and b"AWS_" not in data and s3_env.encode() not in data
    fs.rm("creds-check", recursive=True)


def test_local_put_if_absent(tmp_path: object) -> None:
    loc = location(str(tmp_path))
    assert loc.put_if_absent("manifests/000000000001.json", b"a")
    assert not loc.put_if_absent("manifests/000000000001.json", b"b")
    assert loc.cat("manifests/000000000001.json") == b"a"
    assert fsspec.filesystem("file").ls(str(tmp_path / "manifests"), detail=False)


@MEMORY_FIRST
def test_pull_diff_merge_of_a_url_store(remote: str, tmp_path: object) -> None:
    from rldata.sharing import diff, merge, pull

    url = f"{remote}/ds"
    with stores.create(url, backend="parquet") as w:
        w.append(ted_batch([6, 4]))
    back = tmp_path / "back"  # type: ignore[operator]
    summary = pull(url, back)
    assert summary.objects >= 4 and summary.content_digest is not None
    with stores.open(back) as s:
        assert len(s) == 10 and stores.verify(s) == []
        assert stores.content_digest(s) == summary.content_digest
    d = diff(url, back)
    assert d.identical and len(d.shared) == 2
    merged = merge([url, back], str(tmp_path / "merged"), backend="zarr")  # type: ignore[operator]
    assert merged is not None
    with stores.open(tmp_path / "merged") as m:  # type: ignore[operator]
        assert len(m) == 20


@MEMORY_FIRST
def test_parquet_parts_read_in_place_by_pyarrow(remote: str) -> None:
    import pyarrow.parquet as pq

    url = f"{remote}/ds"
    with stores.create(url, backend="parquet") as w:
        w.append(ted_batch([6, 4]))
        w.commit()
        w.append(ted_batch([5], start_traj_id=2))
    urls = rc.object_urls(url)
    parts = [u for rel, u in urls.items() if rel.endswith(".parquet")]
    assert len(parts) == 2
    fs, _ = fsspec.core.url_to_fs(parts[0])
    tables = [pq.read_table(fs._strip_protocol(u), filesystem=fs) for u in parts]
    assert sorted(t.num_rows for t in tables) == [5, 10]
    assert all(b"rldata" in (t.schema.metadata or {}) for t in tables)


@MEMORY_FIRST
def test_push_does_not_overwrite_a_url_store(remote: str, tmp_path: object) -> None:
    from rldata.sharing import push
    from tests.sharing.conftest import make_store

    url = f"{remote}/ds"
    with stores.create(url, backend="zarr") as w:
        w.append(ted_batch([6]))
    src = make_store(tmp_path / "src", [5])  # type: ignore[operator]
    with pytest.raises(StoreExistsError, match="numbered manifests"):
        push(src, url)
    with stores.open(url) as r:
        assert len(r) == 6
