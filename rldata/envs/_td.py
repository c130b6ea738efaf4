"""Fast TensorDict plumbing for the per-step path of environments.

An environment step builds a few small TensorDicts; the validated ``TensorDict(...)``
constructor costs several microseconds each, which is as much as a cheap simulator
step. These helpers build TensorDicts from already-checked tensors and stack a
rollout key by key, which is several times faster than ``torch.stack`` of TensorDicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

_NEW = getattr(TensorDict, "_new_unsafe", None)


def make_td(
    source: dict[Any, Any], batch_size: torch.Size, device: torch.device | None
) -> TensorDict:
    """A TensorDict over ``source`` whose tensors already have the right batch dims and device.

    Nested plain dicts become sub-TensorDicts. Nothing is validated: callers pass
    tensors they built themselves.
    """
    if _NEW is not None:
        return _NEW(source, batch_size=batch_size, device=device)
    return TensorDict(source, batch_size=batch_size, device=device)  # pragma: no cover


def set_fast(td: TensorDictBase, key: str, value: Any) -> None:
    """``td.set(key, value)`` without re-validating a value the caller built to fit ``td``."""
    if type(td) is TensorDict and not td.is_locked:
        td._set_str(key, value, inplace=False, validated=True)
    else:
        td.set(key, value)


def items(td: TensorDictBase) -> Any:
    """Top-level ``(key, value)`` pairs of ``td``, without tensordict's per-item overhead."""
    return td._tensordict.items() if type(td) is TensorDict else td.items()


def _leaves(
    td: TensorDictBase, prefix: tuple[str, ...], out: dict[tuple[str, ...], torch.Tensor]
) -> None:
    items = td._tensordict.items() if type(td) is TensorDict else td.items()
    for key, value in items:
        if isinstance(value, torch.Tensor):
            out[(*prefix, key)] = value
        elif isinstance(value, TensorDictBase):
            _leaves(value, (*prefix, key), out)
        else:  # non-tensor data: let torch.stack's fallback handle it
            out[(*prefix, key)] = value


def leaves(td: TensorDictBase) -> dict[tuple[str, ...], torch.Tensor]:
    """Every leaf tensor of ``td`` keyed by its full key path."""
    out: dict[tuple[str, ...], torch.Tensor] = {}
    _leaves(td, (), out)
    return out


def nest(flat: dict[tuple[str, ...], torch.Tensor]) -> dict[str, Any]:
    """Turn ``{("next", "reward"): t}`` into ``{"next": {"reward": t}}``."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def stack_tds(tds: Sequence[TensorDictBase], dim: int) -> TensorDictBase:
    """Stack same-structured TensorDicts along ``dim`` (a batch dim), key by key.

    Falls back to ``torch.stack`` when the rows do not share one set of keys.
    """
    first = tds[0]
    flat = [leaves(td) for td in tds]
    keys = flat[0].keys()
    if any(f.keys() != keys for f in flat[1:]):
        return torch.stack(list(tds), dim).contiguous()
    try:
        stacked = {k: torch.stack([f[k] for f in flat], dim) for k in keys}
    except (TypeError, RuntimeError):  # non-tensor entries or ragged shapes
        return torch.stack(list(tds), dim).contiguous()
    batch = list(first.batch_size)
    batch.insert(dim, len(tds))
    return make_td(nest(stacked), torch.Size(batch), first.device)
