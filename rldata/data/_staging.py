"""Staging single-row adds: read a row's leaves fast, land many rows in one copy per group.

The tensordict / torch internals used (a TensorDict's entry dict, version counters, torch's
C++ tensor guards) and their public fallbacks live in :mod:`rldata._compat`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import chain
from operator import itemgetter

import torch
from tensordict import TensorDict, TensorDictBase

from rldata import _compat
from rldata.data._layout import REWARD_KEY, Key, Packed

_REGUARDS = 16  # rebuild the guard for rows of another kind at most this many times


class RowReader:
    """Reads one row's leaves in packed-group order straight from TensorDict internals.

    ``add`` is called once per environment step, so a row costs one C-level lookup per
    nested level, one type/dtype/shape check per leaf against the schema's signature and
    one sum of version counters. Any surprise (missing or extra key, other shape or
    dtype, a TensorDict subclass) returns None, and the caller falls back to the general
    path, which raises the precise error.
    """

    def __init__(self, packed: Packed) -> None:
        nodes: dict[Key, int] = {(): 0}
        parents: list[tuple[int, str]] = []
        sizes: dict[Key, set[str]] = {(): set()}
        columns = [c for g in packed.groups for c in g.columns]  # group order
        for col in columns:
            for depth in range(1, len(col.key)):
                sub = col.key[:depth]
                sizes.setdefault(sub[:-1], set()).add(sub[-1])
                if sub not in nodes:
                    nodes[sub] = len(nodes)
                    parents.append((nodes[sub[:-1]], sub[-1]))
                    sizes.setdefault(sub, set())
            sizes[col.key[:-1]].add(col.key[-1])
        lengths = [len(sizes[k]) for k in nodes]
        self.root_length = lengths[0]
        # (parent node, name, entry count) of each sub-TensorDict, parents first
        self.parents = [(p, name, n) for (p, name), n in zip(parents, lengths[1:])]
        # per node, one itemgetter fetching its leaves; they come out node after node and
        # ``to_group`` reorders them to group order (the order of ``columns``)
        by_node: dict[int, list[int]] = {}
        for i, col in enumerate(columns):
            by_node.setdefault(nodes[col.key[:-1]], []).append(i)
        self.getters: list[tuple[int, itemgetter, bool]] = []
        fetched: list[int] = []
        for node, idx in by_node.items():
            names = [columns[i].key[-1] for i in idx]
            self.getters.append((node, itemgetter(*names), len(names) > 1))
            fetched.extend(idx)
        where = {col_i: pos for pos, col_i in enumerate(fetched)}
        self.to_group = itemgetter(*(where[i] for i in range(len(columns))))
        self.single = len(columns) == 1
        # the signature a row's leaves must match: (dtype, shape) per leaf, group order
        self.signature = [(c.dtype, torch.Size(c.shape)) for c in columns]
        # each group's leaves within a row, and whether they need flattening to 1-D
        # (a lone 0-dim column is landed with stack instead of cat)
        self.picks: list[tuple[itemgetter, bool, bool]] = []
        start = 0
        for g in packed.groups:
            n = len(g.columns)
            flat = any(len(c.shape) > 1 or (len(c.shape) == 0 and n > 1) for c in g.columns)
            self.picks.append((itemgetter(*range(start, start + n)), n > 1, flat))
            start += n
        # where the reward leaf sits in a row, when it is one float
        self.reward: int | None = None
        for i, col in enumerate(columns):
            if col.key == REWARD_KEY and col.dtype.is_floating_point and col.width == 1:
                self.reward = i
        # a guard learnt from the first row that passes the loop: a row it accepts passes
        # the loop too (it is stricter: also device, requires_grad, grad mode), so it only
        # ever saves time; a row it refuses is checked by the loop
        self.guard: Callable[..., bool | None] | None = None
        self.reguards = _REGUARDS if _compat.TensorGuards is not None else 0

    def _learn(self, leaves: tuple) -> None:
        self.reguards -= 1
        try:
            guard = _compat.TensorGuards(
                *leaves,
                dynamic_dims_sizes=[list(s) for _, s in self.signature],
                dynamic_dims_strides=[[None] * len(s) for _, s in self.signature],
            ).check
            self.guard = guard if guard(*leaves) else None
        except (TypeError, RuntimeError):  # a private API: if it changes, the loop alone
            self.guard, self.reguards = None, 0

    def read(self, td: TensorDictBase, finite_reward: bool) -> tuple[tuple, int] | None:
        """The row's leaves in group order and the sum of their version counters.

        Returns None on any surprise (the caller then takes the general path).
        """
        if type(td) is not TensorDict:
            return None
        entries = _compat.entries
        root = entries(td)
        if len(root) != self.root_length:
            return None
        dicts = [root]
        for parent, name, length in self.parents:
            sub = dicts[parent].get(name)
            if type(sub) is not TensorDict:
                return None
            sub_entries = entries(sub)
            if len(sub_entries) != length:
                return None
            dicts.append(sub_entries)
        fetched: list = []
        try:
            for node, get, many in self.getters:
                if many:
                    fetched.extend(get(dicts[node]))
                else:
                    fetched.append(get(dicts[node]))
        except KeyError:
            return None
        leaves = (fetched[0],) if self.single else self.to_group(fetched)
        guard = self.guard
        learn = False
        if guard is None or not guard(*leaves):
            tensor = torch.Tensor
            # exact type: subclasses (memmap, parameters) take the general path
            for v, (dtype, shape) in zip(leaves, self.signature):
                if v.__class__ is not tensor or v.dtype is not dtype or v.shape != shape:
                    return None
            learn = self.reguards > 0
        reward = self.reward
        if finite_reward and reward is not None and not math.isfinite(leaves[reward].item()):
            return None
        try:
            # versions only ever grow, so an unchanged sum means no leaf was modified since
            versions = sum(map(_compat.version, leaves))
        except RuntimeError:  # inference tensors keep no version: the general path copies
            return None
        if learn:
            self._learn(leaves)
        return leaves, versions

    @staticmethod
    def version_sum(rows: list[tuple]) -> int:
        """The summed version counters of every leaf of ``rows`` now."""
        return sum(map(_compat.version, chain.from_iterable(rows)))

    def blocks(self, rows: list[tuple]) -> list[list[torch.Tensor]]:
        """Per group, the leaves of ``rows`` row after row (1-D unless landed by stack)."""
        out = []
        for pick, many, flat in self.picks:
            pieces = list(chain.from_iterable(map(pick, rows)) if many else map(pick, rows))
            if flat:
                pieces = [p.reshape(-1) for p in pieces]
            out.append(pieces)
        return out
