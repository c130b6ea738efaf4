"""What a store is made of, as objects: which files travel, how many bytes of each, and the index.

A store is its manifest (``rldata.json``) plus the files it names. Travelling are all files
under the store's root except the writer lock, unfinished temporary files, episode indexes
that no manifest names, and this module's own index. A ``memmap`` payload file travels
only up to its stored rows (``docs/FORMAT.md`` section 4: the sparse tail is not data), so
a million-row store does not ship its preallocated zeros.

The object index ``rldata.objects.json`` (written beside the manifest by a push or pull)
lists every object with its size and SHA-256, the store's content digest, and whether the
copy is complete. During a transfer it is the journal that lets a rerun skip what landed.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from collections.abc import Callable
from typing import Any

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError
from rldata.stores.location.remote_names import check_name

MANIFEST = "rldata.json"
INDEX = "rldata.objects.json"
LOCK = "rldata.lock"
INDEX_FORMAT = "rldata-objects"
INDEX_VERSION = 1
_SHA = re.compile(r"[0-9a-f]{64}")
_POS_BYTES = 8  # a stored-once record's int64 position, before its row
_ITEMSIZE = {
    "bool": 1,
    "uint8": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}


def is_final(rel: str) -> bool:
    """Objects that land after the payload: manifests and episode indexes."""
    name = posixpath.basename(rel)
    return name == MANIFEST or (name.startswith("episodes-") and name.endswith(".json"))


def _skipped(name: str) -> bool:
    return name in (LOCK, INDEX) or ".tmp-" in name


def parse_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest's JSON object (untrusted input: only shape-checked here)."""
    m = untrusted.loads_json(data, where, "manifest", error=CorruptStoreError)
    if not isinstance(m, dict) or m.get("format") != "rldata":
        raise CorruptStoreError(f"{where}: not an rldata manifest")
    return m


def plan(sizes: dict[str, int], manifests: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Objects to copy (``rel -> bytes``) from a listing and the manifests found in it.

    Args:
        sizes: every file under the root, ``/``-separated relative path -> size.
        manifests: directory (``""`` for the root) -> its parsed ``rldata.json``.
    """
    named = {
        posixpath.join(d, str((m.get("episodes") or {}).get("path", "")))
        for d, m in manifests.items()
    }
    extents: dict[str, int] = {}
    for rel, size in sizes.items():
        name = posixpath.basename(rel)
        if _skipped(name):
            continue
        if name.startswith("episodes-") and name.endswith(".json") and rel not in named:
            continue  # an older episode index no manifest names
        extents[rel] = size
    for d, m in manifests.items():
        extents.update(_memmap_extents(d, m, extents))
    return extents


def _memmap_extents(d: str, m: dict[str, Any], extents: dict[str, int]) -> dict[str, int]:
    """The stored bytes of each memmap payload file named by the manifest in directory ``d``."""
    if m.get("backend") != "memmap" or not m.get("schema"):
        return {}
    written, cap = int(m.get("written", 0)), m.get("capacity")
    filled = written if cap is None else min(written, int(cap))
    payload = m.get("payload") or {}
    files = payload.get("files") or {}
    once = set(payload.get("next_stored_once") or [])  # format 1.2: (position, row) records
    counts = payload.get("next_once_rows") or {}
    out = {}
    for key, rel in files.items():
        entry = m["schema"].get(key)
        full = posixpath.normpath(posixpath.join(d, str(rel)))
        if entry is None or full not in extents:
            continue
        width = math.prod(int(s) for s in entry["shape"]) * _ITEMSIZE.get(entry["dtype"], 0)
        k = key[len("next.") :] if key.startswith("next.") else None
        if k in once:
            out[full] = int(counts.get(k, 0)) * (_POS_BYTES + width)
        else:
            out[full] = filled * width
    return out


def manifests_in(
    rels: list[str], read: Callable[[str], bytes], where: str
) -> tuple[dict[str, dict[str, Any]], bytes]:
    """Parsed manifests of every directory holding one, and the root manifest's bytes."""
    found: dict[str, dict[str, Any]] = {}
    root_bytes = b""
    for rel in sorted(rels, key=lambda r: r.count("/")):
        if posixpath.basename(rel) != MANIFEST:
            continue
        data = read(rel)
        found[posixpath.dirname(rel)] = parse_manifest(data, f"{where}/{rel}")
        if rel == MANIFEST:
            root_bytes = data
    return found, root_bytes


def new_index(objects: dict[str, dict[str, Any]], *, complete: bool, digest: str | None) -> bytes:
    """The bytes of an object index."""
    doc = {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "complete": complete,
        "content_digest": digest,
        "objects": {k: objects[k] for k in sorted(objects)},
    }
    return json.dumps(doc, indent=0, sort_keys=True).encode()


def read_index(data: bytes | None) -> dict[str, Any] | None:
    """A parsed object index, or None when absent or unreadable (a torn journal is no journal)."""
    if data is None:
        return None
    try:
        doc = untrusted.loads_json(data, "object index", "object index")
    except untrusted.UntrustedFileError:
        return None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        return None
    if not isinstance(doc.get("objects"), dict):
        return None
    return doc


def safe_rel(rel: Any, where: str) -> str:
    """``rel`` if it is a plain relative object name inside a store (an index is untrusted
    input): :func:`rldata.stores.location.remote_names.check_name`, the one check every remote name passes.

    Raises:
        CorruptStoreError: an absolute name, a ``..`` segment, a control character, ...
    """
    return check_name(rel, where)


def index_entries(index: dict[str, Any], where: str) -> dict[str, tuple[int, str]]:
    """``rel -> (size, sha256)`` of every object an index lists, each name and entry checked.

    Raises:
        CorruptStoreError: a name fails :func:`safe_rel`, or an entry is not
            ``{size: int >= 0, sha256: 64 hex}``.
    """
    out = {}
    for rel, entry in index["objects"].items():
        safe_rel(rel, where)
        size = entry.get("size") if isinstance(entry, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not isinstance(sha, str)
            or _SHA.fullmatch(sha) is None
        ):
            raise CorruptStoreError(
                f"{where}: index entry {rel!r}: expected {{size: int >= 0, sha256: 64 hex}}, "
                f"got {str(entry)[:80]}"
            )
        out[rel] = (size, sha)
    return out


def served_digest(entries: dict[str, tuple[int, str]]) -> str:
    """A digest of everything a copy serves: every object's name, size and SHA-256, the
    manifest included (a store's content digest covers only its schema and rows)."""
    h = hashlib.sha256()
    for rel in sorted(entries):
        size, sha = entries[rel]
        h.update(f"{rel}\0{size}\0{sha}\n".encode())
    return h.hexdigest()
