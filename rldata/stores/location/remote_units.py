"""A remote store's payload as verifiable units, and the reads that fetch them.

A *unit* is a byte range of one key's memmap payload file whose SHA-256 the manifest
records: a block of format 1.4's block digests (``rldata.stores.format.blocksums``), else
a checksum chunk of section 7. :class:`Remote` reads units by byte range (never past the
object's declared size, which it checks at open), and every unit goes through the chunk
cache, which verifies it against the expected digest before it is served or kept.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rldata.errors import CorruptStoreError, TransferError
from rldata.stores.format import schema as sch
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.places import Location, redact
from rldata.stores.location.remote_names import check_name, read_capped

try:  # format 1.4's block digests (rldata.stores.format.blocksums), when this tree has them
    from rldata.stores.format.blocksums import BlockTable
except ImportError:  # pragma: no cover - a tree before 1.4: checksum chunks only
    BlockTable = None  # type: ignore[assignment,misc]

FETCH_THREADS = 64
RANGES_AT_ONCE = 1024  # ranges one cat_ranges call holds in memory at most
MIN_SLOTS = 2  # units a key keeps in memory however small the budget


@dataclass(frozen=True)
class Units:
    """One key's payload file as verifiable units: unit ``c`` is rows
    ``[c * unit_rows, c * unit_rows + rows(c))`` (every unit full but the last, which holds
    ``last_rows``), whose bytes hash to ``digest(c)`` (hex)."""

    key: str
    rel: str
    row_bytes: int
    unit_rows: int
    count: int
    last_rows: int
    digest: Callable[[int], str]

    def rows(self, c: int) -> int:
        return self.last_rows if c == self.count - 1 else self.unit_rows

    def byte_range(self, c: int) -> tuple[int, int]:
        start = c * self.unit_rows * self.row_bytes
        return start, start + self.rows(c) * self.row_bytes


def streamable(m: dict[str, Any]) -> bool:
    """Whether a manifest describes a store :func:`open_stream` serves (else: pull it whole):
    an append-only memmap store with checksum chunks (section 7) or block digests (1.4)."""
    if m.get("backend") != "memmap" or m.get("schema") is None or m.get("capacity") is not None:
        return False
    sums = m.get("checksums") or {}
    return isinstance(sums.get("chunk_rows"), int) and isinstance(sums.get("chunks"), dict)


def block_entry(m: dict[str, Any]) -> dict | None:
    """The manifest's block digests entry (format 1.4), or None (older stores: chunks)."""
    entry = (m.get("checksums") or {}).get("blocks")
    return entry if isinstance(entry, dict) and BlockTable is not None else None


