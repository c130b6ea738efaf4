"""``push`` and ``pull``: copy a store object by object, verified, resumable, manifest last.

Both are one operation, :func:`copy_store`, between two :class:`~rldata.sharing.urls.Location`
s (a local directory or an fsspec URL):

1. Snapshot the source: read its manifest first, then list its objects
   (:mod:`rldata.sharing.objects`); a remote source's object index gives each object's SHA-256.
2. For each payload object, in parallel: hash the source bytes; skip it when the destination
   already holds it identical (a local file is hashed; a remote object must match the
   destination's index entry and its listing fingerprint, e.g. the S3 ETag); else remove
   the destination's manifest (once: a store being changed is not a store), write the object
   and verify it: S3 reports the MD5 of what it received (its ETag) and anything else is
   read back and hashed. The destination's index records every verified object, so a killed
   run rerun skips what landed.
3. Then the episode indexes, the object index (``complete``), and the manifest: last, so the
   destination opens only once complete.

A source is untrusted: every name it lists or indexes passes
:func:`rldata.stores.location.remote_names.check_name` (and :func:`~rldata.stores.location.remote_names.contained_name`
for a local path), every object is read in chunks and never past its declared size, the
first missing object ends the copy, and rows are checked by the verified open on both ends
(a local source before its copy replaces a published one, a local copy before it is kept).

Examples:
    >>> from rldata.sharing import push, pull                     # doctest: +SKIP
    >>> push("datasets/pendulum", "s3://team-bucket/pendulum")    # doctest: +SKIP
    >>> pull("s3://team-bucket/pendulum", "datasets/pendulum-b")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rldata import stores
from rldata.errors import (
    CorruptStoreError,
    RldataError,
    StoreExistsError,
    StoreNotFoundError,
    TransferError,
)
from rldata.sharing import objects as ob
from rldata.sharing.digest import digest_of
from rldata.sharing.progress import byte_bar
from rldata.sharing.urls import Location, location, redact
from rldata.stores.location import remote_commit
from rldata.stores.location.destination import inspect_destination, plan_destination, refuse_overlap
from rldata.stores.location.remote_names import (
    CHUNK,
    check_name,
    contained_name,
    each_in_turn,
    read_capped,
    read_chunks,
)

WORKERS = 32  # small objects (episode and statistics files) are latency-bound
_S3_PART = 50 << 20  # s3fs's default part size: objects under 2 parts go in one PUT
_JOURNAL_EVERY_S = 0.5
MAX_META_BYTES = 64 << 20  # a manifest or object index larger than this is refused
STREAM_BYTES = 8 << 20  # an object larger than this is streamed in chunks, hashed as it goes
STREAMS = 4  # large objects in flight at once (an S3 upload buffers one part, _S3_PART bytes)
HELD_BYTES = 64 << 20  # whole objects (each at most STREAM_BYTES) held by the workers at once


@dataclass(frozen=True)
class TransferSummary:
    """What a push or pull did."""

    source: str
    destination: str
    objects: int
    copied: int
    skipped: int
    bytes_copied: int
    seconds: float
    content_digest: str | None


def push(
    src: str | os.PathLike[str],
    url: str,
    *,
    storage_options: dict | None = None,
    progress: bool = False,
    workers: int = WORKERS,
    force: bool = False,
) -> TransferSummary:
    """Publish the store at ``src`` (a path or URL) to ``url``, verified and resumable.

    A local destination (a path or ``file://``) goes through the destination policy
    (:func:`_copy_to`); a remote one is updated object by object, manifest last.

    Raises:
        StoreNotFoundError: no store at ``src``.
        StoreExistsError: ``url`` holds files that are neither a store nor an unfinished copy;
            a local ``url`` exists (without ``force``, or is not provably a store).
        ConfigError: ``url`` is, lies inside, or contains ``src``.
        UnsupportedURLError: a scheme fsspec does not know, or one refused for safety.
        TransferError: an object failed verification twice, or the source changed mid-way.
    """
    dst = location(url, storage_options)
    with _refusals(dst, "push"):
        return _copy_to(
            location(src, storage_options),
            dst,
            force=force,
            progress=progress,
            workers=workers,
            label="push",
        )


def pull(
    url: str,
    dst: str | os.PathLike[str],
    *,
    storage_options: dict | None = None,
    progress: bool = False,
    workers: int = WORKERS,
    force: bool = False,
) -> TransferSummary:
    """Fetch the store at ``url`` into ``dst`` (a path or URL), verified and resumable.

    A store written at a URL by numbered manifests (``docs/FORMAT.md`` section 15) is
    pulled as its latest complete commit into a new local directory.

    Raises: as :func:`push`.
    """
    src = location(url, storage_options)
    try:
        with _refusals(location(dst, storage_options), "pull"):
            return _copy_to(
                src,
                location(dst, storage_options),
                force=force,
                progress=progress,
                workers=workers,
                label="pull",
            )
    except StoreNotFoundError:  # no rldata.json: a store of numbered manifests, or none
        if src.local or not remote_commit.is_commit_store(src):
            raise
    return _pull_commit(src, location(dst, storage_options), progress=progress, force=force)


def _place(loc: Location) -> str:
    """What the destination policy compares: a local root, or the URL."""
    return str(loc.root) if loc.local else loc.url


def _copy_to(
    src_loc: Location,
    dst_loc: Location,
    *,
    force: bool,
    progress: bool,
    workers: int,
    label: str,
) -> TransferSummary:
    """:func:`copy_store` behind the destination policy.

    A remote destination may not overlap the source and is updated in place (manifest
    last). A local one (:func:`rldata.stores.location.destination.plan_destination`): refused when
    it is, lies inside, or contains the source (real paths, so a symlink or ``file://S/.``
    is the source itself); an existing store that already holds exactly this store (same
    manifest, opens verified) is left as it is; anything else existing is replaced only
    with ``force`` and only if it is provably a store. The copy is built in a staging
    sibling, opened verified, and swapped in, so a kill leaves the old destination or none.
    """
    refuse_overlap(_place(dst_loc), [_place(src_loc)], what=label)
    if not dst_loc.local:
        if not force:
            _refuse_other_remote_store(src_loc, dst_loc, label)
        return copy_store(src_loc, dst_loc, progress=progress, workers=workers, label=label)
    t0 = time.perf_counter()
    root = Path(dst_loc.root)
    if not force and (root / ob.MANIFEST).is_file():
        same = _already_there(src_loc, dst_loc, root, label)
        if same is not None:
            return dataclasses.replace(same, seconds=time.perf_counter() - t0)
    inspect_destination(root, kind="store", sources=[_place(src_loc)], force=force, what=label)
    _Source(src_loc)  # no store at the source: say so before anything is staged
    with plan_destination(
        root, kind="store", sources=[_place(src_loc)], force=force, what=label
    ) as stage:
        summary = copy_store(
            src_loc, location(str(stage)), progress=progress, workers=workers, label=label
        )
        with stores.open(stage, verify="full"):  # every row against its checksum first
            pass
    return dataclasses.replace(summary, destination=redact(dst_loc.url))


def _refuse_other_remote_store(src_loc: Location, dst_loc: Location, label: str) -> None:
    """A published store at a remote destination is replaced only with ``force``: the same
    rule as a local destination. A destination holding this very manifest (a no-op or a
    resumed copy) or no manifest yet (an unfinished copy) is not another store."""
    held = _cat(dst_loc, ob.MANIFEST)
    if held is None or held == _cat(src_loc, ob.MANIFEST):
        return
    raise StoreExistsError(
        f"{label}: {redact(dst_loc.url)} already holds another store; pass --force to replace "
        "it (readers see the old store until the new manifest is published)"
    )


def _already_there(
    src_loc: Location, dst_loc: Location, root: Path, label: str
) -> TransferSummary | None:
    """The summary of a no-op copy when ``root`` already holds exactly the source store."""
    want = _cat(src_loc, ob.MANIFEST)
    if want is None or (root / ob.MANIFEST).read_bytes() != want:
        return None
    try:
        with stores.open(root, verify="full") as held:
            digest = digest_of(held)
    except (CorruptStoreError, StoreNotFoundError) as exc:
        raise StoreExistsError(
            f"{label}: {root} holds a damaged copy of this store ({exc}); pass --force to "
            f"replace it"
        ) from None
    if src_loc.local and _local_digest(src_loc, label) != digest:  # the source's rows too
        return None
    index = ob.read_index((root / ob.INDEX).read_bytes()) if (root / ob.INDEX).is_file() else None
    n = len((index or {}).get("objects") or {})
    return TransferSummary(
        source=redact(src_loc.url),
        destination=redact(dst_loc.url),
        objects=n,
        copied=0,
        skipped=n,
        bytes_copied=0,
        seconds=0.0,
        content_digest=digest,
    )


def _pull_commit(
    src: Location, dst: Location, *, progress: bool, force: bool = False
) -> TransferSummary:
    """Check out the latest complete commit of ``src`` into the local directory ``dst``
    (every object against its SHA-256, then every row against its checksum), swapped into
    place only once verified (the destination policy, as :func:`_copy_to`)."""
    t0 = time.perf_counter()
    if not dst.local:
        raise TransferError(
            f"{redact(src.url)} is written by numbered manifests; pull it to a local path "
            f"(then push that anywhere)"
        )
    root = Path(dst.root)
    inspect_destination(root, kind="store", force=force, what="pull")
    _number, doc = remote_commit.latest(src)
    total = sum(int(e["size"]) for e in doc["objects"].values())
    with plan_destination(root, kind="store", force=force, what="pull") as stage:
        with byte_bar(f"pull {redact(src.url)}", total, enabled=progress) as advance:
            remote_commit.checkout(src, doc, stage)
            advance(total)
        with stores.open(stage, verify="full") as copy:  # every row against its checksum
            digest = digest_of(copy)
    n = len(doc["objects"])
    return TransferSummary(
        source=redact(src.url),
        destination=redact(dst.url),
        objects=n,
        copied=n,
        skipped=0,
        bytes_copied=total,
        seconds=time.perf_counter() - t0,
        content_digest=digest,
    )


# --- the source ----------------------------------------------------------------------------


class _Source:
    """A consistent view of a source store: its manifest bytes, its objects, known hashes."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        if loc.local:
            self.manifest_bytes, index_bytes = _cat(loc, ob.MANIFEST), None
        else:  # two round trips at once; a mismatch between them is caught below
            with ThreadPoolExecutor(max_workers=2) as pool:
                got = list(pool.map(lambda rel: _cat(loc, rel), (ob.MANIFEST, ob.INDEX)))
            self.manifest_bytes, index_bytes = got
        if self.manifest_bytes is None:
            raise StoreNotFoundError(
                f"no rldata store at {redact(loc.url)} (missing {ob.MANIFEST})"
            )
        ob.parse_manifest(self.manifest_bytes, redact(loc.url))
        self.sha: dict[str, str] = {}
        self.digest: str | None = None
        index = ob.read_index(index_bytes)
        if index is not None and index.get("complete"):
            self._from_index(index)
        else:
            self._from_listing()

    def _from_index(self, index: dict[str, Any]) -> None:
        where = redact(self.loc.url)
        objs = ob.index_entries(index, where)
        want = objs[ob.MANIFEST][1] if ob.MANIFEST in objs else None
        if want != _sha(self.manifest_bytes or b""):
            raise TransferError(
                f"{where}: its manifest does not match its object index (a push is under way?); "
                "retry when it has finished"
            )
        self.objects = {k: size for k, (size, _sha256) in objs.items()}
        self.sha = {k: sha for k, (_size, sha) in objs.items()}
        declared = index.get("content_digest")
        self.digest = declared if isinstance(declared, str) else None

    def _from_listing(self) -> None:
        sizes = _listing(self.loc)
        if not sizes:
            raise StoreNotFoundError(f"no rldata store at {redact(self.loc.url)}")
        manifests, _ = ob.manifests_in(
            [r for r in sizes if r != ob.MANIFEST],
            self.read_whole,
            redact(self.loc.url),
        )
        manifests[""] = ob.parse_manifest(self.manifest_bytes or b"", redact(self.loc.url))
        self.objects = ob.plan(sizes, manifests)
        self.objects[ob.MANIFEST] = len(self.manifest_bytes or b"")

    def read_whole(self, rel: str) -> bytes:
        """A manifest found in a listing (bounded by :data:`MAX_META_BYTES`)."""
        data = _cat(self.loc, rel)
        if data is None:
            raise TransferError(f"{redact(self.loc.url)}: object {rel} vanished during the copy")
        return data

    def read(self, rel: str) -> bytes:
        """The object's bytes (a memmap payload file up to its stored rows), read in chunks
        and never past its declared size: an object holding more fails on the first byte past
        it, one listed by an index but missing fails at once."""
        if rel == ob.MANIFEST:
            return self.manifest_bytes or b""
        size = self.objects[rel]
        where = f"{redact(self.loc.url)}/{rel}"
        if self.loc.local:
            path = str(contained_name(self.loc.root, rel, redact(self.loc.url)))
        else:
            path = self.loc.path(check_name(rel, redact(self.loc.url)))
        # an object the index names must hold exactly its size; one planned from a listing
        # is cut at its stored rows (a memmap payload's sparse tail is not data)
        data = read_capped(self.loc.fs, path, size, where=where, exact=rel in self.sha)
        if data is None:
            named = "its object index names it" if rel in self.sha else "it vanished mid-copy"
            raise TransferError(f"{where}: object is missing ({named})")
        if len(data) != size:
            raise TransferError(
                f"{redact(self.loc.url)}: object {rel} holds {len(data)} bytes, expected {size}"
            )
        return data

    def chunks(self, rel: str) -> Iterator[bytes]:
        """:meth:`read` one chunk at a time (memory: a chunk, whatever the object's size)."""
        size = self.objects[rel]
        where = f"{redact(self.loc.url)}/{rel}"
        if self.loc.local:
            path = str(contained_name(self.loc.root, rel, redact(self.loc.url)))
        else:
            path = self.loc.path(check_name(rel, redact(self.loc.url)))
        got = 0
        try:
            for block in read_chunks(self.loc.fs, path, size, where=where, exact=rel in self.sha):
                got += len(block)
                yield block
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            named = "its object index names it" if rel in self.sha else "it vanished mid-copy"
            raise TransferError(f"{where}: object is missing ({named})") from None
        if got != size:
            raise TransferError(
                f"{redact(self.loc.url)}: object {rel} holds {got} bytes, expected {size}"
            )


def _cat(loc: Location, rel: str) -> bytes | None:
    """A manifest or object index (None when absent), read in chunks up to
    :data:`MAX_META_BYTES`.

    Raises:
        TransferError: it is larger, or the file system refused the read.
    """
    where = f"{redact(loc.url)}/{rel}"
    try:
        data = read_capped(loc.fs, loc.path(rel), MAX_META_BYTES + 1, where=where, exact=False)
    except RldataError:
        raise
    except OSError as exc:
        raise TransferError(f"{where}: cannot read ({_reason(exc)})") from None
    if data is not None and len(data) > MAX_META_BYTES:
        raise TransferError(f"{where}: larger than {MAX_META_BYTES} bytes; refused")
    return data


def _reason(exc: BaseException) -> str:
    """An OS error in a few words: its errno's text (no path: messages name their own)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _listing(loc: Location) -> dict[str, int]:
    return {rel: int(info.get("size") or 0) for rel, info in _infos(loc).items()}


def _infos(loc: Location) -> dict[str, dict[str, Any]]:
    """Relative path -> fsspec info of every file under the location (empty if none)."""
    try:
        found = loc.fs.find(loc.root, detail=True)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise TransferError(f"{redact(loc.url)}: cannot list ({_reason(exc)})") from None
    prefix = loc.fs._strip_protocol(loc.root).rstrip("/") + "/"
    out = {}
    for path, info in found.items():
        full = loc.fs._strip_protocol(str(path))
        if info.get("type") == "file" and full.startswith(prefix):
            # a listing is untrusted input: every name passes the one check (no "..", ...)
            out[check_name(full[len(prefix) :], redact(loc.url))] = info
    return out


def _sha(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha_of(blocks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for block in blocks:
        h.update(block)
    return h.hexdigest()


def _check_declared(loc: Location, rel: str, sha: str, want: str | None) -> None:
    """A source object whose bytes are not the ones its object index declares is refused."""
    if want is not None and want != sha:
        raise TransferError(
            f"{redact(loc.url)}/{rel}: sha256 {sha[:12]}… differs from its object index "
            f"({want[:12]}…)"
        )


def _fingerprint(info: dict[str, Any] | None) -> str | None:
    """What changes whenever a remote object is rewritten: ETag, else mtime or creation time."""
    if info is None:
        return None
    for key in ("ETag", "etag", "md5Hash", "mtime", "created", "LastModified"):
        value = info.get(key)
        if value is not None:
            stamp = value.timestamp() if hasattr(value, "timestamp") else value
            return f"{info.get('size')}:{stamp}"
    return None


# --- the destination -------------------------------------------------------------------------


class _Dest:
    """The destination: its journal (object index), what it holds, and how to write there."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.infos = _infos(loc)
        journal = ob.read_index(_cat(loc, ob.INDEX)) if ob.INDEX in self.infos else None
        if any(rel.startswith(f"{remote_commit.COMMITS}/") for rel in self.infos):
            raise StoreExistsError(
                f"{redact(loc.url)} holds a store written by numbered manifests (docs/FORMAT.md "
                "section 15), which a push does not replace; pick a new destination"
            )
        if self.infos and journal is None and ob.MANIFEST not in self.infos:
            raise StoreExistsError(
                f"{redact(loc.url)} holds files that are not an rldata store; pick a new destination"
            )
        self.entries: dict[str, dict[str, Any]] = dict((journal or {}).get("objects") or {})
        self.published = ob.MANIFEST in self.infos
        self.complete = bool((journal or {}).get("complete"))
        self.digest: str | None = (journal or {}).get("content_digest") if self.complete else None
        self._lock = threading.Lock()
        self._dirty = False
        self._last_journal = 0.0

    def holds(self, rel: str, size: int, sha: str) -> bool:
        """Whether the destination already holds this exact object."""
        info = self.infos.get(rel)
        if info is None or int(info.get("size") or 0) != size:
            return False
        if self.loc.local:
            try:
                with open(self.loc.path(rel), "rb") as f:
                    return _sha_of(iter(lambda: f.read(CHUNK), b"")) == sha
            except OSError:
                return False
        entry = self.entries.get(rel) or {}
        return entry.get("sha256") == sha and entry.get("fp") == _fingerprint(info)

    def unpublish(self) -> None:
        """Remove the destination's manifest before its first object changes (once)."""
        with self._lock:
            if self.published:
                with _writing(self.loc, ob.MANIFEST, "remove"):
                    self.loc.fs.rm_file(self.loc.path(ob.MANIFEST))
                self.published = False
                self.complete = False
                self._dirty = True

    def write(self, rel: str, data: bytes, sha: str) -> dict[str, Any]:
        """Write one object (``sha``: its SHA-256) and verify it; return its index entry.

        Raises:
            TransferError: the file system refused the write (no such bucket, no space left,
                read-only, name too long, a file where a directory goes), in one line.
        """
        with _writing(self.loc, rel, "write"):
            return self._write(rel, data, sha)

    def _write(self, rel: str, data: bytes, sha: str) -> dict[str, Any]:
        if self.loc.local:
            path = str(contained_name(self.loc.root, rel, redact(self.loc.url)))
        else:
            path = self.loc.path(check_name(rel, redact(self.loc.url)))
        if self.loc.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = os.path.join(
                os.path.dirname(path),
                f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            )
            try:
                with open(tmp, "wb") as f:  # ``sha`` hashed these very bytes: no read-back
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return {"size": len(data), "sha256": sha}
        for attempt in (0, 1):
            out = self.loc.fs.pipe_file(path, data)
            # S3 answers a single-part PUT with the object's ETag: no extra HEAD request
            etag = out.get("ETag") if isinstance(out, dict) else None
            info = {"size": len(data), "ETag": etag} if etag else self.loc.fs.info(path)
            if self._verified(rel, data, sha, info):
                return {"size": len(data), "sha256": sha, "fp": _fingerprint(info)}
            if attempt:
                raise TransferError(
                    f"{redact(self.loc.url)}/{rel}: the stored object differs from the source "
                    "after two uploads (checksum mismatch)"
                )
        raise AssertionError("unreachable")

    def _verified(self, rel: str, data: bytes, sha: str, info: dict[str, Any]) -> bool:
        if _size(info) != len(data):  # an empty object has size 0, not None
            return False
        if self.loc.s3 and _s3_etag(data) == str(info.get("ETag", "")).strip('"'):
            return True  # the server's MD5 of the bytes it received
        return self._sha_stored(rel) == sha

    def _sha_stored(self, rel: str) -> str:
        """SHA-256 of the stored object, read back a chunk at a time."""
        with self.loc.fs.open(self.loc.path(rel), "rb", block_size=CHUNK) as f:
            return _sha_of(iter(lambda: f.read(CHUNK), b""))

    def write_stream(
        self, rel: str, chunks: Callable[[], Iterator[bytes]], size: int, want: str | None
    ) -> tuple[dict[str, Any], str]:
        """:meth:`write` for an object streamed from ``chunks()`` (memory: a chunk), hashed as
        it is written; returns its index entry and SHA-256. ``want``: the hash the source's
        index declares (a different one fails before a local object takes its place)."""
        with _writing(self.loc, rel, "write"):
            if self.loc.local:
                return self._write_local_stream(rel, chunks(), want)
            for attempt in (0, 1):
                sha, etags = self._put_stream(rel, chunks(), want)
                info = self.loc.fs.info(self.loc.path(rel))
                same = _size(info) == size and (
                    self.loc.s3
                    and str(info.get("ETag", "")).strip('"') in etags
                    or self._sha_stored(rel) == sha
                )
                if same:
                    return {"size": size, "sha256": sha, "fp": _fingerprint(info)}, sha
                if attempt:
                    raise TransferError(
                        f"{redact(self.loc.url)}/{rel}: the stored object differs from the "
                        "source after two uploads (checksum mismatch)"
                    )
        raise AssertionError("unreachable")

    def _write_local_stream(
        self, rel: str, chunks: Iterator[bytes], want: str | None
    ) -> tuple[dict[str, Any], str]:
        path = str(contained_name(self.loc.root, rel, redact(self.loc.url)))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(
            os.path.dirname(path),
            f".{os.path.basename(path)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        )
        h, n = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as f:  # hashed as written: no read-back
                for block in chunks:
                    h.update(block)
                    f.write(block)
                    n += len(block)
            sha = h.hexdigest()
            _check_declared(self.loc, rel, sha, want)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return {"size": n, "sha256": sha}, sha

    def _put_stream(
        self, rel: str, chunks: Iterator[bytes], want: str | None
    ) -> tuple[str, set[str]]:
        """Upload the chunks; their SHA-256 and the ETags S3 may give them (one PUT: the MD5;
        s3fs's multipart upload in parts of ``_S3_PART`` bytes: the MD5 of the parts' MD5s)."""
        h, whole = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        parts: list[bytes] = []
        part, in_part = hashlib.md5(usedforsecurity=False), 0
        path = self.loc.path(check_name(rel, redact(self.loc.url)))
        with self.loc.fs.open(path, "wb", block_size=_S3_PART) as f:
            for block in chunks:
                h.update(block)
                whole.update(block)
                f.write(block)
                view = memoryview(block)
                while len(view):
                    take = min(len(view), _S3_PART - in_part)
                    part.update(view[:take])
                    in_part += take
                    view = view[take:]
                    if in_part == _S3_PART:
                        parts.append(part.digest())
                        part, in_part = hashlib.md5(usedforsecurity=False), 0
        if in_part:
            parts.append(part.digest())
        sha = h.hexdigest()
        _check_declared(self.loc, rel, sha, want)
        joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
        return sha, {whole.hexdigest(), f"{joined}-{len(parts)}"}

    def record(self, rel: str, entry: dict[str, Any], *, force: bool = False) -> None:
        """Note a verified object; rewrite the journal at most every half second."""
        with self._lock:
            self.entries[rel] = entry
            self._dirty = True
        if force or time.monotonic() - self._last_journal > _JOURNAL_EVERY_S:
            self.flush(complete=False, digest=None)

    def flush(self, *, complete: bool, digest: str | None) -> None:
        with self._lock:
            if not self._dirty and not complete:
                return
            data = ob.new_index(self.entries, complete=complete, digest=digest)
            self._dirty = False
            self._last_journal = time.monotonic()
        path = self.loc.path(ob.INDEX)
        with _writing(self.loc, ob.INDEX, "write"):
            if self.loc.local:
                os.makedirs(self.loc.root, exist_ok=True)
                tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            else:
                self.loc.fs.pipe_file(path, data)


@contextlib.contextmanager
def _refusals(dst: Location, label: str) -> Iterator[None]:
    """Any refusal of the file system left unnamed below (a destination whose name is too
    long, a file where a folder goes, ...) as one line naming the destination."""
    try:
        yield
    except (RldataError, ConnectionError, TimeoutError):  # transient: a rerun resumes
        raise
    except OSError as exc:
        raise TransferError(f"{label} {redact(dst.url)}: {_reason(exc)}") from None


@contextlib.contextmanager
def _writing(loc: Location, rel: str, verb: str) -> Iterator[None]:
    """Turn a file system's refusal to write into one line naming the object and the reason."""
    try:
        yield
    except (RldataError, ConnectionError, TimeoutError):  # transient: a rerun resumes
        raise
    except OSError as exc:
        raise TransferError(f"{redact(loc.url)}: cannot {verb} {rel} ({_reason(exc)})") from None


def _s3_etag(data: bytes) -> str:
    """The ETag S3 gives ``data`` uploaded by s3fs: its MD5, or the multipart MD5 of part MD5s."""
    if len(data) < 2 * _S3_PART:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    view = memoryview(data)
    parts = [
        hashlib.md5(view[i : i + _S3_PART], usedforsecurity=False).digest()
        for i in range(0, len(data), _S3_PART)
    ]
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


# --- the copy ---------------------------------------------------------------------------------


def copy_store(
    src_loc: Location,
    dst_loc: Location,
    *,
    progress: bool = False,
    workers: int = WORKERS,
    label: str = "copy",
) -> TransferSummary:
    """Copy the store at ``src_loc`` to ``dst_loc`` (see the module docstring for the steps)."""
    t0 = time.perf_counter()
    if src_loc.url == dst_loc.url or (
        src_loc.fs.protocol == dst_loc.fs.protocol and src_loc.root == dst_loc.root
    ):
        raise StoreExistsError(f"{redact(dst_loc.url)}: source and destination are the same store")
    src = _Source(src_loc)
    dst = _Dest(dst_loc)
    copied = [0, 0]  # objects, bytes
    lock = threading.Lock()
    streams = threading.BoundedSemaphore(STREAMS)
    held = _Budget(HELD_BYTES)
    digest: list[_Background] = []  # started with the first write: a no-op push hashes nothing

    def start_digest() -> None:
        with lock:
            if not digest and src.digest is None:
                digest.append(_Background(_local_digest, src_loc, label))

    payload = sorted((r for r in src.objects if not ob.is_final(r)), key=lambda r: -src.objects[r])
    finals = sorted(
        (r for r in src.objects if ob.is_final(r) and r != ob.MANIFEST),
        key=lambda r: (-r.count("/"), r),
    )

    def one(rel: str, data: bytes | None = None) -> int:
        if data is None and src.objects[rel] > STREAM_BYTES:
            return streamed(rel)
        if data is None:  # the workers hold HELD_BYTES at most, whatever the window
            with held.hold(src.objects[rel]):
                return whole(rel, src.read(rel))
        return whole(rel, data)

    def whole(rel: str, data: bytes) -> int:
        """:func:`one` for an object read whole."""
        sha = _sha(data)
        want = src.sha.get(rel)
        if want is not None and want != sha:
            raise TransferError(
                f"{redact(src_loc.url)}/{rel}: sha256 {sha[:12]}… differs from its object index "
                f"({want[:12]}…)"
            )
        if dst.holds(rel, len(data), sha):
            dst.entries.setdefault(rel, {"size": len(data), "sha256": sha})
            return len(data)
        start_digest()
        if dst.published and digest:  # a published copy is replaced only by a sound store
            digest[0].result()
        dst.unpublish()
        entry = dst.write(rel, data, sha)
        dst.record(rel, entry)
        with lock:
            copied[0] += 1
            copied[1] += len(data)
        return len(data)

    def streamed(rel: str) -> int:
        """:func:`one` for a large object: read, hashed and written a chunk at a time."""
        with streams:
            return _streamed(rel)

    def _streamed(rel: str) -> int:
        size, want = src.objects[rel], src.sha.get(rel)
        if (dst.infos.get(rel) or {}).get("size") is not None and int(
            dst.infos[rel].get("size") or 0
        ) == size:  # it may be there already: hash the source first (one more read)
            sha = _sha_of(src.chunks(rel))
            _check_declared(src_loc, rel, sha, want)
            if dst.holds(rel, size, sha):
                dst.entries.setdefault(rel, {"size": size, "sha256": sha})
                return size
            want = sha
        start_digest()
        if dst.published and digest:
            digest[0].result()
        dst.unpublish()
        entry, _sha_written = dst.write_stream(rel, lambda: src.chunks(rel), size, want)
        dst.record(rel, entry)
        with lock:
            copied[0] += 1
            copied[1] += size
        return size

    total = sum(src.objects.values())
    with byte_bar(f"{label} {redact(dst_loc.url)}", total, enabled=progress) as advance:
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                # episode indexes are read alongside the payload, written after it
                early = {r: pool.submit(src.read, r) for r in finals}
                todo = []
                for r in payload:
                    if r in src.sha and dst.holds(r, src.objects[r], src.sha[r]):
                        # a remote source's index names the hash: nothing to download
                        dst.entries.setdefault(r, {"size": src.objects[r], "sha256": src.sha[r]})
                        advance(src.objects[r])
                    else:
                        todo.append(r)
                # one object a job, largest first: each is hashed and written as soon as it
                # arrives, while the others download (a batch would wait for its slowest);
                # the first failure (a missing object, ...) ends the copy
                for done in each_in_turn(pool, one, todo, 2 * max(1, workers)):
                    advance(done)
            for rel in finals:
                advance(one(rel, early[rel].result()))
        except BaseException:  # what landed verified is skipped by a rerun
            for job in digest:  # a daemon thread still in torch at exit aborts the process
                job.wait()
            dst.flush(complete=False, digest=None)
            raise
        manifest_data = src.read(ob.MANIFEST)
        result_digest = dst.digest
        if not (dst.published and _cat(dst_loc, ob.MANIFEST) == manifest_data):
            dst.unpublish()
            dst.entries[ob.MANIFEST] = {
                "size": len(manifest_data),
                "sha256": _sha(manifest_data),
            }
            start_digest()
            declared = digest[0].result() if digest else src.digest
            dst.flush(complete=True, digest=declared)
            result_digest = declared
            dst.write(ob.MANIFEST, manifest_data, _sha(manifest_data))
            dst.published = True
            copied[0] += 1
            copied[1] += len(manifest_data)
            if dst_loc.local:  # the copy's rows, each against its checksum, and its digest
                result_digest = _checked_copy(src_loc, dst, declared, label)
        advance(len(manifest_data))
    return TransferSummary(
        source=redact(src_loc.url),
        destination=redact(dst_loc.url),
        objects=len(src.objects),
        copied=copied[0],
        skipped=len(src.objects) - copied[0],
        bytes_copied=copied[1],
        seconds=time.perf_counter() - t0,
        content_digest=result_digest,
    )


class _Budget:
    """Bytes the copy's workers may hold at once: a worker waits until its object fits (one
    larger than the whole budget waits for all others), so memory does not follow the
    number of objects in flight."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._free = limit
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[None]:
        n = min(n, self._limit)
        with self._cond:
            self._cond.wait_for(lambda: self._free >= n)
            self._free -= n
        try:
            yield
        finally:
            with self._cond:
                self._free += n
                self._cond.notify_all()


class _Background:
    """Run ``fn(*args)`` in a daemon thread (hashing releases the GIL: it overlaps the copy)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, args: tuple) -> None:
        try:
            self._out.append(fn(*args))
        except BaseException as exc:  # re-raised in the caller by result()
            self._err.append(exc)

    def wait(self) -> None:
        """Let the job finish, keeping its outcome unread (the caller is failing already)."""
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def _local_digest(loc: Location, label: str = "copy", name: str | None = None) -> str | None:
    """The content digest of a local store, every row checked against its checksum by the
    verified open (None for a remote source without an index).

    Raises:
        TransferError: a committed row fails its checksum; the message names the store as
            ``name`` (default: its location).
    """
    if not loc.local:
        return None
    try:
        with stores.open(loc.root, verify="full") as store:  # every row's checksum
            return digest_of(store)
    except CorruptStoreError as exc:
        raise TransferError(
            f"{label} {name or redact(loc.url)}: the store fails verification ({exc})"
        ) from None


def _checked_copy(src: Location, dst: _Dest, declared: str | None, label: str) -> str | None:
    """The digest of the local copy just published at ``dst``, read through the verified open;
    a copy that fails (a damaged row, a digest other than the one the source declared) is
    unpublished again and the transfer fails naming the source.

    Raises:
        TransferError: a row fails its checksum, or the digest differs from ``declared``.
    """
    try:
        digest = _local_digest(dst.loc, label, redact(src.url))
        if declared is not None and digest != declared:
            raise TransferError(
                f"{label} {redact(src.url)}: the copy's content digest {digest} differs from "
                f"the {declared[:80]!r} its object index declares"
            )
    except BaseException:
        dst.unpublish()
        dst.flush(complete=False, digest=None)
        raise
    dst.flush(complete=True, digest=digest)
    return digest


def _size(info: dict[str, Any]) -> int:
    """An object's size from a file system's ``info`` (-1 when it gives none)."""
    size = info.get("size")
    return -1 if size is None else int(size)
