"""Staging single-row adds: read a row's leaves fast, land many rows in one copy per group."""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.data._layout import REWARD_KEY, Key, Packed


class RowReader:
    """Reads one row's leaves in packed-group order straight from TensorDict internals.

    ``add`` is called once per environment step, so its cost is a handful of dict
    lookups and attribute checks per key. Any surprise (missing or extra key, other
    shape or dtype, a TensorDict subclass) returns None, and the caller falls back to
    the general path, which raises the precise error.
    """

    def __init__(self, packed: Packed) -> None:
        nodes: dict[Key, int] = {(): 0}
        parents: list[tuple[int, str]] = []
        sizes: dict[Key, set[str]] = {(): set()}
        for g in packed.groups:
            for col in g.columns:
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
        # a piece is reshaped to 1-D unless it is 1-D already, or a lone 0-dim column
        # (its group is landed with stack instead of cat)
        self.plan = [
            [
                (
                    nodes[c.key[:-1]],
                    c.key[-1],
                    c.dtype,
                    torch.Size(c.shape),
                    len(c.shape) > 1 or (len(c.shape) == 0 and len(g.columns) > 1),
                )
                for c in g.columns
            ]
            for g in packed.groups
        ]
        self.per_row = [len(g.columns) for g in packed.groups]
        # the reward leaf, as (group, position counted back from the end of a row's leaves)
        self.reward: tuple[int, int] | None = None
        for gi, g in enumerate(packed.groups):
            for ci, col in enumerate(g.columns):
                if col.key == REWARD_KEY and col.dtype.is_floating_point and col.width == 1:
                    self.reward = (gi, len(g.columns) - ci)

    def read(
        self,
        td: TensorDictBase,
        pieces: list[list[torch.Tensor]],
        versions: list[list[int]],
        finite_reward: bool,
    ) -> bool:
        """Append the row's leaves (1-D) and version counters to the per-group stage lists.

        Returns False on any surprise; the caller then calls :meth:`drop_pending`.
        """
        if type(td) is not TensorDict:
            return False
        root = td._tensordict
        if len(root) != self.root_length:
            return False
        dicts = [root]
        for parent, name, length in self.parents:
            sub = dicts[parent].get(name)
            if type(sub) is not TensorDict:
                return False
            entries = sub._tensordict
            if len(entries) != length:
                return False
            dicts.append(entries)
        tensor = torch.Tensor
        for plan, staged, seen in zip(self.plan, pieces, versions):
            piece, version = staged.append, seen.append
            for node, name, dtype, shape, flat in plan:
                v = dicts[node].get(name)
                # exact type: subclasses (memmap, parameters) take the general path
                if type(v) is not tensor or v.dtype is not dtype or v.shape != shape:
                    return False
                piece(v.reshape(-1) if flat else v)
                version(v._version)
        if finite_reward and self.reward is not None:
            gi, back = self.reward
            return math.isfinite(pieces[gi][-back].item())
        return True

    def drop_pending(
        self, pieces: list[list[torch.Tensor]], versions: list[list[int]], staged_rows: int
    ) -> None:
        """Forget leaves a refused row left beyond the ``staged_rows`` rows already staged."""
        for g, (staged, seen) in enumerate(zip(pieces, versions)):
            keep = staged_rows * self.per_row[g]
            del staged[keep:], seen[keep:]

    def split(
        self, pieces: list[list[torch.Tensor]], versions: list[list[int]], k: int
    ) -> tuple[list, list, list, list]:
        """The first ``k`` rows' leaves and versions, and what follows them, per group."""
        head: list = []
        tail: list = []
        vhead: list = []
        vtail: list = []
        for g, (staged, seen) in enumerate(zip(pieces, versions)):
            m = k * self.per_row[g]
            if len(staged) == m:
                head.append(staged)
                tail.append([])
                vhead.append(seen)
                vtail.append([])
            else:
                head.append(staged[:m])
                tail.append(staged[m:])
                vhead.append(seen[:m])
                vtail.append(seen[m:])
        return head, tail, vhead, vtail
