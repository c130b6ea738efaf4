"""Content hashes: of a whole store (its digest) and of each episode (to match episodes across stores).

An episode's hash is the SHA-256 of its rows' bytes, key by key in sorted key order, rows in
time order, leaving out ``collector.traj_ids``: ids are local names (a merge renumbers them),
the content is what makes two episodes the same. Bytes are the little-endian values of the
schema's dtype, so the hash does not depend on the backend that stored them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rldata import stores
from rldata.stores.backend.blocks import row_blocks
from rldata.stores.format import schema as sch

TRAJ_KEY = "collector.traj_ids"
REWARD_KEY = "next.reward"
BLOCK = 16 << 20


def store_digest(path: str | os.PathLike[str]) -> str:
    """The content digest of the local store at ``path``."""
    with stores.open(path, verify=False) as store:  # the digest itself covers every byte
        return digest_of(store)


def digest_of(store: Any) -> str:
    """``store``'s content digest, as ``rldata.stores.content_digest`` defines it.

    An append-only memmap store whose rows all stay readable holds its readable rows as the
    first bytes of each payload file, so the digest is one sequential read of those bytes
    (about 6x faster than gathering row ranges); any other store goes through
    ``rldata.stores.content_digest``. ``tests/sharing`` checks that both agree.
    """
    fast = _memmap_digest(store)
    return fast if fast is not None else stores.content_digest(store)


def _memmap_digest(store: Any) -> str | None:
    m = store.manifest
    schema = store.schema
    if (
        m.get("backend") != "memmap"
        or m.get("capacity") is not None
        or m.get("length") != m.get("written")
        or not schema
        or (m.get("payload") or {}).get("next_stored_once")  # next rows are not all in files
    ):
        return None
    root = Path(store.path)
    files = (m.get("payload") or {}).get("files") or {}
    h = hashlib.sha256(json.dumps(schema, sort_keys=True).encode())
    for name in sorted(schema):
        need = int(m["written"]) * sch.row_bytes(schema[name])
        with open(root / files[name], "rb") as f:
            while need > 0:
                block = f.read(min(need, BLOCK))
                if not block:
                    return None  # a short file: let the store's own digest report it
                h.update(block)
                need -= len(block)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class EpisodeHashes:
    """One entry per episode of a store, in the order of ``store.episodes()``."""

    traj_ids: list[int]
    hashes: list[str]
    lengths: list[int]
    returns: list[float | None] = field(
        default_factory=list
    )  # sum of next.reward; None without one


def episode_hashes(store: Any) -> EpisodeHashes:
    """The content hash of every episode of ``store`` (one streaming read of its rows: an
    episode's rows are held only until its last row, which the episode index says, is read)."""
    schema = store.schema or {}
    keys = sorted(k for k in schema if k != TRAJ_KEY)
    eps = store.episodes()
    n_eps = int(eps.batch_size[0]) if eps.batch_dims else 0
    if n_eps == 0 or len(store) == 0:
        return EpisodeHashes([], [], [])
    tids = [int(t) for t in eps["traj_id"].tolist()]
    want: dict[int, int] = {}
    for t, n in zip(tids, eps["length"].tolist()):
        want[t] = want.get(t, 0) + int(n)
    open_: dict[int, list[Any]] = {}
    held: dict[int, int] = {}
    hashes: dict[int, str] = {}
    lengths: dict[int, int] = {}
    returns: dict[int, float | None] = {}

    def close(tid: int) -> None:
        parts = open_.pop(tid)
        rows: Any = torch.cat(parts) if len(parts) > 1 else parts[0]
        h = hashlib.sha256()
        for key in keys:
            h.update(_bytes_view(rows.get(sch.key_tuple(key))).tobytes())
        hashes[tid], lengths[tid] = h.hexdigest(), int(rows.batch_size[0])
        returns[tid] = None
        if REWARD_KEY in schema:
            reward = rows.get(sch.key_tuple(REWARD_KEY)).reshape(rows.batch_size[0], -1)
            returns[tid] = float(reward.to(torch.float64).sum(dim=1).sum())
        held.pop(tid, None)

    for block in row_blocks(store):
        rows, ids = _grouped_by_episode(block.rows)
        uniq, counts = torch.unique_consecutive(ids, return_counts=True)
        off = 0
        for tid, cnt in zip(uniq.tolist(), counts.tolist()):
            open_.setdefault(tid, []).append(rows[off : off + cnt])
            off += cnt
            held[tid] = held.get(tid, 0) + cnt
            if held[tid] >= want.get(tid, -1):
                close(tid)
            else:  # a slice would keep the whole block alive until the episode ends
                open_[tid][-1] = open_[tid][-1].clone()
    for tid in list(open_):  # rows the index does not account for (a damaged store)
        close(tid)
    return EpisodeHashes(
        traj_ids=tids,
        hashes=[hashes[t] for t in tids],
        lengths=[int(lengths[t]) for t in tids],
        returns=[returns[t] for t in tids],
    )


def _grouped_by_episode(rows: Any) -> tuple[Any, torch.Tensor]:
    """``rows`` with each episode's rows next to each other, in time order, and their
    trajectory ids: one gather for the whole block (none when one env wrote it, whose rows
    are already grouped), so an episode's rows are then a slice, not a gather of their own."""
    ids = rows.get(sch.key_tuple(TRAJ_KEY)).reshape(-1)
    flat = ids.numpy()
    if flat.size < 2 or bool((flat[1:] >= flat[:-1]).all()):
        return rows, ids
    order = torch.from_numpy(np.argsort(flat, kind="stable"))
    return rows[order], ids[order]


def _bytes_view(col: torch.Tensor) -> Any:
    """``[N, row_bytes]`` uint8 numpy view of a column (bool and bfloat16 included)."""
    n = col.shape[0]
    flat = col.reshape(n, -1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.contiguous().view(torch.uint8).reshape(n, -1).numpy()
