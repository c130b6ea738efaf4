"""The packed layout behind :class:`LazyTensorStorage` (its schema: ``stores.format.schema.RowSchema``).

Sampling speed is decided by how many torch calls a batch costs. Keys that share a
dtype are kept side by side in one ``[capacity, D]`` tensor, so a batch is one
``index_select`` per dtype followed by cheap views, instead of one gather per key.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict, TensorDictBase

from rldata import _compat
from rldata.data._tdbuild import Key, build_tree, tree_plan
from rldata.errors import TedFormatError
from rldata.stores.format.schema import Column, RowSchema
from rldata.ted import TED_KEYS, key_name

REWARD_KEY: Key = TED_KEYS.nxt(TED_KEYS.reward)


def flatten(td: TensorDictBase) -> dict[Key, torch.Tensor]:
    """Leaves of ``td`` as ``{key tuple: tensor}``; walks plain TensorDicts without overhead."""
    out: dict[Key, torch.Tensor] = {}
    if type(td) is TensorDict:
        _walk(td, (), out)
        return out
    for key, value in td.items(include_nested=True, leaves_only=True):
        out[(key,) if isinstance(key, str) else tuple(key)] = value  # type: ignore[assignment]
    return out


def _walk(td: TensorDict, prefix: Key, out: dict[Key, torch.Tensor]) -> None:
    for name, value in _compat.entries(td).items():
        if type(value) is TensorDict:
            _walk(value, (*prefix, name), out)
        elif isinstance(value, TensorDictBase):
            for key, leaf in value.items(include_nested=True, leaves_only=True):
                sub = (key,) if isinstance(key, str) else tuple(key)
                out[(*prefix, name, *sub)] = leaf  # type: ignore[assignment]
        else:
            out[(*prefix, name)] = value


def check_finite_reward(flat: dict[Key, torch.Tensor]) -> None:
    """Refuse NaN / inf rewards: they poison every loss that samples them later."""
    reward = flat.get(REWARD_KEY)
    if reward is None or not reward.is_floating_point():
        return
    ok = math.isfinite(reward.item()) if reward.numel() == 1 else bool(torch.isfinite(reward).all())
    if not ok:
        raise TedFormatError(
            f"key {key_name(REWARD_KEY)!r}: expected finite values, got NaN or inf "
            "(pass allow_nonfinite=True to the storage to keep them)"
        )


_WIDE_BYTES = 1024


class _Group:
    """All columns of one dtype, packed side by side in ``buf[:, offset:offset + width]``."""

    def __init__(self, dtype: torch.dtype, columns: list[Column]) -> None:
        self.dtype = dtype
        self.columns = columns
        self.widths = [c.width for c in columns]
        self.width = sum(self.widths)
        self.keys = [c.key for c in columns]
        # a split piece [B, w] needs a view only when the row shape is not already (w,)
        self.views = [None if len(c.shape) == 1 else c.shape for c in columns]
        self.scalar = len(columns) == 1 and columns[0].shape == ()
        self.slots: list[tuple[int, str, tuple[int, ...] | None]] = []
        self.buf = torch.empty(0)


def stack_pieces(g: _Group, pieces: list[torch.Tensor], k: int) -> torch.Tensor:
    """``k`` rows of one group, given as their leaves row after row, as a ``[k, width]`` block."""
    if g.scalar:
        return torch.stack(pieces).view(k, 1)
    return torch.cat(pieces).view(k, g.width)


class Packed:
    """Rows of a schema in one contiguous ``[rows, D]`` tensor per dtype."""

    def __init__(self, schema: RowSchema, rows: int, device: torch.device) -> None:
        by_dtype: dict[object, list[Column]] = {}
        for col in schema.columns:
            # wide columns (pixels) gain nothing from packing: their gather is bandwidth-bound
            wide = col.width * col.dtype.itemsize >= _WIDE_BYTES
            by_dtype.setdefault(col.key if wide else col.dtype, []).append(col)
        self.groups = [_Group(cols[0].dtype, cols) for cols in by_dtype.values()]
        self.device = device
        nodes, self.parents = tree_plan([c.key for c in schema.columns])
        for g in self.groups:
            g.slots = [(nodes[c.key[:-1]], c.key[-1], v) for c, v in zip(g.columns, g.views)]
        for g in self.groups:
            g.buf = torch.empty(rows, g.width, dtype=g.dtype, device=device)

    @property
    def rows(self) -> int:
        return self.groups[0].buf.shape[0]

    def grow(self, rows: int, keep: int) -> None:
        """Reallocate to ``rows`` rows, keeping the first ``keep``."""
        for g in self.groups:
            new = torch.empty(rows, g.width, dtype=g.dtype, device=self.device)
            new[:keep].copy_(g.buf[:keep])
            g.buf = new

    def _pieces(self, g: _Group, flat: dict[Key, torch.Tensor], n: int) -> list[torch.Tensor]:
        out = []
        dev = self.device
        for key, w in zip(g.keys, g.widths):
            v = flat[key]
            if v.device != dev:
                v = v.to(dev)
            out.append(v.reshape(n, w))
        return out

    def write_slice(self, start: int, stop: int, flat: dict[Key, torch.Tensor]) -> None:
        n = stop - start
        for g in self.groups:
            pieces = self._pieces(g, flat, n)
            dst = g.buf[start:stop]
            if len(pieces) == 1:
                dst.copy_(pieces[0])
            else:
                torch.cat(pieces, 1, out=dst)

    def write_index(self, index: torch.Tensor, flat: dict[Key, torch.Tensor]) -> None:
        n = index.shape[0]
        for g in self.groups:
            pieces = self._pieces(g, flat, n)
            src = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 1)
            g.buf.index_copy_(0, index, src)

    def write_row(self, pos: int, flat: dict[Key, torch.Tensor]) -> None:
        for g in self.groups:
            dst = g.buf[pos]
            pieces = []
            for key in g.keys:
                v = flat[key]
                pieces.append(v if v.dim() == 1 else v.reshape(-1))
            if len(pieces) == 1:
                dst.copy_(pieces[0])
            else:
                torch.cat(pieces, out=dst)

    def write_staged(self, start: int, k: int, blocks: list[list[torch.Tensor]]) -> None:
        """Land ``k`` consecutive rows from ``start``, given per group as their leaves."""
        for g, pieces in zip(self.groups, blocks):
            g.buf[start : start + k].copy_(stack_pieces(g, pieces, k), non_blocking=True)

    def gather_td(
        self,
        index: torch.Tensor,
        device: torch.device | None,
        extra: dict[Key, torch.Tensor] | None,
    ) -> TensorDict:
        """Rows at ``index`` as a TensorDict: one gather per group, views, no validation."""
        n = index.shape[0]
        dicts: list[dict] = [{} for _ in range(len(self.parents) + 1)]
        for g in self.groups:
            rows = g.buf.index_select(0, index)
            if device is not None and rows.device != device:
                rows = rows.to(device, non_blocking=True)
            if len(g.slots) == 1:
                node, name, shape = g.slots[0]
                dicts[node][name] = rows if shape is None else rows.view(n, *shape)
                continue
            for (node, name, shape), part in zip(
                g.slots, torch.split_with_sizes(rows, g.widths, 1)
            ):
                dicts[node][name] = part if shape is None else part.view(n, *shape)
        if extra:
            for key, value in extra.items():
                dicts[0][key[-1]] = value
        return build_tree(dicts, self.parents, n, device)

    def column(self, key: Key, stop: int) -> torch.Tensor:
        """A strided view of one column over rows ``[0, stop)`` (for samplers' index math)."""
        for g in self.groups:
            off = 0
            for k, w, shape in zip(g.keys, g.widths, g.views):
                if k == key:
                    v = g.buf[:stop, off : off + w]
                    return v if shape is None else v.view(stop, *shape)
                off += w
        raise KeyError(key)
