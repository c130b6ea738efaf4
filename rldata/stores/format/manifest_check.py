"""Check an untrusted manifest before anything acts on it.

A store may come from another team, a bucket or a disk that flipped a bit, so every field
a reader or a resuming writer relies on is checked here, once, when the manifest is read:
types, ranges (``length <= written``, positive capacity and chunk sizes, non-negative
shapes, known dtypes), names that become paths, and that every schema key has its
checksum list (since 1.6: that the chunk sidecar's counts agree with ``written``).
Payload paths are checked against the directory by the backend that owns them
(:func:`rldata.stores.format.files.inside`). Each failure is one line naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from rldata.errors import CorruptStoreError
from rldata.stores.format import blocksums, chunklog
from rldata.stores.format.schema import STORABLE_DTYPES

HEX64 = re.compile(r"^[0-9a-f]{64}$")
VERSION = re.compile(r"^\d{1,4}\.\d{1,4}\.\d{1,4}$")
CHUNK_LOGS = ("memmap", "parquet")
"""Backends whose append-only stores may keep their chunk checksums in the sidecar (memmap
since 1.6.0, parquet since the commit that appends to it: ``rldata.stores.format.chunklog``)."""
EPISODE_FILE = re.compile(r"^episodes-\d{8,}\.json$")
EPISODE_LOG = "episodes.log"  # rldata.stores.format.episodes.LOG
STATS_FILE = re.compile(r"^stats-\d{8,}\.json$")
STATS_LOG = "stats.log"  # rldata.stores.format.stats.LOG
SHARD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
KEY_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+=,:@%-]{0,127}$")
MAX_ROWS = 1 << 48  # positions beyond this are a corrupted number, not a dataset
MAX_ROW_ELEMENTS = 1 << 31
DTYPES = frozenset(STORABLE_DTYPES)


class _Checker:
    def __init__(self, where: object, prefix: str = "") -> None:
        self.where = where
        self.prefix = prefix

    def fail(self, field: str, expected: str, got: Any) -> CorruptStoreError:
        shown = repr(got)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return CorruptStoreError(
            f"{self.where}: manifest field {self.prefix + field!r}: expected {expected}, got {shown}"
        )

    def int_(self, m: dict, field: str, lo: int, hi: int = MAX_ROWS, *, none: bool = False) -> Any:
        value = m.get(field, ...)
        if value is None and none:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            span = f"an integer in [{lo}, {hi}]" + (" or null" if none else "")
            raise self.fail(field, span, None if value is ... else value)
        return value

    def typed(
        self, m: dict, field: str, kind: type | tuple, name: str, *, none: bool = False
    ) -> Any:
        value = m.get(field, ...)
        if value is None and none:
            return None
        if (
            value is ...
            or isinstance(value, bool)
            and kind is not bool
            or not isinstance(value, kind)
        ):
            raise self.fail(
                field, name + (" or null" if none else ""), None if value is ... else value
            )
        return value


def check(m: dict[str, Any], where: object) -> None:
    """Raise :class:`CorruptStoreError` naming the first field of ``m`` that cannot be trusted."""
    c = _Checker(where)
    version = c.typed(m, "format_version", str, "a 'MAJOR.MINOR.PATCH' string")
    if not VERSION.match(version):
        raise c.fail("format_version", "a 'MAJOR.MINOR.PATCH' string", version)
    c.typed(m, "backend", str, "a backend name")
    c.int_(m, "generation", 0)
    cap = c.int_(m, "capacity", 1, none=True)
    written = c.int_(m, "written", 0)
    length = c.int_(m, "length", 0, written)
    if cap is not None and length > cap:
        raise c.fail("length", f"at most capacity={cap}", length)
    cursor = c.int_(m, "cursor", 0)
    want_cursor = written % cap if cap else written
    if cursor != want_cursor:
        raise c.fail("cursor", f"{want_cursor} (written={written}, capacity={cap})", cursor)
    c.int_(m, "max_traj_id", -1, 1 << 62)
    c.int_(m, "commit_every", 1, none=True)
    c.typed(m, "allow_nonfinite", bool, "true or false")
    c.typed(m, "payload", dict, "an object")
    c.typed(m, "provenance", dict, "an object")
    c.typed(m, "specs", dict, "an object", none=True)
    env = c.typed(m, "env", dict, "an object with 'id' and 'kwargs'")
    _Checker(where, "env.").typed(env, "id", str, "a string", none=True)
    _Checker(where, "env.").typed(env, "kwargs", dict, "an object")
    if m["backend"] == "sharded":
        _check_shards(c, m)
        return
    schema = c.typed(m, "schema", dict, "an object of key -> {shape, dtype}", none=True)
    if schema is None:
        if written or length:
            raise c.fail("schema", f"an object (the store lists written={written} rows)", None)
    else:
        _check_schema(c, schema)
    _check_checksums(c, m, schema)
    _check_episodes(c, m, schema)
    _check_stats(c, m)


def _check_stats(c: _Checker, m: dict) -> None:
    if "stats" not in m:  # stores written before statistics were recorded
        return
    listed = m["stats"]
    if isinstance(listed, dict):  # format 1.5: the appended log and its committed bytes
        ok = (
            listed.get("path") == STATS_LOG
            and type(listed.get("bytes")) is int
            and 0 <= listed["bytes"] < MAX_ROWS
            and isinstance(listed.get("sha256"), str)
            and HEX64.match(listed["sha256"])
        )
        if not ok:
            raise c.fail(
                "stats", f"{{path: {STATS_LOG!r}, bytes: int >= 0, sha256: 64 hex}}", listed
            )
        return
    listed = c.typed(m, "stats", list, "a list of statistics files or the log", none=True)
    for ref in listed or []:
        ok = (
            isinstance(ref, dict)
            and isinstance(ref.get("path"), str)
            and STATS_FILE.match(ref["path"])
            and isinstance(ref.get("sha256"), str)
            and HEX64.match(ref["sha256"])
        )
        if not ok:
            raise c.fail("stats", "entries {path: 'stats-NNNNNNNN.json', sha256: 64 hex}", ref)


def _check_schema(c: _Checker, schema: dict) -> None:
    if not schema:
        raise c.fail("schema", "at least one key", schema)
    for name, entry in schema.items():
        parts = name.split(".")
        if not all(KEY_PART.match(p) for p in parts):
            raise c.fail("schema", "dotted key names of letters, digits and _", name)
        if not isinstance(entry, dict):
            raise c.fail(f"schema.{name}", "an object with shape and dtype", entry)
        shape = entry.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise c.fail(f"schema.{name}.shape", "a list of at most 8 non-negative integers", shape)
        numel = 1
        for d in shape:
            numel *= d
        if numel > MAX_ROW_ELEMENTS:
            raise c.fail(
                f"schema.{name}.shape", f"at most {MAX_ROW_ELEMENTS} elements a row", shape
            )
        if entry.get("dtype") not in DTYPES:
            raise c.fail(f"schema.{name}.dtype", f"one of {sorted(DTYPES)}", entry.get("dtype"))


def _check_checksums(c: _Checker, m: dict, schema: dict | None) -> None:
    sums = c.typed(m, "checksums", dict, "an object")
    s = _Checker(c.where, "checksums.")
    if sums.get("algorithm") != "sha256":
        raise c.fail("checksums.algorithm", "'sha256'", sums.get("algorithm"))
    rows = s.int_(sums, "chunk_rows", 1, none=schema is None)
    log = sums.get(chunklog.FIELD)
    chunks = sums.get("chunks")
    if log is not None:  # format 1.6: the full chunks' digests in the appended sidecar
        if m.get("capacity") is not None or schema is None or m["backend"] not in CHUNK_LOGS:
            where = "null but for an append-only memmap or parquet store with rows"
            raise c.fail(f"checksums.{chunklog.FIELD}", where, "an object")
        if chunks != {}:
            raise c.fail("checksums.chunks", f"{{}} beside 'checksums.{chunklog.FIELD}'", chunks)
        chunklog.check_entry(log, c.where, int(m.get("written") or 0), rows, schema)
        _check_blocks(c, m, sums, schema)
        return
    if not isinstance(chunks, dict):
        raise c.fail("checksums.chunks", "an object of key -> chunk list", chunks)
    if schema is None:
        return
    if set(chunks) != set(schema):
        missing = sorted(set(schema) - set(chunks))
        extra = sorted(set(chunks) - set(schema))
        raise c.fail(
            "checksums.chunks", f"one list per schema key (missing {missing}, extra {extra})", None
        )
    _check_blocks(c, m, sums, schema)
    for name, entries in chunks.items():
        if not isinstance(entries, list):
            raise c.fail(f"checksums.chunks.{name}", "a list of [rows, sha256]", entries)
        for e in entries:
            ok = (
                isinstance(e, list)
                and len(e) == 2
                and isinstance(e[0], int)
                and not isinstance(e[0], bool)
                and 0 <= e[0] <= rows
                and isinstance(e[1], str)
                and HEX64.match(e[1])
            )
            if not ok:
                raise c.fail(f"checksums.chunks.{name}", f"[rows in [0, {rows}], 64 hex digits]", e)


def _check_blocks(c: _Checker, m: dict, sums: dict, schema: dict) -> None:
    blocks = sums.get("blocks")
    if blocks is not None:  # append-only memmap (format 1.4) and parquet (1.7) stores
        if m.get("capacity") is not None:
            raise c.fail(
                "checksums.blocks", "null for a ring (it rewrites rows in place)", "an object"
            )
        written = int(m.get("written") or 0)
        blocksums.check_entry(blocks, c.where, written, schema, str(m["backend"]))


def _check_episodes(c: _Checker, m: dict, schema: dict | None) -> None:
    ref = c.typed(m, "episodes", dict, "an object naming the episode index", none=True)
    if ref is None:
        if schema is not None:
            raise c.fail("episodes", "the episode index of the stored rows", None)
        return
    path = ref.get("path")
    if path == EPISODE_LOG:  # format 1.4: appended, the manifest names its committed bytes
        _Checker(c.where, "episodes.").int_(ref, "bytes", 0)
    elif not isinstance(path, str) or not EPISODE_FILE.match(path):
        raise c.fail(
            "episodes.path", f"a file name 'episodes-NNNNNNNN.json' or {EPISODE_LOG!r}", path
        )
    if not isinstance(ref.get("sha256"), str) or not HEX64.match(ref["sha256"]):
        raise c.fail("episodes.sha256", "64 hex digits", ref.get("sha256"))
    _Checker(c.where, "episodes.").int_(ref, "segments", 0)


def _check_shards(c: _Checker, m: dict) -> None:
    shards = c.typed(m, "shards", list, "a list of shard directory names")
    if len(set(map(str, shards))) != len(shards):
        raise c.fail("shards", "distinct names", shards)
    for name in shards:
        if not isinstance(name, str) or not SHARD.match(name) or name in (".", ".."):
            raise c.fail("shards", "plain directory names inside the store", name)
