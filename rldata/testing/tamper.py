"""Rewrite a store's manifest as a careless tool or an attacker would, checksum included.

The manifest carries its own checksum, so a plain edit is caught as corruption before
anything else is looked at. Tests of what lies *behind* that check (a consistent lie in
the schema, an escaping path, an out-of-range number) edit through :func:`edit_manifest`,
which re-signs the result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rldata.stores.format import manifest as mf
from rldata.stores.format.files import MANIFEST


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The manifest as stored (checksum field dropped), without any check."""
    m = json.loads((Path(root) / MANIFEST).read_text())
    m.pop(mf.SELF_SUM, None)
    return m


def edit_manifest(
    root: str | Path, change: Callable[[dict[str, Any]], Any] | None = None, **fields: Any
) -> None:
    """Apply ``change(m)`` and/or set ``fields``, then write the manifest with a valid checksum."""
    m = read_manifest(root)
    if change is not None:
        change(m)
    m.update(fields)
    (Path(root) / MANIFEST).write_bytes(mf.dumps(m))


def snapshot(root: str | Path) -> dict[str, bytes]:
    """Every file under ``root`` (or ``root`` itself if a file) by relative path, the lock
    file excepted: equal snapshots mean a command left a store as it was."""
    root = Path(root)
    if not root.exists():
        return {}
    if root.is_file():
        return {"": root.read_bytes()}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "rldata.lock"
    }


def vouch_for_zarr_shards_on_disk(monkeypatch: Any) -> None:
    """Make zarr shard checks accept whatever bytes are on disk, as a hostile store whose
    manifest vouches for its tampered shards would: what lies behind the hash (the shard
    index, blosc headers) must be checked on its own."""
    import hashlib
    import os

    from rldata.stores.backend import _zarr_shards

    real = _zarr_shards.Objects.check

    def trusting(self: Any, key: Any, path: str, want: str, lay: Any) -> Any:
        if not os.path.exists(path):
            return real(self, key, path, want, lay)
        with open(path, "rb") as f:
            return real(self, key, path, hashlib.sha256(f.read()).hexdigest(), lay)

    monkeypatch.setattr(_zarr_shards.Objects, "check", trusting)
