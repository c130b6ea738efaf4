"""Stores at a URL, read locally: pulled once into a cache keyed by content digest, verified.

``open_url(url)`` returns a local directory holding the store at ``url``. The cache lives in
``$RLDATA_CACHE`` (default ``~/.cache/rldata``); each store sits in ``sha256-<hex>``, named by
the content digest its object index declares, so two URLs holding the same data share one
copy and a changed store at the same URL gets a new one. A pull lands in ``<name>.partial``
(a killed pull resumes there), is verified (every object's SHA-256 against the index, then
the content digest) and only then renamed into place. Every ``rldata.stores.open`` of the
copy then checks the manifest's checksum of each row before handing the store out.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from rldata import stores
from rldata.errors import TransferError
from rldata.sharing import objects as ob
from rldata.sharing.digest import digest_of
from rldata.sharing.transfer import _cat, pull
from rldata.sharing.urls import Location, location, redact
from rldata.stores import remote_commit
from rldata.stores.location import cache_root

VERIFIED = ".rldata-verified"


def _dirname(digest: str) -> str:
    return digest.replace(":", "-")


def open_url(url: str, *, storage_options: dict | None = None, progress: bool = False) -> str:
    """A verified local copy of the store at ``url`` (pulled on first use); its directory.

    Raises:
        StoreNotFoundError: no store at ``url``.
        UnsupportedURLError: a scheme fsspec does not know, or one refused for safety.
        TransferError: an object fails its SHA-256, or the copy its declared digest.
    """
    loc = location(url, storage_options)
    if loc.local:
        return loc.root
    index = ob.read_index(_cat(loc, ob.INDEX))
    if index is None and remote_commit.is_commit_store(loc):  # docs/FORMAT.md section 15
        return _open_commit(loc)
    declared = index.get("content_digest") if index and index.get("complete") else None
    root = cache_root()
    if declared:
        target = root / _dirname(str(declared))
        if _is_verified(target, str(declared)):
            return str(target)
        staging = root / (target.name + ".partial")
    else:  # a store not published by rldata: name the staging area after the URL
        staging = root / (
            "url-" + hashlib.sha256(redact(url).encode()).hexdigest()[:16] + ".partial"
        )
    root.mkdir(parents=True, exist_ok=True)
    pull(url, staging, storage_options=storage_options, progress=progress)
    # every object matched its SHA-256 from the index; the digest ties the copy to the name
    # it is cached under, and rldata.stores.open checks every row's checksum at each use
    with stores.open(staging, verify=False) as store:
        digest = digest_of(store)
    if declared and digest != declared:
        raise TransferError(
            f"{redact(url)}: content digest {digest} differs from the {declared} its index declares"
        )
    target = root / _dirname(digest)
    (staging / VERIFIED).write_text(digest)
    if _is_verified(target, digest):
        shutil.rmtree(staging)  # another process got there first
    else:
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return str(target)


def _open_commit(loc: Location) -> str:
    """A store written by numbered manifests (FORMAT.md section 15): its latest complete commit,
    checked out (every object against its SHA-256), opened once (every row against its
    checksum), cached under the commit's own checksum."""
    _number, doc = remote_commit.latest(loc, check_objects=False)
    name = f"commit-{doc[remote_commit.SELF_SUM][:32]}"
    target = cache_root() / name
    if _is_verified(target, name):  # this very commit was checked out and verified before
        return str(target)
    _number, doc = remote_commit.latest(loc)  # the highest one whose objects all exist
    name = f"commit-{doc[remote_commit.SELF_SUM][:32]}"
    target = cache_root() / name
    if _is_verified(target, name):
        return str(target)
    staging = cache_root() / (name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    remote_commit.checkout(loc, doc, staging)
    with stores.open(staging):  # raises CorruptStoreError on a row that fails its checksum
        pass
    (staging / VERIFIED).write_text(name)
    if _is_verified(target, name):
        shutil.rmtree(staging)  # another process got there first
    else:
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    return str(target)


def _is_verified(target: Path, digest: str) -> bool:
    try:
        return (target / VERIFIED).read_text() == digest and (target / ob.MANIFEST).is_file()
    except OSError:
        return False
