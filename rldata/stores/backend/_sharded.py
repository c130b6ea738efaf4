"""Sharded stores: one store per Ray actor, listed in a parent manifest, read as one.

When several actors record at once, each writes its own complete store (a *shard*) under
the parent directory, so no central process carries the data and a crash of one actor
costs only its uncommitted rows. The parent ``rldata.json`` is an ordinary manifest with
``backend: "sharded"`` and a ``shards`` list of relative paths; :class:`ShardedStore`
opens every shard read-only and presents their rows one after another (shard 0 first).
Trajectory ids are unique across shards because every actor draws from its own residue
class of one id sequence.

The store registry lists the ``"sharded"`` backend, so ``rldata.stores.open(parent)``
dispatches here; it is read-only (recordings write the shards, not the parent).

Layout::

    <parent>/rldata.json          {"backend": "sharded", "shards": ["shard-00000", ...], ...}
    <parent>/shard-00000/...      a complete store of any backend
    <parent>/shard-00001/...
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tensordict
import torch
from tensordict import TensorDict

from rldata import stores
from rldata.errors import ConfigError, RowIndexError, StoreNotFoundError
from rldata.stores.backend.base import Store, as_positions
from rldata.stores.backend.blocks import Block, row_blocks
from rldata.stores.format import manifest as mf
from rldata.stores.format.files import inside
from rldata.stores.format.lock import WriterLock

BACKEND = "sharded"


def shard_name(worker: int) -> str:
    """The directory of worker ``worker``'s shard, relative to the parent."""
    return f"shard-{worker:05d}"


def write_parent(
    root: Path,
    shards: list[str],
    *,
    specs: Any = None,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    provenance: dict | None = None,
) -> None:
    """Write (atomically) the parent manifest listing ``shards``; keeps an existing one's fields."""
    try:
        m: dict[str, Any] | None = mf.read(root)
    except StoreNotFoundError:
        m = None
    if m is None:
        m = mf.new(
            backend=BACKEND,
            capacity=None,
            specs=specs.to_json() if specs is not None else None,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=provenance,
            commit_every=None,
            allow_nonfinite=False,
        )
    m["shards"] = list(shards)
    mf.write(root, m)


