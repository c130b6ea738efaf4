"""The commit protocol of a store at a URL: immutable objects first, a numbered manifest last.

An object store has no rename, so the local protocol (temp file, rename over
``rldata.json``) does not carry over. A store at a URL is instead (``docs/FORMAT.md``,
section 15)::

    <url>/objects/<sha256>               every object of every commit, named by its SHA-256
    <url>/manifests/000000000042.json    commit 42: which object holds each file of the store

A writer works on a local working copy (an ordinary store of the ``zarr`` or ``parquet``
backend; sampling reads it). Each local commit is then published: the objects it
changed are uploaded (their names are their hashes, so an object is never rewritten and
two writers can never clobber each other's bytes), and only then is the commit's numbered
manifest written **put-if-absent** (:meth:`Location.put_if_absent`: S3's conditional PUT).
Two writers that race for the same number end with one commit and one
:class:`~rldata.errors.StoreError` naming the URL and the number. A reader takes the
highest numbered manifest that is complete: its self-checksum matches and every object it
names exists.

Examples:
    >>> from rldata import stores                                          # doctest: +SKIP
    >>> with stores.create("s3://team/pendulum", backend="zarr") as w:     # doctest: +SKIP
    ...     w.append(rows)                                  # published on every commit
    >>> r = stores.open("s3://team/pendulum")               # the latest complete commit
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rldata import _untrusted as untrusted
from rldata.errors import (
    ConfigError,
    CorruptStoreError,
    StoreError,
    StoreExistsError,
    StoreNotFoundError,
)
from rldata.stores.backend.opening import create_dir, open_dir
from rldata.stores.format.files import LOCK, MANIFEST, TMP_MARK
from rldata.stores.location.places import Location, cache_root, location, redact
from rldata.stores.location.remote_names import (
    check_name,
    contained_name,
    each_in_turn,
    fetch_to_file,
)

COMMITS = "manifests"
OBJECTS = "objects"
COMMIT_FORMAT = "rldata-commit"
COMMIT_VERSION = 1
SELF_SUM = "commit_sha256"
BACKENDS = ("zarr", "parquet")
"""Backends a store at a URL keeps: their committed files are only ever added or replaced
whole. ``memmap`` rewrites files in place and ``hdf5`` is one file: record those locally and
``rldata push``."""
_NUMBER = re.compile(r"^(\d{12})\.json$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
WORKERS = 16
MAX_COMMIT_BYTES = 64 << 20


def commit_name(number: int) -> str:
    """The object name of commit ``number``."""
    return f"{COMMITS}/{number:012d}.json"


def encode(number: int, objects: dict[str, dict[str, Any]]) -> bytes:
    """The bytes of a numbered manifest: the commit's files and their checksum."""
    body = {
        "format": COMMIT_FORMAT,
        "version": COMMIT_VERSION,
        "number": number,
        "objects": {k: objects[k] for k in sorted(objects)},
    }
    return json.dumps({**body, SELF_SUM: _self_sum(body)}, sort_keys=True).encode()


def _self_sum(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def parse(data: bytes, where: str) -> dict[str, Any]:
    """A numbered manifest's contents (untrusted input: every field is checked).

    Raises:
        CorruptStoreError: not JSON, another format, a checksum that does not match, an
            object path that leaves the store, or a malformed size or hash.
    """
    doc = untrusted.loads_json(data, where, "numbered manifest", error=CorruptStoreError)
    if not isinstance(doc, dict) or doc.get("format") != COMMIT_FORMAT:
        raise CorruptStoreError(f"{where}: expected format {COMMIT_FORMAT!r}")
    claimed = doc.pop(SELF_SUM, None)
    if claimed != _self_sum(doc):
        raise CorruptStoreError(f"{where}: numbered manifest does not match its {SELF_SUM}")
    doc[SELF_SUM] = claimed  # names the commit (a cache key)
    objects = doc.get("objects")
    if not isinstance(objects, dict) or MANIFEST not in objects:
        raise CorruptStoreError(f"{where}: field 'objects' must list {MANIFEST}")
    for rel, entry in objects.items():
        check_name(rel, where)
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and not isinstance(entry.get("size"), bool)
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
            and _SHA.match(entry["sha256"]) is not None
        )
        if not ok:
            raise CorruptStoreError(
                f"{where}: object {rel!r}: expected {{size: int >= 0, sha256: 64 hex}}, got {entry!r}"
            )
    return doc


# --- reading ------------------------------------------------------------------------------------