def units_of(m: dict[str, Any], key: str, rel: str, table: Any = None) -> Units:
    """The units of row-indexed ``key``: the blocks of ``table`` (a ``BlockTable``) when the
    store has block digests, else the manifest's checksum chunks.

    Raises:
        CorruptStoreError: the digests do not cover every committed row.
    """
    entry = m["schema"][key]
    filled = int(m["written"])
    if table is not None:
        if key not in table.keys or table.rows != filled:
            raise CorruptStoreError(
                f"manifest field 'checksums.blocks': expected digests of {filled} rows of key "
                f"{key!r}, got {table.rows} rows of {table.keys}"
            )
        b = table.block_rows
        return Units(
            key,
            rel,
            sch.row_bytes(entry),
            b,
            table.blocks,
            filled - (table.blocks - 1) * b if table.blocks else 0,
            lambda c: table.digest(key, c).hex(),
        )
    chunk = int(m["checksums"]["chunk_rows"])
    entries = m["checksums"]["chunks"].get(key) or []
    need = -(-filled // chunk) if filled else 0
    rows = tuple(int(e[0]) for e in entries[:need])
    want = tuple(min(chunk, filled - c * chunk) for c in range(need))
    if rows != want:
        raise CorruptStoreError(
            f"manifest field 'checksums.chunks.{key}': expected chunks of {want[:4]}... rows "
            f"covering {filled} rows, got {rows[:4]}..."
        )
    sha = [str(e[1]) for e in entries[:need]]
    return Units(
        key, rel, sch.row_bytes(entry), chunk, need, want[-1] if need else 0, sha.__getitem__
    )


class Remote:
    """Where a streaming store's bytes come from: ranges of the objects its index lists,
    every one checked against its expected digest through the chunk cache."""

    def __init__(self, loc: Location, objects: dict[str, tuple[int, str]], cache: ChunkCache):
        self.loc = loc
        self.url = redact(loc.url)
        self.objects = objects
        self.cache = cache

    def size(self, rel: str) -> int:
        """The declared size of object ``rel``; a name the index does not list is refused."""
        check_name(rel, self.url)
        if rel not in self.objects:
            raise CorruptStoreError(f"{self.url}: object {rel} is not in its object index")
        return self.objects[rel][0]

    def whole(self, rel: str, sha: str, *, where: str, size: int | None = None) -> bytes:
        """Object ``rel`` read whole (never past its declared size), or its first ``size``
        bytes, verified against ``sha``, cached."""
        declared = self.size(rel)
        exact = size is None
        size = declared if size is None else size
        if size > declared:
            raise CorruptStoreError(f"{where}: expected {size} bytes, declared {declared}")

        def fetch() -> bytes:
            data = read_capped(self.loc.fs, self.loc.path(rel), size, where=where, exact=exact)
            if data is None:
                raise TransferError(f"{where}: object is missing (its object index names it)")
            return data

        return self.cache.get(sha, fetch, where=where)

    def check_sizes(self, rels: list[str]) -> None:
        """Every object of ``rels`` exists and holds exactly its declared size (one metadata
        request each, at once): a remote serving more or fewer bytes is refused at open.

        Raises:
            TransferError: an object is missing, or its size is not the declared one.
        """

        def one(rel: str) -> None:
            where, declared = f"{self.url}/{rel}", self.size(rel)
            try:
                got = int(self.loc.fs.size(self.loc.path(rel)))
            except FileNotFoundError:
                raise TransferError(
                    f"{where}: object is missing (its object index names it)"
                ) from None
            except OSError as exc:
                raise TransferError(f"{where}: cannot read ({exc})") from None
            if got != declared:
                raise TransferError(f"{where}: declared {declared} bytes, holds {got}; refused")

        with ThreadPoolExecutor(min(FETCH_THREADS, max(1, len(rels)))) as pool:
            list(pool.map(one, rels))

    def prefix(self, rel: str, n: int, *, where: str) -> bytes:
        """The first ``n`` bytes of object ``rel`` (the caller checks them)."""
        if n == 0:
            return b""
        data = read_capped(self.loc.fs, self.loc.path(rel), n, where=where, exact=False)
        if data is None or len(data) != n:
            raise TransferError(f"{where}: expected at least {n} bytes")
        return data

    def _where(self, units: Units, c: int) -> str:
        r0 = c * units.unit_rows
        return f"{self.url}: key {units.key!r} rows [{r0}, {r0 + units.rows(c)})"

    def _checked_range(self, units: Units, c: int, data: object) -> bytes:
        """What a range read of unit ``c`` returned, or the one-line error it deserves."""
        where = self._where(units, c)
        a, b = units.byte_range(c)
        if isinstance(data, FileNotFoundError):
            raise TransferError(f"{where}: object {units.rel} is missing")
        if isinstance(data, BaseException):
            raise TransferError(f"{where}: cannot read ({data})")
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != b - a:
            got = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
            raise CorruptStoreError(f"{where}: expected {b - a} bytes, got {got}")
        return bytes(data)

    def unit(self, units: Units, c: int) -> bytes:
        """Unit ``c`` of a key: from the cache, or its byte range downloaded and verified."""
        a, b = units.byte_range(c)

        def fetch() -> bytes:
            try:
                data: object = self.loc.fs.cat_file(self.loc.path(units.rel), start=a, end=b)
            except OSError as exc:
                data = exc
            return self._checked_range(units, c, data)

        return self.cache.get(units.digest(c), fetch, where=self._where(units, c))

    def units(self, wanted: list[tuple[Units, int]]) -> list[bytes]:
        """Several units at once (a batch's misses): one round trip's latency, not one each.
        An asynchronous file system (s3, gcs, ...) reads every missing range in one
        ``cat_ranges`` call on its event loop; others use a pool of threads."""
        if not getattr(self.loc.fs, "async_impl", False) or len(wanted) <= 1:
            if len(wanted) <= 1:
                return [self.unit(u, c) for u, c in wanted]
            with ThreadPoolExecutor(min(FETCH_THREADS, len(wanted))) as pool:
                return list(pool.map(lambda w: self.unit(*w), wanted))
        out = [self.cache.cached(u.digest(c)) for u, c in wanted]
        miss = [i for i, d in enumerate(out) if d is None]
        for g in range(0, len(miss), RANGES_AT_ONCE):
            group = miss[g : g + RANGES_AT_ONCE]
            spans = [wanted[i][0].byte_range(wanted[i][1]) for i in group]
            got = self.loc.fs.cat_ranges(
                [self.loc.path(wanted[i][0].rel) for i in group],
                [a for a, _b in spans],
                [b for _a, b in spans],
                on_error="return",
            )
            for i, data in zip(group, got):
                u, c = wanted[i]
                checked = self._checked_range(u, c, data)
                out[i] = self.cache.add(u.digest(c), checked, where=self._where(u, c))
        return [d for d in out if d is not None]
