"""Building TensorDicts on the sample path: nested keys, no per-leaf re-validation."""

from __future__ import annotations

import torch
from tensordict import TensorDict

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


def _unsafe_td(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    return TensorDict._new_unsafe(source=entries, batch_size=batch, device=device, nested=False)


def _direct_td(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    td = _TD_NEW(TensorDict)
    state = td.__dict__
    state["_tensordict"] = entries
    state["_device"] = device
    state["_batch_size"] = batch
    state["_td_dim_names"] = None
    return td


def _pick_builder():
    """The direct builder when it makes exactly what ``_new_unsafe`` makes, else that."""
    probe = {"a": torch.zeros(2)}
    size, cpu = torch.Size([2]), torch.device("cpu")
    ref = _unsafe_td(dict(probe), size, cpu)
    try:
        got = _direct_td(dict(probe), size, cpu)
        same = set(got.__dict__) == set(ref.__dict__) - {"_has_mps_val"} and (got == ref).all()
    except Exception:  # a tensordict release with other internals
        same = False
    return _direct_td if same else _unsafe_td


_TD_NEW = object.__new__
build_td = _pick_builder()
"""``build_td(entries, batch, device)``: a TensorDict over checked leaves, no validation.

Sampling builds one TensorDict per batch (and one per nested key); tensordict's public
constructor re-checks every leaf, which costs as much as the gather itself. Every leaf
here comes from a storage whose schema was checked on write. The direct builder sets
the four fields ``TensorDict._new_unsafe`` sets, and is used only when a probe at
import shows the two agree.
"""


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
