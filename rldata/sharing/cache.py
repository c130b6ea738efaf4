"""Stores at a URL, read locally: pulled once into a cache keyed by URL and served digest, verified.

``open_url(url)`` returns a local directory holding the store at ``url``. The cache lives in
``$RLDATA_CACHE`` (default ``~/.cache/rldata``). Each copy sits in ``store-<hex>``, where
``<hex>`` is a SHA-256 computed here over the URL and the copy's *served digest*: every
object's name, size and SHA-256, the manifest included. A content digest covers only schema
and rows, so two stores with the same rows but another env, specs or provenance would share
it; the served digest does not. No cache path is ever built from a string a remote declares.

A copy is filled in ``<name>.partial`` (what a killed fill left there is removed first),
checked (every file hashed against the served digest, then every row against
its checksum by the verified open) and only then renamed into place. Each later hit is
checked the same way; a copy that fails (an edited manifest, a flipped byte) is removed and
fetched again rather than refused forever.

``open_stream(url)`` is the other way to read a URL: a pushed, append-only ``memmap``
store is served where it lives, each batch downloading only the units it needs through a
bounded chunk cache (:mod:`rldata.stores.location.stream`); every other store is pulled
whole as above.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from rldata import stores
from rldata.errors import ConfigError, CorruptStoreError, TransferError
from rldata.sharing import objects as ob
from rldata.sharing.transfer import _cat, pull
from rldata.sharing.urls import Location, location, redact
from rldata.stores.backend.base import Store
from rldata.stores.format.files import TMP_MARK
from rldata.stores.location import remote_commit, stream
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.places import cache_root

VERIFIED = ".rldata-verified"
_BLOCK = 16 << 20


def open_url(url: str, *, storage_options: dict | None = None, progress: bool = False) -> str:
    """A verified local copy of the store at ``url`` (pulled on first use); its directory.

    Raises:
        StoreNotFoundError: no store at ``url``.
        UnsupportedURLError: a scheme fsspec does not know, or one refused for safety.
        CorruptStoreError: the remote names an object outside the store, or its index is
            malformed.
        TransferError: an object fails its SHA-256 or its declared size, a row its checksum,
            or the copy the content digest its index declares.
    """
    loc = location(url, storage_options)
    if loc.local:
        return loc.root
    index = ob.read_index(_cat(loc, ob.INDEX))
    if index is None and remote_commit.is_commit_store(loc):  # docs/FORMAT.md section 15
        return _open_commit(loc)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if index is not None and index.get("complete"):
        served = ob.served_digest(ob.index_entries(index, redact(url)))
        target = root / _name(url, served)
        if _hit(target, served):
            return str(target)
        staging = root / (target.name + ".partial")
    else:  # a store not published by rldata: what it serves is known once it is here
        served = None
        staging = root / (
            "url-" + hashlib.sha256(redact(url).encode()).hexdigest()[:32] + ".partial"
        )
    shutil.rmtree(staging, ignore_errors=True)  # a leftover of a killed fill is not trusted
    pull(url, staging, storage_options=storage_options, progress=progress)
    return _seal(url, staging, served)


def open_stream(
    url: str,
    *,
    cache_bytes: int | None = None,
    storage_options: dict | None = None,
    verify: bool = True,
) -> Store:
    """The store at ``url``, read-only: streamed when it is a pushed, append-only memmap
    store (its manifest, episode index and statistics read and checked now, each payload
    unit when a batch first needs it, through a chunk cache of at most ``cache_bytes``,
    default ``$RLDATA_CHUNK_CACHE_BYTES`` or 2 GiB); otherwise, and for a local URL,
    the verified copy of :func:`open_url` opened with ``verify``.

    Raises:
        StoreNotFoundError, UnsupportedURLError, TransferError: as :func:`open_url`.
        CorruptStoreError: a name, size or digest the remote serves is not the expected
            one (a unit's error names the URL, the key and the rows).
    """
    loc = location(url, storage_options)
    if not loc.local:
        found = _streamable(loc)
        if found is not None:
            manifest_bytes, objects = found
            cache = ChunkCache(max_bytes=cache_bytes)
            return stream.open_stream(loc, manifest_bytes, objects, cache_root(), cache)
    local = open_url(url, storage_options=storage_options)
    return stores.open(local, verify=verify)


def stream_local(url: str, *, cache_bytes: int | None = None) -> Store:
    """:func:`open_stream` even for a local URL (``file://``): the streaming path over a
    local file system, for tests and benchmarks that compare it with the local store.

    Raises:
        ConfigError: the store at ``url`` is not streamable (see :func:`open_stream`).
    """
    loc = location(url)
    found = _streamable(loc)
    if found is None:
        raise ConfigError(f"{redact(url)}: not a pushed, append-only memmap store")
    cache = ChunkCache(max_bytes=cache_bytes)
    return stream.open_stream(loc, found[0], found[1], cache_root(), cache)


def _streamable(loc: Location) -> tuple[bytes, dict[str, tuple[int, str]]] | None:
    """The manifest bytes and object index of a store :mod:`stream` serves; None otherwise."""
    index = ob.read_index(_cat(loc, ob.INDEX))
    if index is None or not index.get("complete"):
        return None
    where = redact(loc.url)
    objects = ob.index_entries(index, where)
    manifest_bytes = _cat(loc, ob.MANIFEST)
    if manifest_bytes is None or ob.MANIFEST not in objects:
        return None
    if hashlib.sha256(manifest_bytes).hexdigest() != objects[ob.MANIFEST][1]:
        raise TransferError(
            f"{where}: its manifest does not match its object index (a push is under way?); "
            "retry when it has finished"
        )
    if not stream.streamable(ob.parse_manifest(manifest_bytes, where)):
        return None
    return manifest_bytes, objects


def _open_commit(loc: Location) -> str:
    """A store written by numbered manifests (FORMAT.md section 15): its latest complete commit,
    checked out (every object against its SHA-256) and sealed like a pulled copy."""
    _number, doc = remote_commit.latest(loc, check_objects=False)
    target = cache_root() / _name(loc.url, _commit_served(doc))
    if _hit(target, _commit_served(doc)):  # this very commit was checked out and verified
        return str(target)
    _number, doc = remote_commit.latest(loc)  # the highest one whose objects all exist
    served = _commit_served(doc)
    target = cache_root() / _name(loc.url, served)
    if _hit(target, served):
        return str(target)
    staging = cache_root() / (target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    remote_commit.checkout(loc, doc, staging)
    return _seal(loc.url, staging, served)


def _commit_served(doc: dict) -> str:
    return ob.served_digest(
        {k: (int(e["size"]), str(e["sha256"])) for k, e in doc["objects"].items()}
    )


def _name(url: str, served: str) -> str:
    """A cache entry's directory name: a SHA-256 computed here, of the URL and served digest."""
    return "store-" + hashlib.sha256(f"{redact(url)}\n{served}".encode()).hexdigest()[:40]


def _seal(url: str, staging: Path, served: str | None) -> str:
    """Check the filled ``staging`` (its files against ``served``, when known; every row by
    the verified open) and rename it into place; its directory.

    Raises:
        TransferError: the copy serves other bytes than the remote listed, or a row fails.
    """
    local = _served_here(staging)
    if served is not None and local != served:
        shutil.rmtree(staging, ignore_errors=True)
        raise TransferError(f"{redact(url)}: the copy differs from the objects its index lists")
    try:
        with stores.open(staging, verify="full"):  # every row against its checksum
            pass
    except CorruptStoreError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise TransferError(f"{redact(url)}: the store fails verification ({exc})") from None
    target = staging.parent / _name(url, local)
    (staging / VERIFIED).write_text(local)
    if _hit(target, local):
        shutil.rmtree(staging)  # another process got there first
    else:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return str(target)


def _hit(target: Path, served: str) -> bool:
    """Whether ``target`` holds a sound copy serving ``served``; a damaged one is removed."""
    try:
        if (target / VERIFIED).read_text() != served or not (target / ob.MANIFEST).is_file():
            return False
    except OSError:
        return False
    try:
        if _served_here(target) == served:
            with stores.open(target, verify="full"):  # the verified open, on every hit
                return True
    except (CorruptStoreError, OSError):
        pass
    shutil.rmtree(target, ignore_errors=True)  # fetched again rather than refused forever
    return False


def _served_here(folder: Path) -> str:
    """The served digest of the local copy in ``folder``: every file's name, size and
    SHA-256, hashed here (the object index, the verified mark and temporary files left out)."""
    entries = {}
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            if name in (ob.INDEX, ob.LOCK, VERIFIED) or TMP_MARK in name:
                continue
            path = Path(dirpath) / name
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(_BLOCK):
                    h.update(block)
            entries[path.relative_to(folder).as_posix()] = (path.stat().st_size, h.hexdigest())
    return ob.served_digest(entries)