class ShardedStore(Store):
    """Read-only view over the shards a parent manifest lists, rows shard after shard."""

    supports_overwrite = False
    supports_random_read = True

    def __init__(self, root: Path, manifest: dict[str, Any], shards: list[Store]) -> None:
        self.path = str(root)
        self.backend = BACKEND
        self.capacity = None
        self.writable = False
        self._m = manifest
        self.shards = shards
        lengths = torch.tensor([len(s) for s in shards], dtype=torch.int64)
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)])

    @classmethod
    def attach(
        cls,
        root: Path,
        manifest: dict[str, Any],
        *,
        writable: bool,
        lock: WriterLock | None,
        durable: bool = True,
    ) -> ShardedStore:
        if writable:
            if lock is not None:
                lock.release()
            raise ConfigError(
                f"{root} is a sharded store: append through its shards "
                "(rldata collect --ray --resume), not through the parent"
            )
        names = manifest.get("shards") or []
        paths = [inside(Path(root), n, "a shard") for n in names]
        return cls(
            Path(root), manifest, [stores.open(p, verify=False) for p in paths]
        )  # checked as a whole by stores.open

    # --- metadata ---------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._m)

    @property
    def schema(self) -> dict[str, dict] | None:
        return next((s.schema for s in self.shards if s.schema is not None), None)

    @property
    def specs(self) -> Any:
        return next((s.specs for s in self.shards if s.specs is not None), None)

    @property
    def env_id(self) -> str | None:
        return (self._m.get("env") or {}).get("id")

    @property
    def env_kwargs(self) -> dict:
        return dict((self._m.get("env") or {}).get("kwargs") or {})

    @property
    def provenance(self) -> dict:
        return dict(self._m.get("provenance") or {})

    # --- writing is done by the shards ----------------------------------------------------
    def append(self, td: TensorDict) -> torch.Tensor:
        raise ConfigError(f"{self.path} is a sharded store: write through its shards")

    def commit(self) -> None:
        return None

    # --- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def readable(self) -> torch.Tensor:
        return torch.arange(len(self), dtype=torch.int64)

    def get(self, index: int | slice | torch.Tensor) -> TensorDict:
        if isinstance(index, int):
            return self.get(torch.tensor([index]))[0]
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        pos = as_positions(index, f"store {self.path}")
        if pos.numel() and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(
                f"{self.path}: positions must be in [0, {len(self)}), got {pos.min()}..{pos.max()}"
            )
        shard = torch.bucketize(pos, self._offsets[1:], right=True)
        parts, order = [], []
        for s in shard.unique().tolist():
            sel = (shard == s).nonzero().reshape(-1)
            parts.append(self.shards[s].get(pos[sel] - self._offsets[s]))
            order.append(sel)
        if not parts:
            return (
                self.shards[0].get(torch.zeros(0, dtype=torch.int64))
                if self.shards
                else TensorDict({}, [0])
            )
        rows = tensordict.cat(parts, 0)
        inverse = torch.empty_like(pos)
        inverse[torch.cat(order)] = torch.arange(pos.numel())
        return rows[inverse]

    def episodes(self) -> TensorDict:
        tables = []
        for s, store in enumerate(self.shards):
            eps = store.episodes().clone()
            eps.set("start", eps.get("start") + self._offsets[s])
            tables.append(eps)
        return tensordict.cat(tables, 0) if tables else TensorDict({}, [0])

    def segments(self) -> TensorDict:
        """Every shard's segment table, starts shifted to positions of the sharded view."""
        tables = []
        for s, store in enumerate(self.shards):
            seg = store.segments().clone()
            seg.set("start", seg.get("start") + self._offsets[s])
            tables.append(seg)
        return tensordict.cat(tables, 0) if tables else TensorDict({}, [0])

    def episode(self, i: int) -> TensorDict:
        counts = [len(store.episodes()) for store in self.shards]
        total = sum(counts)
        if not -total <= i < total:
            raise RowIndexError(
                f"store {self.path}: episode {i} out of range; it holds {total} episodes"
            )
        j = i + total if i < 0 else i  # a negative index counts from the last shard's end
        for store, n in zip(self.shards, counts):
            if j < n:
                return store.episode(j)
            j -= n
        raise AssertionError("unreachable: j < total")

    def next_traj_id(self) -> int:
        return max((s.next_traj_id() for s in self.shards), default=0)

    def close(self) -> None:
        for s in self.shards:
            s.close()

    # --- checking -------------------------------------------------------------------------
    def row_blocks(self, rows: int | None = None) -> Iterator[Block]:
        """The shards' blocks in shard order, with offsets and positions of this view
        (:func:`rldata.stores.backend.blocks.row_blocks`)."""
        for s, shard in enumerate(self.shards):
            base = int(self._offsets[s])
            for blk in row_blocks(shard, rows):
                yield Block(base + blk.offset, base + blk.offset, blk.rows)

    def faults(self, *, checksums: bool = True, invariants: bool = True) -> list[str]:
        """Faults of every shard, plus trajectory ids shared between shards."""
        found = [
            f
            for s in self.shards
            for f in stores.verify(s, checksums=checksums, invariants=invariants)
        ]
        owner: dict[int, int] = {}
        for k, s in enumerate(self.shards):
            for i in s.episodes()["traj_id"].tolist():
                if owner.setdefault(int(i), k) != k:
                    found.append(
                        f"{self.path}: traj id {i} appears in shards {owner[int(i)]} and {k}"
                    )
                    break
        return found

    def content_digest(self) -> str:
        """``sha256`` over the shards' digests, in shard order."""
        h = hashlib.sha256()
        for s in self.shards:
            h.update(stores.content_digest(s).encode())
        return "sha256:" + h.hexdigest()
