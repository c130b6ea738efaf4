"""The parquet payload's part files, each checked against the manifest the first time a
handle reads it (a mixin of :class:`rldata.stores.backend._parquet.ParquetStore`).

A verified open checks each part's size; a part's SHA-256 is checked before any of it is
decoded, and ``rldata verify`` (``stored_bytes_check``) hashes them all. A store with block
digests (format 1.7) hashes blocks on read instead of parts (``_parquet_blocks``); verify
still hashes every part, then its reads hash nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rldata.errors import CorruptStoreError
from rldata.stores.format.checksums import file_sha256
from rldata.stores.format.files import inside


class ParquetPartChecks:
    """Checks of a parquet store's part files on first read, and all at once for verify."""

    root: Path
    writable: bool
    schema: Any
    hashed: int
    _checked: set[str]
    _chunk: int
    _parts: Callable[[], list[dict]]
    _filled: Callable[[], int]
    digest_file_faults: Callable[[], list[str]]
    rows_proven: Callable[[], None]

    def _size_fault(self, part: dict) -> tuple[Path, str | None]:
        """A part's path, and the fault if its size differs from the manifest's."""
        path = inside(self.root, part["path"], "a parquet part")
        size = path.stat().st_size if path.is_file() else None
        if size == part.get("bytes"):
            return path, None
        return path, (
            f"{path}: parquet part is {'missing' if size is None else f'{size} bytes'}, "
            f"the manifest says {part.get('bytes')} bytes"
        )

    def _check_part(self, part: dict, path: Path) -> None:
        """Hash a part against the size and SHA-256 its commit recorded, the first time this
        handle reads it (parts are never rewritten; one from before format 1.3 carries no
        hash and was checked row by row at open). Nothing of a part that differs is served."""
        want = part.get("sha256")
        if want is None or part["path"] in self._checked:
            return
        size = path.stat().st_size if path.is_file() else None
        got = file_sha256(path) if size == part.get("bytes") else None
        self.hashed += 1
        if got != want:
            a = part["start"]
            raise CorruptStoreError(
                f"{path}: parquet part of rows [{a}, {a + part['rows']}) does not match the "
                f"manifest ({'missing' if size is None else f'{size} bytes, sha256 {str(got)[:12]}…'});"
                f" refusing to read it"
            )
        self._checked.add(part["path"])

    def lazy_faults(self) -> list[str] | None:
        """What a verified open checks now (None: check every row now, as for a store with
        parts from before format 1.3): each part's size. Each part is hashed against the
        manifest the first time a read decodes it (:meth:`_check_part`); ``rldata verify``
        hashes them all. A store with block digests (1.7) checks its sidecar now and each
        block when first read instead (:mod:`._parquet_blocks`)."""
        if self.writable or self.schema is None:
            return None
        parts = self._parts()
        if any(not isinstance(p.get("sha256"), str) for p in parts):
            return None
        faults = [f for f in (self._size_fault(p)[1] for p in parts) if f is not None]
        return faults or self.digest_file_faults()  # block digests: the sidecar, now

    def stored_bytes_check(self) -> tuple[list[str], set[int]]:
        """Each part file against the size and SHA-256 its commit recorded (format 1.3): a part
        is never rewritten, so any difference is a fault. Returns the faults and the checksum
        chunks whose rows lie in matching parts (their rows need no decoding to be trusted);
        parts from before 1.3 carry no hash and are left to the decoded-row check."""
        faults, good = [], []
        for p in self._parts():
            want = p.get("sha256")
            if want is None:
                continue
            path, fault = self._size_fault(p)
            if fault is not None:
                faults.append(fault)
                continue
            got = file_sha256(path)
            if got != want:
                faults.append(
                    f"{path}: parquet part sha256 {str(got)[:12]}…, manifest says {str(want)[:12]}…"
                )
                continue
            self._checked.add(p["path"])
            good.append((p["start"], p["start"] + p["rows"]))
        if not faults:  # every byte matched: reads need not hash blocks again
            self.rows_proven()
        return faults, _chunks_within(good, self._chunk, self._filled())


def _chunks_within(ranges: list[tuple[int, int]], chunk_rows: int, filled: int) -> set[int]:
    """Checksum chunks whose rows ``[c * chunk_rows, ...)`` below ``filled`` all lie in
    ``ranges`` (sorted, disjoint row ranges)."""
    out: set[int] = set()
    run_a = run_b = -1
    merged = []
    for a, b in ranges:  # join adjacent parts into runs
        if a == run_b:
            run_b = b
        else:
            if run_b > run_a:
                merged.append((run_a, run_b))
            run_a, run_b = a, b
    if run_b > run_a:
        merged.append((run_a, run_b))
    for a, b in merged:
        first = -(-a // chunk_rows)
        c = first
        while c * chunk_rows < b:
            if min((c + 1) * chunk_rows, filled) <= b:
                out.add(c)
            c += 1
    return out
