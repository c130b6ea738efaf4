"""Check a store end to end: manifest, checksums, schema, episode index and TED invariants.

``verify`` returns every fault as one line (empty list: the store is sound);
``first_fault`` stops at the first. ``content_digest`` hashes the readable rows in
write order, so two stores holding the same rows (whatever their chunking or ring
cursor) share a digest. These back ``rldata verify`` and ``rldata info``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch

from rldata import ted
from rldata.env_ids import MODULE_PART, env_id_problem
from rldata.errors import CorruptStoreError, RldataError
from rldata.stores.backend._verify_scan import Scan, applies
from rldata.stores.backend.base import Store
from rldata.stores.backend.blocks import block_rows, runs
from rldata.stores.backend.invariants import episode_faults, ted_faults
from rldata.stores.backend.rows import chunk_lists
from rldata.stores.format.checksums import parallel_map, sha256_hex
from rldata.stores.format.episodes import committed_log

if TYPE_CHECKING:
    from tensordict import TensorDict


K = ted.TED_KEYS


def verify(store: Store, *, checksums: bool = True, invariants: bool = True) -> list[str]:
    """Every fault found in ``store`` (one line each, naming the key, row or file)."""
    return list(_faults(store, checksums=checksums, invariants=invariants))


def first_fault(store: Store, *, checksums: bool = True, invariants: bool = True) -> str | None:
    """The first fault found, or None when the store is sound."""
    return next(_faults(store, checksums=checksums, invariants=invariants), None)


def integrity_fault(store: Store, *, lazy: bool = False) -> str | None:
    """The first fault of what readers check before serving a row: the manifest, the payload
    entries, every committed byte against its checksum, and the index and statistics files
    against theirs (no pass over the rows' contents; :func:`verify` does that).

    ``lazy``: a store with block digests (format 1.4) checks only its manifest, episode
    index and digest files now, and each block of rows when a read first touches it (the
    statistics files when ``stats()`` reads them); other stores check everything now.
    """
    own = getattr(store, "faults", None)
    if own is not None:
        return next(iter(own(checksums=True, invariants=False)), None)
    return next(_integrity(store, stored=True, lazy=lazy), None)


def _integrity(
    store: Store,
    checksums: bool = True,
    stored: bool = False,
    lazy: bool = False,
    scan: Scan | None = None,
) -> Iterator[str]:
    """``stored``: trust the stored-bytes checksums of a payload's objects (zarr chunk files,
    parquet parts, memmap's explicit next-row records: format 1.3) for the rows they hold,
    and decode only what they do not prove; otherwise every committed row is decoded and
    checked against its row checksum. ``lazy``: see :func:`integrity_fault`. ``scan``: read
    the rows for the checksums through it, which checks their meaning on the same read."""
    m = _manifest(store)
    yield from _schema_faults(m, store.path)
    if store.schema is None:
        return
    yield from _spec_faults(store)
    payload = getattr(store, "payload_faults", None)
    if payload is not None:
        yield from payload()
    lazily = None
    if checksums and lazy:
        arm = getattr(store, "lazy_faults", None)
        lazily = arm() if arm is not None else None
    if lazily is not None:  # the episode index was checked when the store attached it
        yield from lazily
        return
    if checksums:
        proven: AbstractSet[int | str] = frozenset()
        check = getattr(store, "stored_bytes_check", None)
        scanned: list[str] | None = None
        if check is not None and scan is not None and scan.beside_stored_check():
            faults, scanned = _check_beside_scan(store, m, check, scan)
            yield from faults
        elif check is not None:
            faults, chunks = check()
            yield from faults
            proven = chunks if stored else proven
        else:
            faults = []
        if not faults:  # a damaged stored object may not even decode
            bad = False
            rows = scanned if scanned is not None else _checksum_faults(store, m, proven, scan)
            for fault in rows:
                bad = True
                yield fault
            proved = getattr(store, "rows_proven", None)
            if not bad and proved is not None:
                proved()  # every committed byte matched: reads need not hash it again
        digests = getattr(store, "digest_file_faults", None)
        if digests is not None:
            yield from digests()
        yield from _stats_faults(store, m)
    yield from _index_file_faults(store, m)


def _check_beside_scan(
    store: Store, m: dict, check: Callable[[], tuple[list[str], Any]], scan: Scan
) -> tuple[list[str], list[str] | None]:
    """The stored objects hashed on a thread while the scan decodes, hashes and checks the
    rows (a store whose readers decode its files before hashing them whole: parquet with
    block digests), so the disk is read once for both and the two hashes share the cores.
    A fault in the stored objects voids the scan (what it found, or raised: a damaged part
    may not decode): the caller goes on as though it had not run. Returns the stored
    objects' faults and, when there are none, the scan's checksum faults."""
    with ThreadPoolExecutor(1, thread_name_prefix="rldata-verify-stored") as pool:
        pending = pool.submit(check)
        error: Exception | None = None
        try:
            rows: list[str] | None = list(_checksum_faults(store, m, frozenset(), scan))
        except Exception as exc:  # decided below, once the stored objects are known sound
            rows, error = None, exc
        faults = pending.result()[0]
    if faults:
        scan.reset()
        return faults, None
    if error is not None:
        raise error
    return faults, rows


def _index_missing(store: Store) -> bool:
    ref = store.manifest.get("episodes")
    return ref is not None and store._episode_file(ref) is None  # type: ignore[attr-defined]


def _index_file_faults(store: Store, m: dict) -> Iterator[str]:
    ref = m.get("episodes")
    if ref is None:
        return
    path = store._episode_file(ref)  # type: ignore[attr-defined]
    if path is None:
        yield f"{store.path}: episode index {ref['path']} is missing"
    elif "bytes" in ref:  # an appended log (format 1.4): its committed bytes
        try:
            committed_log(path.read_bytes(), ref, store.path)
        except CorruptStoreError as exc:
            yield str(exc)
    elif sha256_hex(path.read_bytes()) != ref["sha256"]:
        yield f"{store.path}: episode index {ref['path']}: sha256 does not match the manifest"


def content_digest(store: Store) -> str:
    """``"sha256:<hex>"`` of the schema and every readable row's bytes, key by key, oldest first.

    A store made of other stores (sharded) hashes through its own ``content_digest``.
    """
    own = getattr(store, "content_digest", None)
    if own is not None:
        return own()
    h = hashlib.sha256(json.dumps(store.schema, sort_keys=True).encode())
    if store.schema is not None:
        step = block_rows(store)
        for name in sorted(store.schema):  # a block of one key at a time, never a whole column
            for a, b in _runs(store):
                for lo in range(a, b, step):
                    h.update(store._raw(name, lo, min(b, lo + step)))  # type: ignore[attr-defined]
    return "sha256:" + h.hexdigest()


def _manifest(store: Store) -> dict:
    """The committed manifest, read only here: a row store's own (no deep copy of a million
    rows' checksums), else the public copy."""
    own = getattr(store, "_m", None)
    return own if isinstance(own, dict) else store.manifest


def _runs(store: Store) -> list[tuple[int, int]]:
    """Readable positions as contiguous ``[a, b)`` ranges, oldest first."""
    from rldata.stores.backend.rowstore import RowStore

    if isinstance(store, RowStore):  # by arithmetic on serials, not a tensor of every position
        return runs(store)
    pos = store.readable()
    if pos.numel() == 0:
        return []
    breaks = torch.nonzero(pos[1:] != pos[:-1] + 1).reshape(-1) + 1
    edges = [0, *breaks.tolist(), pos.numel()]
    return [(int(pos[i]), int(pos[j - 1]) + 1) for i, j in zip(edges[:-1], edges[1:])]


def env_id_finding(store: Store) -> tuple[str, str] | None:
    """What ``rldata verify`` says of the store's env id: ``("fault", line)`` when it names a
    module to import (``gymnasium.make`` would run that module: the store is refused),
    ``("warning", line)`` when gymnasium here does not know it (registration depends on the
    reader's packages, not on the store), None when it is absent or registered."""
    env_id = store.env_id
    problem = None if env_id is None else env_id_problem(env_id)
    if problem is None:
        return None
    line = f"{store.path}: env id {env_id!r} in the manifest {problem}"
    if problem == MODULE_PART:
        return "fault", f"{line}; rldata never makes an env from it (train/eval need --env)"
    return "warning", f"{line}; train and eval need --env/--eval-env to use it"


def _faults(store: Store, *, checksums: bool, invariants: bool) -> Iterator[str]:
    finding = env_id_finding(store)
    if finding is not None and finding[0] == "fault":
        yield finding[1]
    own = getattr(store, "faults", None)
    if own is not None:  # a store of stores checks its parts
        yield from own(checksums=checksums, invariants=invariants)
        return
    found = False
    scan = Scan(store, invariants) if checksums and applies(store) else None
    for fault in _integrity(store, checksums, scan=scan):
        found = True
        yield fault
    if store.schema is None or found and _index_missing(store):
        return
    try:  # a handle that checks blocks on read refuses the faulty ones listed above
        if scan is not None and scan.ran:  # checked on the checksums' read
            yield from scan.faults()
            return
        yield from episode_faults(store, store.manifest)
        if invariants:
            yield from ted_faults(store)
    except CorruptStoreError as exc:
        if not found:
            yield str(exc)


def _schema_faults(m: dict, where: str) -> Iterator[str]:
    """The schema holds the TED keys (ranges, cursor and payload names were checked when the
    manifest was read: :mod:`rldata.stores.format.manifest_check` and the backend's attach)."""
    if m["schema"]:
        try:
            ted.validate(_empty_rows(m["schema"]), require_traj_ids=True)
        except ValueError as exc:
            yield f"{where}: schema is not TED: {exc}"


def _spec_faults(store: Store) -> Iterator[str]:
    """The schema agrees with the env's specs on every key both describe (a schema that lies
    about a dtype or shape consistently with its checksums still contradicts the specs)."""
    from rldata.stores.format import schema as sch

    try:
        specs = store.specs
    except Exception as exc:  # a malformed spec is a fault to report, whatever raised
        yield f"{store.path}: manifest field 'specs' cannot be read ({exc})"
        return
    if specs is None:
        return
    schema = store.schema or {}
    for key in specs.keys(True, True):
        parts = (key,) if isinstance(key, str) else tuple(key)
        spec = specs[parts]
        for name in (".".join(parts), ".".join((K.next, *parts))):
            entry = schema.get(name)
            if entry is None or parts[0] == K.next and name.startswith(K.next + "." + K.next):
                continue
            want = (list(spec.shape), sch.dtype_name(spec.dtype))
            got = (list(entry["shape"]), entry["dtype"])
            if want != got:
                yield (
                    f"{store.path}: schema of key {name!r} is {got[1]} {got[0]}, but the "
                    f"env's spec says {want[1]} {want[0]}"
                )


def _empty_rows(schema: dict) -> TensorDict:
    from tensordict import TensorDict

    from rldata.stores.format import schema as sch

    td = TensorDict({}, batch_size=[0])
    for name, e in schema.items():
        td.set(sch.key_tuple(name), torch.zeros((0, *e["shape"]), dtype=sch.dtype_of(e["dtype"])))
    return td


def _checksum_faults(
    store: Store, m: dict, proven: AbstractSet[int | str] = frozenset(), scan: Scan | None = None
) -> Iterator[str]:
    """Each committed checksum chunk against its rows, hashed on every core (the rows are
    read here, in order; only hashing runs in the pool). ``proven`` skips the hash of a
    chunk index (for every key) or of a whole key whose stored bytes were checked otherwise:
    they only get the range checks. ``scan``: one read of every chunk (:mod:`._verify_scan`)."""
    sums = m["checksums"]
    rows = sums["chunk_rows"]
    filled = store._filled()  # type: ignore[attr-defined]
    runs = _runs(store)
    steps: list[tuple[str, str, int, int, int, str]] = []  # what to check, in report order
    try:
        lists = chunk_lists(store)  # type: ignore[arg-type]
    except CorruptStoreError as exc:  # the 1.6 sidecar is missing, short or altered
        yield str(exc)
        return
    for name, entries in lists.items():
        for c, (n, digest) in enumerate(entries):
            if n == 0:
                continue
            a, b = c * rows, c * rows + n
            if b > filled:
                steps.append(("past", name, c, a, b, digest))
            elif c not in proven and name not in proven:
                steps.append(("hash", name, c, a, b, digest))
        p = _uncovered(runs, entries, rows)
        if p is not None:
            steps.append(("uncovered", name, p, 0, 0, ""))
    jobs = [(name, c, a, b) for kind, name, c, a, b, _ in steps if kind == "hash"]
    hashed = (
        scan.hashes(jobs)
        if scan is not None
        else parallel_map(sha256_hex, (store._raw(n, a, b) for n, _, a, b in jobs))  # type: ignore[attr-defined]
    )
    try:
        for kind, name, c, a, b, digest in steps:
            if kind == "past":
                yield f"{store.path}: key {name!r} chunk {c} lists rows [{a}, {b}) past {filled} stored"
            elif kind == "uncovered":
                yield f"{store.path}: key {name!r}: readable row {c} is not covered by a checksum"
            else:
                got = next(hashed)
                if got != digest:
                    yield f"{store.path}: key {name!r} chunk {c} rows [{a}, {b}): sha256 {got[:12]}…, manifest says {digest[:12]}…"
    finally:
        close = getattr(hashed, "close", None)
        if close is not None:
            close()


def _uncovered(runs: list[tuple[int, int]], entries: list, rows: int) -> int | None:
    """The first readable position no checksum entry covers (arithmetic on ranges: a store of
    a million rows checks in microseconds)."""
    for a, b in runs:
        p = a
        while p < b:
            c = p // rows
            end = c * rows + entries[c][0] if c < len(entries) else -1
            if p >= end:
                return p
            p = min(b, end)
    return None


def _stats_faults(store: Store, m: dict) -> Iterator[str]:
    """The statistics files against the manifest, after the rows: parsing the log on a
    thread beside the scan cost more than it saved (its JSON holds the GIL: at 10M rows,
    load ~7 on 2 cores, verify CPU 7.0 -> 7.4 s for parquet, 3.9 -> 4.4 s for memmap)."""
    from rldata.stores.format import stats as st
    from rldata.stores.format.files import inside

    fetch = getattr(store, "fetch_stats", None)  # a streaming store brings them on demand
    if fetch is not None:
        try:
            fetch()
        except RldataError as exc:
            yield str(exc)
            return
    listed = m.get("stats")
    if isinstance(listed, dict):  # the appended log: its committed bytes and lines
        try:
            with inside(store.root, listed["path"], "a statistics file").open("rb") as f:  # type: ignore[attr-defined]
                st.check_log(f, listed, store.path)
        except OSError:
            yield f"{store.path}: statistics file {listed['path']} named by the manifest is missing"
        except CorruptStoreError as exc:
            yield str(exc)
        return
    for ref in listed or []:
        try:
            data = inside(store.root, ref["path"], "a statistics file").read_bytes()  # type: ignore[attr-defined]
        except OSError:
            yield f"{store.path}: statistics file {ref['path']} named by the manifest is missing"
            return
        if sha256_hex(data) != ref["sha256"]:
            yield f"{store.path}: statistics file {ref['path']}: sha256 does not match the manifest"
            return
