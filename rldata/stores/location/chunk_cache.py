"""A bounded local cache of verified store units, named by their expected SHA-256.

A *unit* is a byte range of a store's payload whose SHA-256 the manifest records (today
a checksum chunk of one key, docs/FORMAT.md section 7). Streaming reads
(:mod:`rldata.stores.location.stream`) fetch units from a remote and keep them here, so:

- the name is the digest the manifest *expects*, never a string a remote declares: a new
  commit of a store, or another store holding the same bytes, reuses every unit it shares;
- every unit is hashed before it is written here and again when it is read back: wrong
  bytes (a hostile remote, a damaged disk) are never served and never cached;
- a unit lands by an atomic rename of a private temporary file, so several processes
  share the cache and none ever reads a half-written unit; a batch's units land together
  as one *pack* (:mod:`rldata.stores.location._packs`: one file, one rename, no sync;
  each unit hashed when read back, a damaged pack removed whole); an ``O_EXCL`` claim file lets
  one of them download a unit while the others wait for it (a claim older than
  :data:`CLAIM_STALE_S`, from a killed process, is ignored);
- the cache holds at most ``max_bytes`` (``RLDATA_CHUNK_CACHE_BYTES``, default 2 GiB):
  each hit touches the unit's modification time, and a write that goes over the budget
  removes the least recently used units first. A handle recounts the units on disk after
  writing a tenth of the budget, so processes writing at once overshoot the budget by at
  most a tenth each, until the next write. A unit larger than the whole budget is served,
  verified, without being kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rldata._env import env_bytes
from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.location._packs import INDEX_DTYPE, SUFFIX, Packs
from rldata.stores.location.places import cache_root

ENV_BYTES = "RLDATA_CHUNK_CACHE_BYTES"
DEFAULT_BYTES = 2 << 30
CLAIM_STALE_S = 60.0
STALE_TEMP_S = 3600.0  # a temporary unit or pack this old is a killed writer's (writes take ms)
_WAIT_S = 0.02
_SHA = re.compile(r"[0-9a-f]{64}")
_TMP = ".tmp-"


def configured_bytes(max_bytes: int | None = None) -> int:
    """The cache budget: ``max_bytes`` if given, else ``$RLDATA_CHUNK_CACHE_BYTES``, else 2 GiB.

    Raises:
        ConfigError: the value is not a non-negative integer.
    """
    if max_bytes is None:
        return env_bytes(ENV_BYTES, DEFAULT_BYTES)
    raw: object = max_bytes
    try:
        value = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        value = -1
    if isinstance(raw, bool) or value < 0:
        raise ConfigError(f"{ENV_BYTES}: expected a byte count >= 0, got {raw!r}")
    return value


class ChunkCache:
    """Verified units in ``root`` (default ``$RLDATA_CACHE/units``), at most ``max_bytes``."""

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else cache_root() / "units"
        self.max_bytes = configured_bytes(max_bytes)
        self._used: int | None = None  # bytes held, as last counted (others also write)
        self._since = 0  # bytes this handle wrote since it last counted
        self._packs = Packs(self.root / "packs")

    def path(self, sha: str) -> Path:
        """Where the unit of digest ``sha`` lives (two levels: ``ab/abcdef...``)."""
        if _SHA.fullmatch(sha) is None:
            raise CorruptStoreError(f"unit digest {sha[:80]!r}: expected 64 lowercase hex digits")
        return self.root / sha[:2] / sha

    def get(self, sha: str, fetch: Callable[[], bytes], *, where: str) -> bytes:
        """The bytes of the unit whose SHA-256 is ``sha``: from the cache, else ``fetch()``ed,
        checked, and kept.

        Raises:
            CorruptStoreError: the fetched bytes hash to another digest (``where`` names the
                unit: URL, key, rows); nothing is cached.
        """
        path = self.path(sha)
        data = self.cached(sha)
        if data is not None:
            return data
        claim = self._claim(path)
        try:
            if claim is None:  # another process is fetching it: take its result if it lands
                data = self._await(path, sha)
                if data is not None:
                    return data
            return self.add(sha, fetch(), where=where)
        finally:
            if claim is not None:
                _unlink(claim)

    def cached(self, sha: str) -> bytes | None:
        """The unit of digest ``sha`` if the cache holds it intact (checked), else None."""
        data = self._cached(self.path(sha), sha)
        return data if data is not None else self._packs.read([sha]).get(sha)

    def cached_many(self, shas: list[str]) -> dict[str, bytes]:
        """The units of ``shas`` the cache holds intact (each checked), by digest: packs
        first (one open a pack), then units kept one a file."""
        for sha in shas:
            self.path(sha)  # a name that is not a digest is refused
        out = self._packs.read(shas)
        for sha in shas:
            if sha not in out:
                data = self._cached(self.path(sha), sha)
                if data is not None:
                    out[sha] = data
        return out

    def add_many(self, units: list[tuple[str, bytes]]) -> set[str]:
        """Keep, as one pack (one file written), each ``(sha, data)`` of ``units`` whose
        data hashes to ``sha``; the digests that did. The others are neither kept nor
        reported here: the caller refuses those it must serve (:meth:`add` says why)."""
        good = [(sha, d) for sha, d in units if hashlib.sha256(d).hexdigest() == sha]
        size = sum(len(d) for _s, d in good)
        if good and size <= self.max_bytes:
            path = self._packs.add(good)
            if path is not None:
                self._account(size, path)
        return {sha for sha, _d in good}

    def add_runs(self, runs: list[Any]) -> None:
        """Keep, as one pack, the verified units of ``runs`` (``unit_runs.Run``: units of one
        key back to back, each checked against its raw digest, ``good`` marking those that
        matched): a run that verified whole is written as one body, otherwise only its
        verified units are written (a unit that failed is neither kept nor indexed)."""
        body: list[bytes] = []
        parts: list[np.ndarray] = []
        at = 0
        for run in runs:
            u, n = run.units, run.stop - run.first
            ub = u.unit_rows * u.row_bytes
            idx = np.zeros(n, INDEX_DTYPE)
            idx["sha"] = np.frombuffer(u.raw_digests(run.first, run.stop), "V32")
            idx["len"] = ub
            idx["len"][-1] = len(run.data) - (n - 1) * ub
            if run.good is not None:  # only the units that verified, one piece each
                idx = idx[run.good]
                body.extend(run.piece(c) for c in run.verified())
            else:
                body.append(run.data)
            idx["off"] = at + np.cumsum(idx["len"]) - idx["len"]
            parts.append(idx)
            at += int(idx["len"].sum())
        index = np.concatenate(parts) if parts else np.zeros(0, INDEX_DTYPE)
        if len(index) and at <= self.max_bytes:
            path = self._packs.add_parts(body, index)
            if path is not None:
                self._account(at, path)

    def add(self, sha: str, data: bytes, *, where: str) -> bytes:
        """Keep ``data`` as the unit of digest ``sha`` once it hashes to it; ``data``.

        Raises:
            CorruptStoreError: ``data`` hashes to another digest; nothing is cached.
        """
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise CorruptStoreError(
                f"{where}: sha256 {got[:16]}… differs from the manifest's {sha[:16]}…; "
                f"refused ({len(data)} bytes, not cached)"
            )
        self._put(self.path(sha), data)
        return data

    def held_bytes(self) -> int:
        """Bytes of units in the cache now (every process's), counted on disk."""
        return sum(size for _p, size, _t in self._units())

    # --- inside ---------------------------------------------------------------------------
    def _cached(self, path: Path, sha: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != sha:  # damaged on disk: fetched again
            _unlink(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # LRU: the most recently used units are evicted last
        return data

    def _claim(self, path: Path) -> Path | None:
        """An ``O_EXCL`` claim on fetching ``path``; None when a live claim is held by another."""
        claim = path.with_name(path.name + ".claim")
        claim.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                return claim
            except FileExistsError:
                try:
                    age = time.time() - claim.stat().st_mtime
                except OSError:
                    continue  # released meanwhile: try again
                if age < CLAIM_STALE_S:
                    return None
                _unlink(claim)  # left by a killed process
        return None

    def _await(self, path: Path, sha: str) -> bytes | None:
        claim = path.with_name(path.name + ".claim")
        deadline = time.monotonic() + CLAIM_STALE_S
        while time.monotonic() < deadline:
            data = self._cached(path, sha)
            if data is not None:
                return data
            if not claim.exists():
                return self._cached(path, sha)
            time.sleep(_WAIT_S)
        return None

    def _put(self, path: Path, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return  # served, not kept: it alone is over the budget
        tmp = path.with_name(f"{path.name}{_TMP}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # add() comes without a claim
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # whole or absent: no reader sees a half-written unit
        except OSError:
            _unlink(tmp)  # a full disk costs the cache, never the read
            return
        self._account(len(data), path)

    def _account(self, size: int, path: Path) -> None:
        """``size`` bytes landed at ``path``: evict (never ``path``) when over the budget."""
        self._since += size
        if self._used is None or self._since > self.max_bytes // 10:
            self._used, self._since = self.held_bytes(), 0  # other processes' units counted
        else:
            self._used += size
        if self._used > self.max_bytes:
            self._evict(keep=path)

    def _evict(self, keep: Path) -> None:
        """Remove the least recently used units until the cache holds at most 80% of its
        budget (so a full cache is not rescanned on every write)."""
        units = sorted(self._units(), key=lambda u: u[2])
        used = sum(size for _p, size, _t in units)
        target = int(self.max_bytes * 0.8)
        for path, size, _t in units:
            if used <= target:
                break
            if path == keep:
                continue
            _unlink(path)
            used -= size
        self._used, self._since = used, 0

    def _units(self) -> list[tuple[Path, int, float]]:
        out: list[tuple[Path, int, float]] = []
        try:
            subdirs = list(os.scandir(self.root))
        except OSError:
            return out
        for sub in subdirs:
            if not sub.is_dir(follow_symlinks=False):
                continue
            try:
                entries = list(os.scandir(sub.path))
            except OSError:
                continue
            for e in entries:
                if _TMP in e.name:  # a unit or pack being written, or a killed writer's
                    _drop_stale_temp(e)
                    continue
                if _SHA.fullmatch(e.name) is None and not e.name.endswith(SUFFIX):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                out.append((Path(e.path), st.st_size, st.st_mtime))
        return out


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _drop_stale_temp(entry: os.DirEntry) -> None:
    """Remove a temporary file left by a writer killed mid-write, once it is
    :data:`STALE_TEMP_S` old (a live writer renames its file within milliseconds)."""
    try:
        if time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S:
            os.unlink(entry.path)
    except OSError:
        pass
