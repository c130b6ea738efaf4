"""Building TensorDicts on the sample path: nested keys, no per-leaf re-validation."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rldata import _compat

Key = tuple[str, ...]


def nest(flat: dict[Key, torch.Tensor]) -> dict:
    """``{("next", "reward"): t}`` -> ``{"next": {"reward": t}}`` (input to ``TensorDict``)."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return out


def build_td(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    """A TensorDict over checked leaves, without tensordict's per-leaf re-validation.

    Sampling builds one TensorDict per batch (and one per nested key); tensordict's public
    constructor re-checks every leaf, which costs as much as the gather itself. Every leaf
    here comes from a storage whose schema was checked on write. The internal used, and
    its public fallback, live in :mod:`rldata._compat`.
    """
    return _compat.new_td(entries, batch, device)


def make_td(flat: dict[Key, torch.Tensor], batch: int, device: torch.device | None) -> TensorDict:
    """A TensorDict ``[batch]`` from checked flat leaves (nested keys become sub-TensorDicts)."""
    size = torch.Size([batch])

    def build(node: dict) -> TensorDict:
        return build_td(
            {k: build(v) if isinstance(v, dict) else v for k, v in node.items()}, size, device
        )

    return build(nest(flat))


def tree_plan(keys: list[Key]) -> tuple[dict[Key, int], list[tuple[int, str]]]:
    """Number the sub-TensorDicts of a key set: node ``i + 1`` hangs under ``parents[i]``.

    Returns ``{prefix: node}`` (the root prefix ``()`` is node 0) and, per non-root node in
    creation order (parents first), its ``(parent node, name)``.
    """
    nodes: dict[Key, int] = {(): 0}
    parents: list[tuple[int, str]] = []
    for key in keys:
        for depth in range(1, len(key)):
            prefix = key[:depth]
            if prefix not in nodes:
                nodes[prefix] = len(nodes)
                parents.append((nodes[prefix[:-1]], prefix[-1]))
    return nodes, parents


def build_tree(
    dicts: list[dict], parents: list[tuple[int, str]], n: int, device: torch.device | None
) -> TensorDict:
    """Assemble per-node entry dicts (see :func:`tree_plan`) into one TensorDict ``[n]``."""
    size = torch.Size([n])
    for i in range(len(parents) - 1, -1, -1):
        parent, name = parents[i]
        dicts[parent][name] = build_td(dicts[i + 1], size, device)
    return build_td(dicts[0], size, device)
