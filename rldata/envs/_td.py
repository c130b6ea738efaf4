"""Fast TensorDict plumbing for the per-step path of environments.

An environment step builds a few small TensorDicts; the validated ``TensorDict(...)``
constructor costs several microseconds each, which is as much as a cheap simulator
step. These helpers build TensorDicts from already-checked tensors and stack a
rollout key by key, which is several times faster than ``torch.stack`` of TensorDicts.
The tensordict internals they use, and the public fallbacks, live in :mod:`rldata._compat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata import _compat


def make_td(
    source: dict[Any, Any], batch_size: torch.Size, device: torch.device | None
) -> TensorDict:
    """A TensorDict over ``source`` whose tensors already have the right batch dims and device.

    Nested plain dicts become sub-TensorDicts. Nothing is validated: callers pass
    tensors they built themselves.
    """
    return _compat.new_td_nested(source, batch_size, device)


def set_fast(td: TensorDictBase, key: str, value: Any) -> None:
    """``td.set(key, value)`` without re-validating a value the caller built to fit ``td``."""
    if type(td) is TensorDict and not td.is_locked:
        _compat.set_unchecked(td, key, value)
    else:
        td.set(key, value)


def get(td: TensorDictBase, key: Any) -> Any:
    """``td.get(key, None)``, skipping tensordict's key parsing for a top-level string key."""
    if type(td) is TensorDict and type(key) is str:
        return _compat.entries(td).get(key)
    return td.get(key, None)


def items(td: TensorDictBase) -> Any:
    """Top-level ``(key, value)`` pairs of ``td``, without tensordict's per-item overhead."""
    return _compat.entries(td).items() if type(td) is TensorDict else td.items()


def _stack_level(dicts: list[dict], batch: torch.Size, dim: int) -> dict[str, Any] | None:
    """Stack one level of plain-TensorDict contents; None when rows differ in structure."""
    keys = dicts[0].keys()
    if any(d.keys() != keys for d in dicts):
        return None
    out: dict[str, Any] = {}
    for key, first in dicts[0].items():
        column = [d[key] for d in dicts]
        if isinstance(first, torch.Tensor):
            out[key] = torch.stack(column, dim)
        elif (
            type(first) is TensorDict
            and first.batch_size == batch
            and all(type(v) is TensorDict for v in column)
        ):
            sub = _stack_level([_compat.entries(v) for v in column], batch, dim)
            if sub is None:
                return None
            out[key] = sub
        else:
            return None
    return out


def stack_tds(tds: Sequence[TensorDictBase], dim: int) -> TensorDictBase:
    """Stack same-structured TensorDicts along ``dim`` (a batch dim), key by key.

    Plain TensorDicts with one key set are stacked column by column (several times
    faster than ``torch.stack`` of TensorDicts); anything else falls back to it.
    """
    first = tds[0]
    batch = list(first.batch_size)
    batch.insert(dim, len(tds))
    if all(type(td) is TensorDict for td in tds):
        try:
            stacked = _stack_level([_compat.entries(td) for td in tds], first.batch_size, dim)
        except (TypeError, RuntimeError):  # ragged shapes, mixed dtypes
            stacked = None
        if stacked is not None:
            return make_td(stacked, torch.Size(batch), first.device)
    out: Any = torch.stack(list(tds), dim)  # tensordict makes torch.stack return a TensorDict
    return out.contiguous()
