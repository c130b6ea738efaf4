"""The dataset card: what ``rldata info`` shows about a store, beside the HTML report.

Size, episodes, returns, schema, specs, provenance, the descriptive metadata (author,
description, license, code link), the content digest, the integrity check, and how many
recorded actions fall outside a bounded action spec.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rldata import stores as _stores
from rldata.sharing.cache import open_url
from rldata.sharing.digest import digest_of
from rldata.sharing.urls import is_url
from rldata.stores.backend import _sharded as _shards
from rldata.stores.backend.blocks import row_blocks
from rldata.stores.interop.described import bounded
from rldata.stores.location.destination import shown


def _local(path: str | os.PathLike) -> str | os.PathLike:
    """A local path for ``path``: a store at a URL is pulled into the verified cache first."""
    return open_url(os.fspath(path)) if is_url(path) else path


def actions_outside_spec(store: Any, stats: dict | None = None) -> int | None:
    """How many recorded rows hold an action outside a bounded action spec (gymnasium clips
    or refuses such actions as the env defines, so the stored action may not be the applied
    one); None without a bounded action spec. The recorded min / max answer "none" without
    reading a row."""
    from rldata.specs import Bounded

    specs = store.specs
    spec = specs.get("action") if specs is not None and "action" in specs else None
    if not isinstance(spec, Bounded) or not len(store):
        return None
    low, high = spec.low.double().reshape(-1), spec.high.double().reshape(-1)
    rec = (stats or {}).get("action")
    inside = (
        rec is not None
        and len(rec["min"]) == low.numel()
        and bool((torch.tensor(rec["min"]) >= low).all())
        and bool((torch.tensor(rec["max"]) <= high).all())
    )
    if inside:
        return 0
    count = 0
    for block in row_blocks(store):  # a bounded block at a time, never every position
        a = block.rows.get("action").double().reshape(-1, low.numel())
        count += int(((a < low) | (a > high)).any(-1).sum())
    return count


def dataset_card(path: str) -> dict[str, Any]:
    """What ``rldata info`` shows: size, episodes, returns, schema, specs, provenance, digest."""
    with _stores.open(_local(path), verify=False) as store:
        fault = _stores.integrity_fault(store)
        episodes = store.episodes()
        n = episodes.batch_size[0] if episodes.batch_dims else 0
        card: dict[str, Any] = {
            "path": shown(path) if is_url(path) else str(store.path),
            "backend": store.backend,
            "format_version": store.manifest.get("format_version"),
            "transitions": len(store),
            "episodes": int(n),
            "finished_episodes": 0,
            "return": None,
            "env": {"id": store.env_id, "kwargs": store.env_kwargs},
            "schema": store.schema,
            "specs": store.manifest.get("specs"),
            "provenance": store.provenance,
            "metadata": bounded(store.provenance),  # cut to size: the store's strings are data
            # memmap's payload files read in sequence; the check above hashed them by chunk
            "content_digest": digest_of(store),
            "check": "ok" if fault is None else f"FAILED: {fault}",
            "stats": store.stats() if fault is None and hasattr(store, "stats") else None,
        }
        if fault is None:
            card["actions_outside_spec"] = actions_outside_spec(store, card["stats"])
        if isinstance(store, _shards.ShardedStore):
            card["shards"] = [str(s.path) for s in store.shards]
            card["shard_backend"] = store.shards[0].backend if store.shards else None
        if n:
            returns = episodes["return"].double()
            card["finished_episodes"] = int((episodes["terminated"] | episodes["truncated"]).sum())
            card["return"] = {
                "min": float(returns.min()),
                "mean": float(returns.mean()),
                "max": float(returns.max()),
            }
        return card
