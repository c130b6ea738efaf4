"""A remote store's payload as verifiable units, and the reads that fetch them.

A *unit* is a byte range of one key's memmap payload file whose SHA-256 the manifest
records: a block of format 1.4's block digests (``rldata.stores.format.blocksums``), else
a checksum chunk of section 7. :class:`Remote` reads units by byte range (never past the
object's declared size, which it checks at open), and every unit goes through the chunk
cache, which verifies it against the expected digest before it is served or kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rldata.errors import CorruptStoreError, TransferError
from rldata.stores.format import schema as sch
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.places import Location, redact
from rldata.stores.location.remote_names import check_name, read_capped
from rldata.stores.location.unit_runs import Run, table_digests, verify_run
from rldata.stores.location.unit_runs import Units as RunUnits

try:  # format 1.4's block digests (rldata.stores.format.blocksums), when this tree has them
    from rldata.stores.format.blocksums import BlockTable
except ImportError:  # pragma: no cover - a tree before 1.4: checksum chunks only
    BlockTable = None  # type: ignore[assignment,misc]

FETCH_THREADS = 64
RANGES_AT_ONCE = 1024  # ranges one fetch holds in memory at most
BYTES_AT_ONCE = 256 << 20  # bytes one fetch holds in memory at most (a range may be larger)
FETCH_AT_ONCE = 256  # ranged GETs in flight at once on an asynchronous file system
# a key's units this close are read as one range (bytes between; 0: adjacent ones only;
# -1: never). A request costs about what this many bytes cost on the wire; the units a range
# carries between wanted ones are verified and kept (slots, one pack), so they are not read
# again: at 1M rows, 112 GETs for a first batch instead of 2,090, and 1,000 batches read
# 1.07x the store (RESULTS-stream.md)
COALESCE_GAP = 256 << 10
MAX_SPAN = 8 << 20  # the longest coalesced range (bytes)
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
    digests: Callable[[int, int], bytes] | None = None
    """Raw 32-byte digests of units ``[a, b)`` back to back (one slice of the block table
    instead of a look-up a unit); None: :attr:`digest` a unit at a time."""

    def rows(self, c: int) -> int:
        return self.last_rows if c == self.count - 1 else self.unit_rows

    def byte_range(self, c: int) -> tuple[int, int]:
        start = c * self.unit_rows * self.row_bytes
        return start, start + self.rows(c) * self.row_bytes

    def raw_digests(self, a: int, b: int) -> bytes:
        """The expected raw digests of units ``[a, b)``, 32 bytes each, back to back."""
        if self.digests is not None:
            return self.digests(a, b)
        return b"".join(bytes.fromhex(self.digest(c)) for c in range(a, b))


def streamable(m: dict[str, Any]) -> bool:
    """Whether a manifest describes a store :func:`open_stream` serves (else: pull it whole):
    an append-only memmap store with checksum chunks (section 7) or block digests (1.4)."""
    if m.get("backend") != "memmap" or m.get("schema") is None or m.get("capacity") is not None:
        return False
    sums = m.get("checksums") or {}
    return isinstance(sums.get("chunk_rows"), int) and isinstance(sums.get("chunks"), dict)


def sized(m: dict[str, Any]) -> list[str] | None:
    """The objects whose sizes an open checks (payload files, block digests); None when
    the manifest does not list its payload as expected (the open refuses it then)."""
    payload = m.get("payload")
    files = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(files, dict):
        return None
    blocks = block_entry(m)
    return [str(r) for r in files.values()] + ([str(blocks["path"])] if blocks else [])


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
            table_digests(table, key),
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
        self.requests = 0  # ranged reads of units sent (a coalesced range counts once)
        self.fetched = 0  # bytes those reads returned

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

    def block_digests(self, entry: dict) -> bytes:
        """The committed bytes of the block digests' sidecar named by manifest ``entry``
        (the caller checks them against the entry's SHA-256)."""
        rel = str(entry["path"])
        need = int(entry["blocks"]) * len(entry["keys"]) * 32
        if self.size(rel) < need:
            raise CorruptStoreError(
                f"{self.url}/{rel}: object index declares {self.size(rel)} bytes, "
                f"expected at least {need} for {entry['blocks']} blocks"
            )
        return self.prefix(rel, need, where=f"{self.url}/{rel}")

    def prefix(self, rel: str, n: int, *, where: str) -> bytes:
        """The first ``n`` bytes of object ``rel`` (the caller checks them)."""
        if n == 0:
            return b""
        data = read_capped(self.loc.fs, self.loc.path(rel), n, where=where, exact=False)
        if data is None or len(data) != n:
            raise TransferError(f"{where}: expected at least {n} bytes")
        return data

    def _where(self, units: RunUnits, c: int) -> str:
        r0 = c * units.unit_rows
        return f"{self.url}: key {units.key!r} rows [{r0}, {r0 + units.rows(c)})"

    def _checked_range(self, units: Units, c: int, data: object) -> bytes:
        """What a range read of unit ``c`` returned, or the one-line error it deserves."""
        a, b = units.byte_range(c)
        return _range_bytes(data, self._where(units, c), units.rel, b - a)

    def unit(self, units: Units, c: int) -> bytes:
        """Unit ``c`` of a key: from the cache, or its byte range downloaded and verified."""
        a, b = units.byte_range(c)

        def fetch() -> bytes:
            return self._checked_range(units, c, self._fetch([(units.rel, a, b)])[0])

        return self.cache.get(units.digest(c), fetch, where=self._where(units, c))

    def units(self, wanted: list[tuple[Units, int]]) -> list[bytes]:
        """The bytes of each unit of ``wanted`` (see :meth:`fetch_units`)."""
        got = self.fetch_units(wanted)
        return [got[(u.rel, c)] for u, c in wanted]

    def fetch_units(self, wanted: list[tuple[Units, int]]) -> dict[tuple[str, int], bytes]:
        """Several units at once, by ``(rel, unit)``: those of :meth:`fetch_runs`, each
        unit's bytes on its own (every verified unit the requests carried included)."""
        out: dict[tuple[str, int], bytes] = {}
        for run in self.fetch_runs(wanted):
            for c in run.verified():
                out[(run.units.rel, c)] = run.piece(c)
        return out

    def fetch_runs(self, wanted: list[tuple[Units, int]]) -> list[Run]:
        """Several units at once (a batch's) as runs of units: those the cache holds (a run
        of one each), the others in as few requests as their places allow, with every other
        unit those requests carried that verifies. A key's units closer than
        :data:`COALESCE_GAP` bytes are read as one range (at most :data:`MAX_SPAN` bytes),
        and all ranges go out at once (up to :data:`FETCH_AT_ONCE` in flight). Each unit
        inside a range is verified on its own (against its raw digest) before it is served
        or cached; one the batch wants that does not verify is refused, one between wanted
        ones is dropped. A group of ranges is kept as one pack (one file, not one a unit)."""
        shas = {(u.rel, c): u.digest(c) for u, c in wanted}
        held = self.cache.cached_many(list(dict.fromkeys(shas.values())))
        keyed = {(u.rel, c): u for u, c in wanted}
        out = [Run(keyed[k], k[1], k[1] + 1, held[sha]) for k, sha in shas.items() if sha in held]
        miss = list(
            {(u.rel, c): (u, c) for u, c in wanted if shas[(u.rel, c)] not in held}.values()
        )
        spans = coalesce(miss)
        g = 0
        while g < len(spans):
            group: list[Span] = []  # at most RANGES_AT_ONCE ranges, BYTES_AT_ONCE bytes held
            size = 0
            while g < len(spans) and len(group) < RANGES_AT_ONCE:
                a, b = spans[g].request()[1:]
                if group and size + b - a > BYTES_AT_ONCE:
                    break
                group.append(spans[g])
                size += b - a
                g += 1
            got = self._fetch([s.request() for s in group])
            runs = []
            for span, data in zip(group, got):
                whole = self._checked_span(span, data)
                runs.append(
                    Run(
                        span.units,
                        span.first,
                        span.stop,
                        whole,
                        verify_run(span.units, span.first, span.stop, whole),
                    )
                )
            self.cache.add_runs(runs)
            for run, span in zip(runs, group):
                if run.good is None:
                    continue
                for c, _j in span.wanted:  # refused in one line, not cached
                    if not run.good[c - run.first]:
                        self.cache.add(
                            shas[(run.units.rel, c)], run.piece(c), where=self._where(run.units, c)
                        )
            out.extend(runs)
        return out

    def _checked_span(self, span: Span, data: object) -> bytes:
        """A coalesced range's bytes, or the one-line error its first unit deserves."""
        if span.stop - span.first == 1:
            return self._checked_range(span.units, span.first, data)
        a, b = span.request()[1:]
        where = (
            f"{self.url}: key {span.units.key!r} rows [{span.first * span.units.unit_rows}, "
            f"{(span.stop - 1) * span.units.unit_rows + span.units.rows(span.stop - 1)})"
        )
        return _range_bytes(data, where, span.units.rel, b - a)

    def _fetch(self, reqs: list[tuple[str, int, int]]) -> list[object]:
        """The bytes of each ``(rel, start, end)`` range, or the exception (or, from S3, the
        byte count a server answered instead of the range) that stands in for them."""
        self.requests += len(reqs)
        fs = self.loc.fs
        paths = [self.loc.path(rel) for rel, _a, _b in reqs]
        if self.loc.s3:
            got = bounded_s3_ranges(fs, paths, [(a, b) for _r, a, b in reqs])
        elif getattr(fs, "async_impl", False) and len(reqs) > 1:
            got = fs.cat_ranges(
                paths,
                [a for _r, a, _b in reqs],
                [b for _r, _a, b in reqs],
                on_error="return",
                batch_size=FETCH_AT_ONCE,
            )
        else:

            def one(i: int) -> object:
                try:
                    return fs.cat_file(paths[i], start=reqs[i][1], end=reqs[i][2])
                except OSError as exc:
                    return exc

            if len(reqs) == 1:
                got = [one(0)]
            else:
                with ThreadPoolExecutor(min(FETCH_THREADS, len(reqs))) as pool:
                    got = list(pool.map(one, range(len(reqs))))
        self.fetched += sum(len(d) for d in got if isinstance(d, (bytes, bytearray)))
        return list(got)


@dataclass(frozen=True)
class Span:
    """Units ``[first, stop)`` of one key read as one byte range; ``wanted`` pairs each
    requested unit with its place in the request."""

    units: Units
    first: int
    stop: int
    wanted: tuple[tuple[int, int], ...]

    def request(self) -> tuple[str, int, int]:
        return (
            self.units.rel,
            self.units.byte_range(self.first)[0],
            self.units.byte_range(self.stop - 1)[1],
        )


def coalesce(wanted: list[tuple[Units, int]], gap: int | None = None) -> list[Span]:
    """The ranges that read every unit of ``wanted``: per key, units in order, one range
    while the bytes between two wanted units stay under ``gap`` (default
    :data:`COALESCE_GAP`) and the range under :data:`MAX_SPAN`."""
    gap = COALESCE_GAP if gap is None else gap
    by_key: dict[int, list[tuple[int, int]]] = {}
    keys: dict[int, Units] = {}
    for j, (u, c) in enumerate(wanted):
        by_key.setdefault(id(u), []).append((c, j))
        keys[id(u)] = u
    spans: list[Span] = []
    for k, cs in by_key.items():
        u = keys[k]
        cs.sort()
        run = [cs[0]]
        for c, j in cs[1:]:
            prev, first = run[-1][0], run[0][0]
            between = u.byte_range(c)[0] - u.byte_range(prev)[1]
            whole = u.byte_range(c)[1] - u.byte_range(first)[0]
            if c == prev or (between <= gap and whole <= MAX_SPAN):
                run.append((c, j))
                continue
            spans.append(Span(u, first, prev + 1, tuple(run)))
            run = [(c, j)]
        spans.append(Span(u, run[0][0], run[-1][0] + 1, tuple(run)))
    return spans


def bounded_s3_ranges(fs: Any, paths: list[str], spans: list[tuple[int, int]]) -> list[object]:
    """Ranged GETs on s3fs's event loop that never read more than the range asked for: a
    server that ignores the ``Range`` header (answers the whole object) is caught by its
    ``Content-Length`` before the body is read, and a body is read at most one byte past
    the range. Each result is the bytes, an exception, or the byte count answered."""
    from fsspec.asyn import sync

    async def one(path: str, a: int, b: int, gate: asyncio.Semaphore) -> object:
        bucket, key, vers = fs.split_path(path)
        extra = {"VersionId": vers} if vers else {}
        async with gate:
            resp = await fs._call_s3(
                "get_object", Bucket=bucket, Key=key, Range=f"bytes={a}-{b - 1}", **extra
            )
            body = resp["Body"]
            try:
                n = resp.get("ContentLength")
                if isinstance(n, int) and n != b - a:
                    return n  # refused unread: the whole object, or another range
                parts, left = [], b - a + 1  # a read may return less than asked
                while left > 0:
                    part = await body.read(left)
                    if not part:
                        break
                    parts.append(part)
                    left -= len(part)
                return b"".join(parts)
            finally:
                body.close()

    async def every() -> list[object]:
        gate = asyncio.Semaphore(FETCH_AT_ONCE)
        return await asyncio.gather(
            *(one(p, a, b, gate) for p, (a, b) in zip(paths, spans)), return_exceptions=True
        )

    return list(sync(fs.loop, every))


def _range_bytes(data: object, where: str, rel: str, size: int) -> bytes:
    """What one range read returned (bytes, or the exception it raised), as exactly ``size``
    bytes, or the one-line error it deserves."""
    if isinstance(data, FileNotFoundError):
        raise TransferError(f"{where}: object {rel} is missing")
    if isinstance(data, BaseException):
        raise TransferError(f"{where}: cannot read ({data})")
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) != size:
        got = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        raise CorruptStoreError(f"{where}: expected {size} bytes, got {got}")
    return bytes(data)
