"""Hostile remotes, case by generated case: names that leave the store, objects bigger than
their declared size, indexes naming missing objects, cache poisoning, lying digests, flipped
bytes, and destinations that refuse writes.

Each family runs on a loopback S3 server (moto), on ``memory://`` and, where a local
directory can hold the case, on ``file://``. Every case asserts one line (a non-zero exit and
no traceback from the CLI) and that nothing was written outside the destination or a cache
entry.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import rldata
from rldata import stores
from rldata.errors import CorruptStoreError, RldataError, TransferError
from rldata.sharing import objects as ob
from rldata.sharing import transfer
from rldata.sharing.transfer import push
from rldata.sharing.urls import location
from rldata.stores.format import manifest as mf
from rldata.stores.location.remote_names import CHUNK, MAX_NAME_BYTES, MAX_SEGMENT_BYTES, check_name
from rldata_cli.main import rldata as cli

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = "data/observation.memmap"


# --- helpers --------------------------------------------------------------------------------


def _cli(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_failure(result: Result, *needles: str) -> str:
    """The CLI failed with one error line naming every needle, and no traceback (a transfer's
    progress bar, on stderr, may stand before it)."""
    out = result.output.strip()
    assert result.exit_code != 0, out
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if not line.startswith(("pull ", "push "))]
    assert len(lines) == 1 and lines[0].startswith("Error: "), out
    for needle in needles:
        assert needle in lines[0], (needle, out)
    return lines[0]


def _files(root: Path) -> set[Path]:
    out = set()
    for dirpath, dirs, names in os.walk(root):
        out.update(
            Path(dirpath) / n
            for n in names + [d for d in dirs if os.path.islink(Path(dirpath) / d)]
        )
    return out


def _assert_only_under(tmp_path: Path, before: set[Path], *allowed: Path) -> None:
    """Files new since ``before`` lie under ``allowed`` (a cache entry, a destination)."""
    stray = [p for p in _files(tmp_path) - before if not any(p.is_relative_to(a) for a in allowed)]
    assert stray == []


def _cache_entries(cache: Path) -> list[Path]:
    """The cache's copies of stores, ``store-<hex>`` (beside them: rldata's proof records)."""
    if not cache.exists():
        return []
    return sorted(p for p in cache.iterdir() if p.is_dir() and p.name.startswith("store-"))


def _in_cache_entries(tmp_path: Path, before: set[Path], cache: Path) -> None:
    """New files lie inside a cache entry or rldata's proof records of the copies it
    verified (never beside the entries, never outside)."""
    _assert_only_under(tmp_path, before, *_cache_entries(cache), cache / "proofs")


def _remote_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh base URL of ``kind``: memory, s3 (moto on loopback) or file."""
    name = f"rl-{uuid.uuid4().hex[:12]}"
    if kind == "file":
        base = tmp_path / "remote"
        base.mkdir()
        return f"file://{base}"
    if kind == "memory":
        return f"memory://{name}"
    request.getfixturevalue("s3_env")
    location(f"s3://{name}").fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(params=["memory", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh base URL on ``memory://`` or the moto S3 server (this module's own: the
    stores here hold names a recursive delete chokes on, so cleanup is best effort)."""
    url = _remote_url(request.param, request, tmp_path)
    yield url
    fs = location(url).fs
    with contextlib.suppress(Exception):
        for path in fs.find(location(url).root):
            with contextlib.suppress(Exception):
                fs.rm_file(path)


def _put(url: str, rel: str, data: bytes) -> None:
    loc = location(url)
    loc.fs.pipe_file(loc.path(rel), data)
    loc.fs.invalidate_cache()


def _get(url: str, rel: str) -> bytes:
    loc = location(url)
    return bytes(loc.fs.cat_file(loc.path(rel)))


def _remove(url: str, rel: str) -> None:
    loc = location(url)
    loc.fs.rm_file(loc.path(rel))
    loc.fs.invalidate_cache()


def _edit_index(url: str, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(_get(url, ob.INDEX))
    edit(doc)
    _put(url, ob.INDEX, json.dumps(doc).encode())


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


def _published(url: str, store: Path) -> str:
    push(store, url)
    return url


# --- 1. names that leave the store ----------------------------------------------------------

HOSTILE_NAMES = {
    "dotdot inside": "trav/../../x",
    "dotdot first": "../x",
    "dotdot last": "a/..",
    "dot segment": "a/./b",
    "dot first": "./a",
    "empty segment": "a//b",
    "absolute": "/abs/x",
    "NUL": "a/\x00b",
    "control char": "a/\x01b",
    "backslash traversal": "a\\..\\..\\x",
    "segment too long": "a/" + "n" * (MAX_SEGMENT_BYTES + 1),
    "name too long": "/".join(["d" * 100] * (MAX_NAME_BYTES // 100 + 1)),
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
def test_the_one_check_refuses_every_hostile_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(CorruptStoreError, match="is refused") as err:
        check_name(name, "s3://b/ds")
    assert "\n" not in str(err.value) and "\x00" not in str(err.value)


@pytest.mark.parametrize("name", ["data/a.memmap", "episodes-00000001.json", "a/b.c/d"])
def test_the_one_check_keeps_plain_names(name: str) -> None:
    assert check_name(name, "s3://b/ds") == name


def _hostile_store(url: str, store: Path, name: str, via: str) -> None:
    """A store at ``url`` that also holds an object called ``name``: in its listing only (no
    object index), or named by its object index as well."""
    push(store, url)
    _put(url, name, b"evil bytes")
    if via == "listing":
        _remove(url, ob.INDEX)
    else:
        entry = {"size": 10, "sha256": hashlib.sha256(b"evil bytes").hexdigest()}
        _edit_index(url, lambda doc: doc["objects"].__setitem__(name, entry))


def _name_cases() -> list[Any]:
    """Every hostile name x (listing, index) x (pull, load, info) x (memory, s3); on S3 only
    the pulls run by default (the rest are marked slow: one loopback push each)."""
    cases = []
    for kind in ("memory", "s3"):
        for label, name in HOSTILE_NAMES.items():
            for via in ("listing", "index"):
                for op in ("pull", "load", "info"):
                    slow = kind == "s3" and op != "pull"
                    cases.append(
                        pytest.param(
                            kind,
                            name,
                            via,
                            op,
                            id=f"{kind}-{label}-{via}-{op}",
                            marks=[pytest.mark.slow] if slow else [],
                        )
                    )
    return cases


@pytest.mark.parametrize(("kind", "name", "via", "op"), _name_cases())
def test_hostile_names_are_refused_before_a_byte_is_written(
    request: pytest.FixtureRequest,
    store: Path,
    tmp_path: Path,
    cache_dir: Path,
    kind: str,
    name: str,
    via: str,
    op: str,
) -> None:
    url = f"{_remote_url(kind, request, tmp_path)}/ds"
    _hostile_store(url, store, name, via)
    dst = tmp_path / "out" / "deep" / "dst"
    before = _files(tmp_path)
    if op == "pull":
        _one_line_failure(_cli("pull", url, dst), "is refused")
        _assert_only_under(tmp_path, before, dst)
        assert not (dst / ob.MANIFEST).exists()
    elif op == "info":
        _one_line_failure(_cli("info", url), "is refused")
        _in_cache_entries(tmp_path, before, cache_dir)
    else:
        with pytest.raises(CorruptStoreError, match="is refused"):
            rldata.load(url)
        _in_cache_entries(tmp_path, before, cache_dir)


LINKED = {"a payload file": PAYLOAD, "a folder": "data/next"}


@pytest.mark.parametrize("linked", list(LINKED.values()), ids=list(LINKED))
def test_a_file_remote_with_a_link_out_of_the_store_is_refused(
    store: Path, tmp_path: Path, linked: str
) -> None:
    """A local directory cannot hold a ``..`` name; a symbolic link is its way out (here to
    the very bytes the store expects, so only the containment check can tell)."""
    src = tmp_path / "remote" / "ds"
    shutil.copytree(store, src)
    outside = tmp_path / "outside" / Path(linked).name
    outside.parent.mkdir()
    shutil.move(src / linked, outside)
    (src / linked).symlink_to(outside)
    dst = tmp_path / "out" / "dst"
    before = _files(tmp_path)
    _one_line_failure(_cli("pull", f"file://{src}", dst), "outside")
    _assert_only_under(tmp_path, before, dst)
    assert not (dst / ob.MANIFEST).exists()


# --- 2. objects bigger than declared --------------------------------------------------------

BIG = 48 << 20  # one S3 part: a single PUT to the loopback server


def _fetched_from_s3(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes each ranged GET brought from the S3 server (s3fs's one network read)."""
    import s3fs

    got: list[int] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self: Any, start: int, end: int) -> bytes:
        data = original(self, start, end)
        got.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    return got


