"""A range's units verified and kept as one run: each unit hashed against its own raw
digest (one slice of the block table), only verified units cached or served."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from rldata.stores.format.blocksums import BlockTable
from rldata.stores.location.chunk_cache import ChunkCache
from rldata.stores.location.remote_units import Units
from rldata.stores.location.unit_runs import Run, table_digests, verify_run

ROW = 4  # bytes a row
UNIT_ROWS = 8  # rows a unit: 32 bytes
PAYLOAD = bytes(range(256)) * 3  # 768 bytes = 192 rows = 24 units


def units(payload: bytes = PAYLOAD) -> Units:
    """The units of ``payload`` with the digests of its true bytes (hex, and raw in bulk)."""
    ub = UNIT_ROWS * ROW
    shas = [hashlib.sha256(payload[i : i + ub]).hexdigest() for i in range(0, len(payload), ub)]
    n = len(shas)
    last = (len(payload) // ROW) - (n - 1) * UNIT_ROWS
    return Units("k", "k.memmap", ROW, UNIT_ROWS, n, last, shas.__getitem__)


def test_a_run_whose_units_all_match_verifies_whole() -> None:
    u = units()
    assert verify_run(u, 2, 10, PAYLOAD[2 * 32 : 10 * 32]) is None


def test_a_tampered_unit_is_the_only_one_marked_bad() -> None:
    u = units()
    data = bytearray(PAYLOAD[0 : 6 * 32])
    data[3 * 32 + 5] ^= 1  # unit 3 of units 0..5
    good = verify_run(u, 0, 6, bytes(data))
    assert good is not None and good.tolist() == [True, True, True, False, True, True]


def test_a_short_last_unit_is_hashed_on_its_own_bytes() -> None:
    payload = PAYLOAD[: 10 * 32 + 12]  # 3 rows in the last unit
    u = units(payload)
    assert u.rows(u.count - 1) == 3
    assert verify_run(u, 8, u.count, payload[8 * 32 :]) is None


def test_only_verified_units_of_a_run_are_cached(tmp_path: Path) -> None:
    u = units()
    data = bytearray(PAYLOAD[0 : 4 * 32])
    data[32] ^= 1  # unit 1 is wrong
    run = Run(u, 0, 4, bytes(data), verify_run(u, 0, 4, bytes(data)))
    cache = ChunkCache(tmp_path, 100_000)
    cache.add_runs([run])
    held = ChunkCache(tmp_path, 100_000).cached_many([u.digest(c) for c in range(4)])
    assert set(held) == {u.digest(0), u.digest(2), u.digest(3)}
    assert held[u.digest(3)] == PAYLOAD[96:128]
    assert run.verified() == [0, 2, 3]
    kept = b"".join(p.read_bytes() for p in (tmp_path / "packs").glob("*.pack"))
    assert bytes(data[32:64]) not in kept  # the failed unit's bytes are not written at all


def test_the_block_tables_digests_of_a_run_are_its_blocks_digests_in_order() -> None:
    keys, full, b = ["a", "k"], 5, UNIT_ROWS
    digests = np.frombuffer(np.random.default_rng(0).bytes(full * 2 * 32), np.uint8)
    tail = {"a": "11" * 32, "k": "22" * 32}
    entry = {"block_rows": b, "keys": keys, "blocks": full, "tail": {"rows": 3, "sha256": tail}}
    table = BlockTable(entry, digests.reshape(full, 2, 32))
    many = table_digests(table, "k")
    assert many(1, 6) == b"".join(table.digest("k", i) for i in range(1, 6))
    assert many(5, 6) == bytes.fromhex(tail["k"])