def numbers(loc: Location) -> list[int]:
    """Numbers of the manifests under ``manifests/``, highest first."""
    found = [_NUMBER.match(name) for name in loc.names(COMMITS)]
    return sorted((int(m.group(1)) for m in found if m), reverse=True)


def is_commit_store(loc: Location) -> bool:
    """Whether ``loc`` holds a store written by this protocol (any numbered manifest)."""
    return bool(numbers(loc))


def latest(loc: Location, *, check_objects: bool = True) -> tuple[int, dict[str, Any]]:
    """The highest complete commit: its number and numbered manifest.

    A manifest whose checksum fails, or that names an object the store lacks, is passed
    over for the next lower one (a reader never serves a half-written commit).
    ``check_objects=False`` skips the listing of ``objects/`` (for a caller that already
    holds that commit's verified copy).

    Raises:
        StoreNotFoundError: no complete commit at ``loc``.
    """
    where = redact(loc.url)
    have: set[str] | None = None
    for n in numbers(loc):
        data = loc.cat(commit_name(n), limit=MAX_COMMIT_BYTES)
        if data is None or len(data) > MAX_COMMIT_BYTES:
            continue
        try:
            doc = parse(data, f"{where}/{commit_name(n)}")
        except CorruptStoreError:
            continue
        if doc.get("number") != n:
            continue
        if not check_objects:
            return n, doc
        if have is None:
            have = set(loc.names(OBJECTS))
        if all(e["sha256"] in have for e in doc["objects"].values()):
            return n, doc
    raise StoreNotFoundError(
        f"no rldata store at {where} (no complete {COMMITS}/NNNNNNNNNNNN.json)"
    )


def object_urls(url: str, *, storage_options: dict | None = None) -> dict[str, str]:
    """The files of the latest complete commit at ``url`` as URLs of the objects holding them,
    for tools that read objects in place (pyarrow, DuckDB, Polars through fsspec):
    ``{"data/part-00000.parquet": "s3://bucket/ds/objects/<sha256>", ...}``.

    Raises:
        StoreNotFoundError: no complete commit at ``url``.
    """
    loc = location(url, storage_options)
    _number, doc = latest(loc)
    return {
        rel: loc.fs.unstrip_protocol(loc.path(f"{OBJECTS}/{e['sha256']}"))
        for rel, e in sorted(doc["objects"].items())
    }


def checkout(loc: Location, doc: dict[str, Any], dest: Path, *, workers: int = WORKERS) -> None:
    """Download the objects of commit ``doc`` into the local directory ``dest`` (created),
    each checked against its SHA-256 before it is written.

    Raises:
        CorruptStoreError: an object is missing, its bytes differ from its hash, or its name
            leaves ``dest`` (an object holding more bytes than declared is read only one
            byte past its size).
    """
    where = redact(loc.url)
    objects: dict[str, dict[str, Any]] = doc["objects"]
    dest.mkdir(parents=True, exist_ok=True)
    targets = {rel: contained_name(dest, rel, where) for rel in objects}  # before any write

    def one(rel: str) -> None:
        entry = objects[rel]
        name = f"{OBJECTS}/{entry['sha256']}"
        size = entry["size"]  # read at most one byte past it: a bigger object stops there
        want = (size, entry["sha256"])
        got = fetch_to_file(loc.fs, loc.path(name), want, targets[rel], where=f"{where}/{name}")
        if got is None:
            raise CorruptStoreError(f"{where}: object {rel} ({entry['sha256'][:12]}…) is missing")
        n, sha = got
        if n != size or sha != entry["sha256"]:
            held = f"more than {size}" if n > size else str(n)
            raise CorruptStoreError(
                f"{where}: object {rel} ({entry['sha256'][:12]}…) does not match its sha256 "
                f"(declared {size} bytes, holds {held})"
            )

    rels = sorted((r for r in objects if r != MANIFEST), key=lambda r: -objects[r]["size"])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in each_in_turn(pool, one, rels, 2 * workers):  # the first failure ends it
            pass
    one(MANIFEST)  # last: the copy is a store only once complete


# --- writing ------------------------------------------------------------------------------------