@pytest.mark.parametrize("op", ["pull", "load"])
def test_an_object_bigger_than_declared_stops_at_the_cap(
    remote: str,
    store: Path,
    tmp_path: Path,
    cache_dir: Path,
    op: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _published(f"{remote}/ds", store)
    declared = json.loads(_get(url, ob.INDEX))["objects"][PAYLOAD]["size"]
    _put(url, PAYLOAD, os.urandom(BIG))  # the index still declares the small one
    fetched = _fetched_from_s3(monkeypatch) if remote.startswith("s3") else None
    dst = tmp_path / "out" / "dst"
    before = _files(tmp_path)
    tracemalloc.start()
    try:
        if op == "pull":
            out = _one_line_failure(_cli("pull", url, dst), PAYLOAD, f"declared {declared} bytes")
        else:
            with pytest.raises(TransferError) as err:
                rldata.load(url, stream=False)
            out = str(err.value)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"stopped at byte {declared + 1}" in out
    if fetched is None:  # memory://: the object sits in this process; only copies count
        assert peak < BIG // 4, peak
    else:  # s3: moto serves from this process too, so count what crossed the wire instead
        assert sum(fetched) <= declared + 2 * CHUNK, fetched
    _assert_only_under(tmp_path, before, dst, *_cache_entries(cache_dir), cache_dir)
    assert not (dst / ob.MANIFEST).exists()


@pytest.mark.parametrize(
    "remote", ["memory", pytest.param("s3", marks=pytest.mark.slow)], indirect=True
)
def test_a_huge_numbered_manifest_is_passed_over_unread(
    remote: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rldata.stores.location import remote_commit as rc
    from rldata.testing import ted_batch

    monkeypatch.setattr(rc, "MAX_COMMIT_BYTES", 1 << 20)  # a small limit, a 32x bigger object
    url = f"{remote}/ds"
    with stores.create(url, backend="zarr") as w:
        w.append(ted_batch([6]))

    def peak_of_open() -> int:
        tracemalloc.start()
        try:
            with stores.open(url) as s:  # the real commit (the huge one passed over)
                assert len(s) == 6
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    baseline = peak_of_open()
    huge = 32 << 20
    _put(url, rc.commit_name(99), b" " * huge)  # the highest number: read first
    fetched = _fetched_from_s3(monkeypatch) if remote.startswith("s3") else None
    peak = peak_of_open()
    if fetched is None:
        assert peak - baseline < huge // 4, (peak, baseline)  # never the whole object
    else:  # moto serves from this process: count what crossed the wire
        assert sum(fetched) < huge // 4, sum(fetched)


# --- 3. an index naming many missing objects -------------------------------------------------

MISSING = 100_000


def _count_opens(url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the source file system was asked to open."""
    fs_cls = type(location(url).fs)
    opened: list[str] = []
    original = fs_cls._open

    def counting(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(fs_cls, "_open", counting)
    return opened


@pytest.mark.parametrize(
    "remote",
    ["memory", pytest.param("s3", marks=pytest.mark.slow)],  # 100,000 entries: ~10 s on S3
    indirect=True,
)
@pytest.mark.parametrize("op", ["pull", "load"])
def test_an_index_naming_many_missing_objects_fails_on_the_first(
    remote: str,
    store: Path,
    tmp_path: Path,
    cache_dir: Path,
    op: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _published(f"{remote}/ds", store)

    def add_missing(doc: dict[str, Any]) -> None:
        for i in range(MISSING):
            doc["objects"][f"data/missing/{i:06d}.bin"] = {
                "size": 1000,
                "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
            }

    _edit_index(url, add_missing)
    opened = _count_opens(url, monkeypatch)
    dst = tmp_path / "out" / "dst"
    if op == "pull":
        out = _one_line_failure(_cli("pull", url, dst), "object is missing")
    else:
        with pytest.raises(TransferError, match="object is missing") as err:
            rldata.load(url, stream=False)
        out = str(err.value)
    assert "data/missing/" in out
    tried = [p for p in opened if "/missing/" in p]
    assert 1 <= len(tried) <= 2 * transfer.WORKERS, len(tried)  # not 100,000


# --- 4. the cache: served digest, not declared digest ---------------------------------------

MANIFEST_FIELDS = {
    "env_id": {"env_id": "Evil-v0"},
    "env_kwargs": {"env_kwargs": {"g": 99.0}},
    "provenance": {"provenance": {"source": "someone else"}},
}


def _store_with(path: Path, **fields: Any) -> Path:
    from rldata.testing import ted_batch

    with stores.create(path, capacity=None, **fields) as w:
        w.append(ted_batch([20, 10, 15]))
    return path


@pytest.mark.parametrize("field", list(MANIFEST_FIELDS))
@pytest.mark.parametrize("op", ["load", "info"])
def test_same_rows_other_manifest_does_not_poison_the_cache(
    remote: str, tmp_path: Path, field: str, op: str
) -> None:
    legit = _store_with(tmp_path / "legit", env_id="Pendulum-v1")
    evil = _store_with(tmp_path / "evil", **{"env_id": "Pendulum-v1", **MANIFEST_FIELDS[field]})
    with stores.open(legit) as a, stores.open(evil) as b:
        assert stores.content_digest(a) == stores.content_digest(b)  # the same rows
        want = a.manifest
        assert want["env"] != b.manifest["env"] or want["provenance"] != b.manifest["provenance"]
    legit_url, evil_url = f"{remote}/legit", f"{remote}/evil"
    push(legit, legit_url)
    push(evil, evil_url)
    rldata.load(evil_url, stream=False)  # the other store reaches the cache first
    if op == "info":
        result = _cli("info", legit_url)
        assert result.exit_code == 0, result.output
        assert "Pendulum-v1" in result.output and "Evil-v0" not in result.output
        assert rldata.api.dataset_card(legit_url)["env"] == want["env"]
    with rldata.open(legit_url, stream=False) as s:
        assert s.manifest == want
    with rldata.open(evil_url, stream=False) as s:
        assert s.manifest != want


def _entry(cache: Path) -> Path:
    (entry,) = _cache_entries(cache)
    return entry


def _tamper_manifest(entry: Path) -> None:
    m = json.loads((entry / ob.MANIFEST).read_bytes())
    m["env_id"] = "Evil-v0"
    (entry / ob.MANIFEST).write_bytes(mf.dumps(m))  # its own checksum recomputed


def _tamper_payload(entry: Path) -> None:
    path = entry / PAYLOAD
    path.write_bytes(_flip(path.read_bytes()))


def _tamper_extra(entry: Path) -> None:
    (entry / "data" / "planted.json").write_text("{}")


TAMPERS = {"manifest, checksum recomputed": _tamper_manifest, "payload byte": _tamper_payload}
TAMPERS["planted file"] = _tamper_extra


@pytest.mark.parametrize("tamper", list(TAMPERS.values()), ids=list(TAMPERS))
def test_a_tampered_cache_entry_is_fetched_again(
    remote: str, tmp_path: Path, cache_dir: Path, tamper: Callable[[Path], None]
) -> None:
    src = _store_with(tmp_path / "src", env_id="Pendulum-v1")
    url = f"{remote}/ds"
    push(src, url)
    rldata.load(url, stream=False)
    tamper(_entry(cache_dir))
    with rldata.open(url, stream=False) as s:  # no refusal: the damaged copy is replaced
        assert s.env_id == "Pendulum-v1"
        assert stores.verify(s) == []
    entry = _entry(cache_dir)
    assert not (entry / "data" / "planted.json").exists()
    with stores.open(src) as a, stores.open(entry) as b:
        assert (entry / ob.MANIFEST).read_bytes() == (src / ob.MANIFEST).read_bytes()
        assert stores.content_digest(a) == stores.content_digest(b)


DECLARED_DIGESTS = {
    "NUL": "sha256:\x00" + "0" * 63,
    "absolute path": "/ABS/escape",
    "dotdot": "../../escape",
    "long": "sha256:" + "a" * 5000,
    "well formed, wrong": "sha256:" + "0" * 64,
}


@pytest.mark.parametrize("op", ["pull", "load"])
@pytest.mark.parametrize("declared", list(DECLARED_DIGESTS.values()), ids=list(DECLARED_DIGESTS))
def test_a_lying_declared_digest_names_no_path_and_is_refused(
    remote: str, store: Path, tmp_path: Path, cache_dir: Path, declared: str, op: str
) -> None:
    declared = declared.replace("/ABS", str(tmp_path))
    url = _published(f"{remote}/ds", store)
    _edit_index(url, lambda doc: doc.__setitem__("content_digest", declared))
    dst = tmp_path / "out" / "dst"
    before = _files(tmp_path)
    if op == "pull":
        _one_line_failure(_cli("pull", url, dst), "its object index declares")
        _assert_only_under(tmp_path, before, dst)
        assert not (dst / ob.MANIFEST).exists()
    else:
        with pytest.raises(TransferError, match="its object index declares") as err:
            rldata.load(url, stream=False)
        assert "\n" not in str(err.value) and "\x00" not in str(err.value)
        _in_cache_entries(tmp_path, before, cache_dir)
    assert not (tmp_path / "escape").exists()
    assert all("escape" not in p.name for p in _files(tmp_path))


# --- 5. a flipped committed byte --------------------------------------------------------------


@pytest.mark.parametrize("already", [False, True], ids=["new destination", "replacing a copy"])
@pytest.mark.parametrize("kind", ["memory", "s3", "file"])
def test_push_of_a_store_with_a_flipped_byte_fails(
    request: pytest.FixtureRequest, store: Path, tmp_path: Path, kind: str, already: bool
) -> None:
    url = f"{_remote_url(kind, request, tmp_path)}/ds"
    if already:
        push(store, url)
    path = store / PAYLOAD
    path.write_bytes(_flip(path.read_bytes(), 5))
    _one_line_failure(_cli("push", store, url), str(store), "fails verification")
    loc = location(url)
    loc.fs.invalidate_cache()
    if already:  # the published copy was left as it was: still the clean store
        assert loc.fs.exists(loc.path(ob.MANIFEST))
        if kind == "file":
            with stores.open(loc.root) as s:
                assert stores.verify(s) == []
    else:
        assert not loc.fs.exists(loc.path(ob.MANIFEST))


FLIPPED_PULLS = [
    (kind, via, op)
    for kind in ("memory", "s3", "file")
    for via in ("index", "listing")
    for op in ("pull", "load")
    # a file:// source is read from its listing, and loads as the local path it is
    if kind != "file" or (via, op) == ("listing", "pull")
]


@pytest.mark.parametrize(("kind", "via", "op"), FLIPPED_PULLS)
def test_pull_of_a_store_with_a_flipped_byte_fails(
    request: pytest.FixtureRequest,
    store: Path,
    tmp_path: Path,
    cache_dir: Path,
    kind: str,
    via: str,
    op: str,
) -> None:
    url = _published(f"{_remote_url(kind, request, tmp_path)}/ds", store)
    flipped = _flip(_get(url, PAYLOAD), 5)
    _put(url, PAYLOAD, flipped)
    if via == "listing":
        _remove(url, ob.INDEX)
    else:  # the index agrees with the damaged object: only the rows' checksums can tell
        sha = hashlib.sha256(flipped).hexdigest()
        _edit_index(url, lambda doc: doc["objects"][PAYLOAD].__setitem__("sha256", sha))
    dst = tmp_path / "out" / "dst"
    if op == "pull":
        _one_line_failure(_cli("pull", url, dst), url, "fails verification")
        assert not (dst / ob.MANIFEST).exists()
    else:
        with pytest.raises(TransferError, match="fails verification"):
            rldata.load(url, stream=False)
        assert _cache_entries(cache_dir) == [] or all(
            not (e / ".rldata-verified").exists() for e in _cache_entries(cache_dir)
        )


# --- 6. destinations that refuse writes -------------------------------------------------------


def _refuse_writes(url: str, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the file system at ``url`` refuse every write with ``code`` (at the fsspec layer:
    the instance every ``location(url)`` shares)."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(location(url).fs, "pipe_file", refuse)


# ENAMETOOLONG stands for S3's KeyTooLongError, which the loopback server does not enforce
@pytest.mark.parametrize(
    "code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.ENAMETOOLONG]
)
def test_push_to_a_store_that_refuses_writes_is_one_line(
    remote: str, store: Path, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{remote}/ds"
    _refuse_writes(url, code, monkeypatch)
    _one_line_failure(_cli("push", store, url), "cannot write", os.strerror(code))


def test_push_to_a_missing_bucket_is_one_line(s3_env: str, store: Path) -> None:
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:12]}/ds"
    _one_line_failure(_cli("push", store, url), url)


LONG_PATHS = {"segment over 255 bytes": ["s" * 300], "path over PATH_MAX": ["p" * 200] * 22}


@pytest.mark.parametrize("parts", list(LONG_PATHS.values()), ids=list(LONG_PATHS))
def test_push_to_a_name_too_long_is_one_line(store: Path, tmp_path: Path, parts: list[str]) -> None:
    dst = tmp_path.joinpath(*parts) / "ds"
    before = _files(tmp_path)
    _one_line_failure(_cli("push", store, dst), "too long")
    assert _files(tmp_path) == before


def _file_where_a_folder_goes(dst: Path) -> None:
    shutil.rmtree(dst / "data" / "next")
    (dst / "data" / "next").write_bytes(b"a file")


def _folder_where_a_file_goes(dst: Path) -> None:
    (dst / PAYLOAD).unlink()
    (dst / PAYLOAD).mkdir()
    (dst / PAYLOAD / "inside").write_bytes(b"x")


COLLISIONS = {"file where a folder goes": _file_where_a_folder_goes}
COLLISIONS["folder where a file goes"] = _folder_where_a_file_goes


@pytest.mark.parametrize("collide", list(COLLISIONS.values()), ids=list(COLLISIONS))
def test_push_into_a_file_folder_collision_is_one_line(
    store: Path, tmp_path: Path, collide: Callable[[Path], None]
) -> None:
    dst = tmp_path / "dst"
    push(store, f"file://{dst}")
    collide(dst)
    _one_line_failure(_cli("push", store, f"file://{dst}"), str(dst))


_UNSHARE = shutil.which("unshare")


def _in_tmpfs(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_UNSHARE or "unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("mount", "reasons"),
    [
        # a failing push once left its digest thread inside torch at exit, and the process
        # aborted in native code now and then ("terminate called without an active exception")
        ("size=64k", ["No space left on device"]),
        ("ro", ["Read-only file system", "not writable"]),
    ],
    ids=["ENOSPC", "EROFS"],
)
def test_push_to_a_full_or_read_only_disk_is_one_line(
    store: Path, tmp_path: Path, mount: str, reasons: list[str]
) -> None:
    """A real tmpfs, mounted in a user namespace: the disk's own refusal, not a simulation."""
    if _UNSHARE is None or _in_tmpfs("true").returncode != 0:
        pytest.skip("unprivileged mount namespaces are not available (simulated above instead)")
    disk = tmp_path / "disk"
    disk.mkdir()
    push_cmd = (
        f"{sys.executable} -c 'from rldata_cli.main import main; main()' push {store} {disk}/ds"
    )
    result = _in_tmpfs(f"mount -t tmpfs -o {mount} none {disk} && {push_cmd}")
    assert result.returncode != 0
    err = result.stderr.strip()
    lines = [line for line in err.splitlines() if not line.startswith("push ")]  # progress
    assert "Traceback" not in err and len(lines) == 1, err
    assert any(r in lines[0] for r in reasons) and str(disk) in lines[0], err
    assert result.returncode == 1, err  # not 134: no abort at exit
    assert list(disk.iterdir()) == []  # the tmpfs went away with the namespace


def test_errors_here_are_from_the_one_tree() -> None:
    assert issubclass(TransferError, RldataError) and issubclass(TransferError, OSError)
    assert issubclass(CorruptStoreError, RldataError) and issubclass(CorruptStoreError, ValueError)
