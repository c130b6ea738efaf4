"""``diff(a, b)``: how two stores differ: schema, specs, then episodes matched by content.

Episodes are matched by their content hash (:mod:`rldata.sharing.digest`), not by trajectory
id: ids are local names, so a merged store shares every episode with its sources, and two
stores of different backends holding the same episodes share them all.

Examples:
    >>> d = diff("datasets/a", "s3://bucket/b")      # doctest: +SKIP
    >>> len(d.only_a), len(d.only_b), len(d.shared)  # doctest: +SKIP
    (12, 0, 88)
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from rldata.sharing.compare import schema_differences, spec_differences
from rldata.sharing.digest import EpisodeHashes, digest_of, episode_hashes
from rldata.sharing.source import open_source
from rldata.sharing.urls import redact


@dataclass(frozen=True)
class Episode:
    """One episode, named by its content: its hash, length and return (its id is local)."""

    hash: str
    length: int
    ret: float | None
    traj_id: int  # the id the episode has in its own store, to find it there

    def line(self) -> str:
        """``3f2a9c1e0b7d  10 steps  return -12.345  (traj 0)``."""
        ret = "-" if self.ret is None else f"{self.ret:.3f}"
        return f"{self.hash[:12]}  {self.length:,} steps  return {ret}  (traj {self.traj_id})"


@dataclass(frozen=True)
class StoreDiff:
    """Differences between store A and store B."""

    a: str
    b: str
    digest_a: str
    digest_b: str
    schema: list[str] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    only_a: list[int] = field(default_factory=list)  # trajectory ids in A
    only_b: list[int] = field(default_factory=list)  # trajectory ids in B
    shared: list[tuple[int, int]] = field(default_factory=list)  # (id in A, id in B)
    episodes_only_a: list[Episode] = field(default_factory=list)  # only_a, by content
    episodes_only_b: list[Episode] = field(default_factory=list)  # only_b, by content

    @property
    def identical(self) -> bool:
        """Same schema, specs and episodes (the rows may still be stored in another order)."""
        return not (self.schema or self.specs or self.only_a or self.only_b)

    def lines(self, limit: int = 20) -> list[str]:
        """A human-readable report."""
        out = [f"A {self.a}  {self.digest_a}", f"B {self.b}  {self.digest_b}"]
        out.append("schema: same" if not self.schema else f"schema: {len(self.schema)} differences")
        out += [f"  {line}" for line in self.schema[:limit]]
        out.append("specs: same" if not self.specs else f"specs: {len(self.specs)} differences")
        out += [f"  {line}" for line in self.specs[:limit]]
        out.append(
            f"episodes: {len(self.only_a)} only in A, {len(self.only_b)} only in B, "
            f"{len(self.shared)} shared"
        )
        for name, eps in (("only in A", self.episodes_only_a), ("only in B", self.episodes_only_b)):
            if eps:
                out.append(f"  {name}: (episode hash, length, return)")
                out += [f"    {ep.line()}" for ep in eps[:limit]]
                if len(eps) > limit:
                    out.append(f"    (+{len(eps) - limit} more)")
        return out


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> StoreDiff:
    """Compare the stores at ``a`` and ``b`` (paths or URLs; URLs read through the cache).

    Raises:
        StoreNotFoundError: no store at ``a`` or ``b``.
    """
    with open_source(a) as sa, open_source(b) as sb:
        ha, hb = episode_hashes(sa), episode_hashes(sb)
        by_hash: dict[str, list[int]] = defaultdict(list)
        for tid, h in zip(hb.traj_ids, hb.hashes):
            by_hash[h].append(tid)
        only_a, shared = [], []
        for tid, h in zip(ha.traj_ids, ha.hashes):
            if by_hash.get(h):
                shared.append((tid, by_hash[h].pop(0)))
            else:
                only_a.append(tid)
        matched = {tb for _, tb in shared}
        only_b = [t for t in hb.traj_ids if t not in matched]

        def content(h: EpisodeHashes, ids: list[int]) -> list[Episode]:
            at = {t: i for i, t in enumerate(h.traj_ids)}
            rets = h.returns or [None] * len(h.traj_ids)
            return [Episode(h.hashes[at[t]], h.lengths[at[t]], rets[at[t]], t) for t in ids]

        return StoreDiff(
            a=redact(os.fspath(a)),
            b=redact(os.fspath(b)),
            digest_a=digest_of(sa),
            digest_b=digest_of(sb),
            schema=schema_differences(sa.schema, sb.schema),
            specs=spec_differences(sa.manifest.get("specs"), sb.manifest.get("specs")),
            only_a=only_a,
            only_b=only_b,
            shared=shared,
            episodes_only_a=content(ha, only_a),
            episodes_only_b=content(hb, only_b),
        )