class Publisher:
    """Publishes each commit of a local working copy to ``loc`` (called by the store after
    every local commit, as ``store.on_commit``)."""

    def __init__(self, loc: Location, work: Path, *, workers: int = WORKERS) -> None:
        self.loc = loc
        self.work = work
        self.workers = workers
        self._known: dict[str, tuple[int, int, int, str]] = {}  # rel -> (size, mtime, ino, sha)
        self._remote: set[str] | None = None  # object hashes known to be at ``loc``
        self.number: int | None = None  # the last number this writer committed

    def __call__(self, store: Any) -> None:
        self.publish(int(store.manifest["generation"]))

    def publish(self, number: int) -> None:
        """Upload the objects of the working copy's commit ``number``, then its numbered
        manifest put-if-absent.

        Raises:
            StoreExistsError: another writer committed ``number`` first (this commit is not
                in the store).
            StoreError: an upload failed (the commit is not in the store either).
        """
        objects = self._objects()
        if self._remote is None:
            self._remote = set(self.loc.names(OBJECTS))
        todo = {e["sha256"]: rel for rel, e in objects.items() if e["sha256"] not in self._remote}
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for sha in pool.map(self._upload, todo.items()):
                self._remote.add(sha)
        if not self.loc.put_if_absent(commit_name(number), encode(number, objects)):
            raise StoreExistsError(
                f"store {redact(self.loc.url)}: manifest {commit_name(number)} was committed by "
                f"another writer first; this writer's rows since commit {number - 1} are not in "
                f"the store (reopen it with mode='a' to continue from the latest commit)"
            )
        self.number = number

    def _upload(self, item: tuple[str, str]) -> str:
        sha, rel = item
        data = (self.work / rel).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(f"store {redact(self.loc.url)}: {rel} changed while being published")
        out = self.loc.put(f"{OBJECTS}/{sha}", data)
        etag = str(out.get("ETag", "")).strip('"') if isinstance(out, dict) else ""
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if etag and "-" not in etag and etag != md5:  # S3: the MD5 of the bytes it received
            raise StoreError(
                f"store {redact(self.loc.url)}: object {rel} arrived damaged (ETag mismatch)"
            )
        return sha

    def _objects(self) -> dict[str, dict[str, Any]]:
        """Every file of the working copy's committed store, with its size and SHA-256 (files
        unchanged since the last commit are not hashed again)."""
        m = untrusted.read_json(self.work / MANIFEST, "manifest", error=CorruptStoreError)
        current_episodes = (m.get("episodes") or {}).get("path")
        out = {}
        for dirpath, _dirs, names in os.walk(self.work):
            for name in names:
                if name == LOCK or TMP_MARK in name or name.endswith(".partial"):
                    continue
                path = Path(dirpath) / name
                rel = path.relative_to(self.work).as_posix()
                if name.startswith("episodes-") and rel != current_episodes:
                    continue  # an older episode index the manifest no longer names
                st = path.stat()
                key = (st.st_size, st.st_mtime_ns, st.st_ino)
                known = self._known.get(rel)
                if known is None or known[:3] != key:
                    sha = hashlib.sha256(path.read_bytes()).hexdigest()
                    known = self._known[rel] = (*key, sha)
                out[rel] = {"size": st.st_size, "sha256": known[3]}
        return out


def _work_dir() -> Path:
    """A fresh working directory for one handle (under ``$RLDATA_CACHE/writing``); those left
    by processes that no longer run (killed before they could clean up) are removed."""
    root = cache_root() / "writing"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        pid = old.name.split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return root / f"{os.getpid()}-{secrets.token_hex(6)}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _writable(url: str, storage_options: dict | None) -> Location:
    loc = location(url, storage_options)
    if loc.local:
        raise ConfigError(f"{url!r} is a local path; open it as one")
    loc.check_exclusive_create()
    return loc


