"""push / pull through fsspec: memory:// and a real S3 server (moto) via s3fs."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest
import torch

import rldata
from rldata import stores
from rldata.errors import StoreExistsError, StoreNotFoundError, TransferError, UnsupportedURLError
from rldata.sharing import objects as ob
from rldata.sharing import pull, push
from rldata.sharing.digest import store_digest
from tests.sharing.conftest import make_store


def _local_objects(root: Path) -> dict[str, bytes]:
    """The objects of a local store (what travels), as bytes."""
    index = ob.read_index((root / ob.INDEX).read_bytes())
    assert index is not None
    out = {}
    for rel, entry in index["objects"].items():
        out[rel] = (root / rel).read_bytes()[: entry["size"]]
    return out


def test_push_pull_round_trip(store: Path, remote: str, tmp_path: Path) -> None:
    url = f"{remote}/ds"
    summary = push(store, url)
    assert summary.copied == summary.objects and summary.skipped == 0
    assert summary.content_digest == store_digest(store)
    back = tmp_path / "back"
    pulled = pull(url, back)
    assert pulled.copied == pulled.objects
    assert store_digest(back) == store_digest(store)
    with stores.open(back) as s:
        assert stores.verify(s) == []
        assert len(s) == 90
        assert s.episodes()["length"].tolist() == [20, 10, 15, 5, 25, 15]
    # the sparse preallocated tail of memmap files does not travel
    assert summary.bytes_copied < sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def test_second_push_and_pull_skip_everything(store: Path, remote: str, tmp_path: Path) -> None:
    url = f"{remote}/ds"
    push(store, url)
    again = push(store, url)
    assert (again.copied, again.skipped, again.bytes_copied) == (0, again.objects, 0)
    pull(url, tmp_path / "back")
    again = pull(url, tmp_path / "back")
    assert (again.copied, again.skipped) == (0, again.objects)


def test_push_after_more_rows_updates_the_destination_with_force(store: Path, remote: str) -> None:
    url = f"{remote}/ds"
    push(store, url)
    from rldata.testing import ted_batch

    with stores.open(store, mode="a") as w:
        w.append(ted_batch([7, 8], start_traj_id=100))
    with pytest.raises(StoreExistsError, match="already holds another store; pass --force"):
        push(store, url)  # a published store is replaced only when asked (issue 17 section 2)
    with rldata.open(url) as s:
        assert len(s) == 90  # the refused push changed nothing
    summary = push(store, url, force=True)
    assert summary.copied > 0  # every key's file grew, the episode index is new
    with rldata.open(url) as s:
        assert len(s) == 105 and stores.verify(s) == []
        assert rldata.api.content_digest(s) == store_digest(store)


def test_load_sample_verify_through_the_cache(store: Path, remote: str, cache_dir: Path) -> None:
    url = f"{remote}/ds"
    push(store, url)
    buffer = rldata.load(url, stream=False)
    batch = buffer.sample(32)
    assert batch.batch_size == torch.Size([32])
    assert batch["observation"].shape == (32, 3)
    with rldata.open(url, stream=False) as s:
        assert stores.verify(s) == []
        assert Path(s.path).parent == cache_dir
        assert rldata.api.content_digest(s) == store_digest(store)
    copies = [p for p in cache_dir.iterdir() if p.name.startswith("store-")]
    assert len(copies) == 1  # the second open reused the verified copy


def test_interrupted_push_is_unusable_then_finishes(
    store: Path, remote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rldata.sharing import transfer

    url = f"{remote}/ds"
    real = transfer._Dest.write
    calls = {"n": 0}

    def failing(self: transfer._Dest, rel: str, data: bytes, sha: str) -> dict:
        calls["n"] += 1
        if calls["n"] > 5:
            raise ConnectionError("network went away")
        return real(self, rel, data, sha)

    monkeypatch.setattr(transfer._Dest, "write", failing)
    with pytest.raises(ConnectionError):
        push(store, url, workers=1)
    monkeypatch.setattr(transfer._Dest, "write", real)
    with pytest.raises(StoreNotFoundError):
        rldata.open(url)  # no manifest yet: not a store
    summary = push(store, url)
    assert summary.skipped >= 5  # what landed verified was not sent again
    with rldata.open(url) as s:
        assert rldata.api.content_digest(s) == store_digest(store)


def test_pull_refuses_a_corrupted_object(store: Path, remote: str, tmp_path: Path) -> None:
    url = f"{remote}/ds"
    push(store, url)
    fs, root = fsspec.core.url_to_fs(url)
    target = f"{root}/data/observation.memmap"
    data = bytearray(fs.cat_file(target))
    data[5] ^= 0xFF
    fs.pipe_file(target, bytes(data))
    with pytest.raises(TransferError, match="observation.memmap"):
        pull(url, tmp_path / "back")
    assert not (tmp_path / "back" / "rldata.json").exists()


def test_push_of_a_missing_store_is_one_error(remote: str, tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError, match="no rldata store"):
        push(tmp_path / "nope", f"{remote}/ds")


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("nosuchfs://bucket/ds", "not a file system fsspec knows"),
        ("http://example.com/ds", "refused for safety"),
        ("reference://x", "refused for safety"),
        ("memory://a::s3://b", "chained"),
    ],
)
def test_bad_schemes_are_one_line(store: Path, url: str, match: str) -> None:
    with pytest.raises(UnsupportedURLError, match=match) as info:
        push(store, url)
    assert "\n" not in str(info.value)


def test_pushes_a_store_while_it_grows(tmp_path: Path, remote: str) -> None:
    """The manifest read first fixes the snapshot: rows committed later do not leak in."""
    src = make_store(tmp_path / "live", [30, 30])
    url = f"{remote}/live"
    from rldata.testing import ted_batch

    with stores.open(src, mode="a") as w:
        w.append(ted_batch([40], start_traj_id=9))  # appended, not committed: not sent
        push(src, url)
    with rldata.open(url) as s:
        assert len(s) == 60 and stores.verify(s) == []


def test_fast_digest_agrees_with_the_store(tmp_path: Path) -> None:
    from rldata.sharing.digest import digest_of

    empty = tmp_path / "e"
    stores.create(empty, capacity=None).close()
    paths = [make_store(tmp_path / "a", [5, 7]), empty]
    ring = tmp_path / "ring"
    with stores.create(ring, capacity=16) as w:
        from rldata.testing import ted_batch

        w.append(ted_batch([9, 9, 9]))
    for path in [*paths, ring]:
        with stores.open(path) as s:
            assert digest_of(s) == stores.content_digest(s), path


def test_a_store_at_a_url_opens_read_only(store: Path) -> None:
    from rldata.errors import ConfigError

    push(store, "memory://ro-check/ds")
    with pytest.raises(ConfigError, match="read-only"):
        rldata.open("memory://ro-check/ds", mode="a")


def test_pull_of_a_store_copied_without_rldata(store: Path, remote: str, tmp_path: Path) -> None:
    """No object index: objects come from a listing and the copy is checked when opened."""
    fs, root = fsspec.core.url_to_fs(f"{remote}/plain")
    fs.put(str(store), root, recursive=True)  # a plain copy, sparse tails and lock included
    back = tmp_path / "back"
    summary = pull(f"{remote}/plain", back)
    assert summary.content_digest is not None
    assert not (back / "rldata.lock").exists()
    with stores.open(back) as s:  # opening verifies every row's checksum
        assert stores.content_digest(s) == store_digest(store)
    assert (back / "data/observation.memmap").stat().st_size == 90 * 12  # no sparse tail
    with rldata.open(f"{remote}/plain") as s:  # and through the cache
        assert len(s) == 90