def check_backend(url: str, backend: str, capacity: int | None) -> None:
    """Refuse, in one line, a backend or a ring that a store at a URL does not keep.

    Raises:
        ConfigError: ``backend`` is not zarr or parquet, or ``capacity`` asks for a ring.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"store URL {redact(url)}: backend {backend!r} is refused at a URL (its files are "
            f"rewritten in place); use one of {list(BACKENDS)}, or record locally and rldata push"
        )
    if capacity is not None:
        raise ConfigError(
            f"store URL {redact(url)}: capacity={capacity} (a ring) is refused at a URL; stores "
            f"on object storage are append-only (capacity=None)"
        )


def _attach(store: Any, loc: Location, work: Path, publisher: Publisher) -> Any:
    store.on_commit = publisher
    store.path = redact(loc.url)  # messages name the store, not its working copy
    weakref.finalize(store, shutil.rmtree, work, True)
    return store


def create(
    url: str,
    *,
    backend: str,
    capacity: int | None,
    storage_options: dict | None = None,
    **kwargs: Any,
) -> Any:
    """A new, empty store at ``url``, open for writing (see the module docstring).

    ``kwargs`` are those of :func:`rldata.stores.create`.

    Raises:
        ConfigError: a backend or a ring a URL does not keep.
        StoreExistsError: ``url`` holds a store, other files, or another writer created one first.
        UnsupportedURLError / StoreError: a scheme refused, or one without put-if-absent.
    """
    check_backend(url, backend, capacity)
    loc = _writable(url, storage_options)
    if (
        loc.names(COMMITS) or loc.cat(MANIFEST, limit=MAX_COMMIT_BYTES) is not None
    ):  # orphan objects/ are harmless
        raise StoreExistsError(
            f"{redact(url)} already holds a store; pick a new URL or rldata.open it with mode='a'"
        )
    kwargs.pop("durable", None)  # the working copy is scratch: the URL is the durable copy
    work = _work_dir()
    store = create_dir(work, backend=backend, capacity=None, durable=False, **kwargs)
    publisher = Publisher(loc, work)
    try:
        publisher(store)
    except StoreExistsError:
        raise StoreExistsError(
            f"{redact(url)}: another writer created a store there first ({commit_name(1)} exists)"
        ) from None
    finally:
        if publisher.number is None:  # not published: nothing of this handle is the store
            store.close()
            shutil.rmtree(work, ignore_errors=True)
    return _attach(store, loc, work, publisher)


def open_url(url: str, *, mode: str = "r", storage_options: dict | None = None) -> Any:
    """The store at ``url``: its latest complete commit checked out into a working copy
    (verified by :func:`rldata.stores.open`); ``mode="a"`` publishes further commits.

    Raises:
        StoreNotFoundError: no complete commit at ``url``.
        CorruptStoreError: an object differs from its hash, or a row from its checksum.
        StoreError: ``mode="a"`` on a file system without put-if-absent.
    """
    loc = _writable(url, storage_options) if mode == "a" else location(url, storage_options)
    if not numbers(loc) and loc.cat(MANIFEST, limit=MAX_COMMIT_BYTES) is not None:
        if mode == "a":
            raise ConfigError(
                f"mode: the store at {redact(url)} was published by rldata push, which opens "
                f"read-only (mode='r'); pull it, write locally, then push"
            )
        raise StoreNotFoundError(
            f"{redact(url)} holds a pushed store; read it with rldata.open / rldata.load"
        )
    number, doc = latest(loc)
    work = _work_dir()
    try:
        checkout(loc, doc, work)
        store = open_dir(work, mode=mode, durable=False)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if store.manifest["generation"] != number:
        store.close()
        shutil.rmtree(work, ignore_errors=True)
        raise CorruptStoreError(
            f"{redact(url)}: {commit_name(number)} holds a manifest of generation "
            f"{store.manifest['generation']}; expected {number}"
        )
    if mode == "r":
        store.path = redact(url)
        weakref.finalize(store, shutil.rmtree, work, True)
        return store
    check_backend(url, store.backend, store.capacity)
    publisher = Publisher(loc, work)
    publisher.number = number
    return _attach(store, loc, work, publisher)


def check_destination(url: str, *, resume: bool, force: bool, backend: str) -> None:
    """The URL counterpart of :func:`rldata.stores.location.destination.check_destination`.

    Raises:
        ConfigError: ``force`` (a store at a URL is never replaced), a refused backend.
        StoreNotFoundError: ``resume`` and no store at ``url``.
        StoreExistsError: a store is there and ``resume`` is not set.
    """
    if force:
        raise ConfigError(
            f"--force: a store at a URL ({redact(url)}) is never replaced; pick a new URL"
        )
    loc = _writable(url, None)
    exists = bool(numbers(loc))
    if resume and not exists:
        raise StoreNotFoundError(f"--resume: no rldata store at {redact(url)}")
    if exists and not resume:
        raise StoreExistsError(f"a store already exists at {redact(url)}; pass --resume to append")
    if not resume:
        check_backend(url, backend, None)


@contextlib.contextmanager
def recording_store(url: str, *, backend: str, resume: bool, **create_kwargs: Any) -> Iterator[Any]:
    """The store a recording writes into at ``url``, closed (committed, published) at the end."""
    env_id = create_kwargs.get("env_id")
    if resume:
        store = open_url(url, mode="a")
        if env_id is not None and store.env_id not in (None, env_id):
            store.close()
            raise ConfigError(
                f"--resume: the store at {redact(url)} was recorded from {store.env_id!r}, "
                f"not {env_id!r}"
            )
    else:
        store = create(url, backend=backend, capacity=None, **create_kwargs)
    with store:
        yield store
