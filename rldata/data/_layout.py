"""Row schema and the packed in-memory layout behind :class:`LazyTensorStorage`.

Sampling speed is decided by how many torch calls a batch costs. Keys that share a
dtype are kept side by side in one ``[capacity, D]`` tensor, so a batch is one
``index_select`` per dtype followed by cheap views, instead of one gather per key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase

from rldata.errors import SchemaMismatchError, TedFormatError
from rldata.ted import TED_KEYS, key_name

Key = tuple[str, ...]
REWARD_KEY: Key = TED_KEYS.nxt(TED_KEYS.reward)


@dataclass(frozen=True)
class Column:
    """One leaf of a row: its nested key, per-row shape and dtype."""

    key: Key
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def width(self) -> int:
        return math.prod(self.shape)


def flatten(td: TensorDictBase) -> dict[Key, torch.Tensor]:
    """Leaves of ``td`` as ``{key tuple: tensor}``; walks plain TensorDicts without overhead."""
    out: dict[Key, torch.Tensor] = {}
    if type(td) is TensorDict:
        _walk(td, (), out)
        return out
    for key, value in td.items(include_nested=True, leaves_only=True):
        out[(key,) if isinstance(key, str) else tuple(key)] = value
    return out


def _walk(td: TensorDict, prefix: Key, out: dict[Key, torch.Tensor]) -> None:
    for name, value in td._tensordict.items():
        if type(value) is TensorDict:
            _walk(value, (*prefix, name), out)
        elif isinstance(value, TensorDictBase):
            for key, leaf in value.items(include_nested=True, leaves_only=True):
                sub = (key,) if isinstance(key, str) else tuple(key)
                out[(*prefix, name, *sub)] = leaf
        else:
            out[(*prefix, name)] = value


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


class Schema:
    """The keys, per-row shapes and dtypes fixed by a storage's first write."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.by_key = {c.key: c for c in columns}

    @classmethod
    def from_flat(cls, flat: dict[Key, torch.Tensor], batch_dims: int) -> Schema:
        cols = []
        for key, value in flat.items():
            if not isinstance(value, torch.Tensor):
                raise TedFormatError(
                    f"key {key_name(key)!r}: expected a tensor, got {type(value).__name__}"
                )
            cols.append(Column(key, tuple(value.shape[batch_dims:]), value.dtype))
        return cls(cols)

    def to_json(self) -> dict[str, dict]:
        """``{"next.reward": {"shape": [1], "dtype": "float32"}}``, the store manifest's form."""
        return {
            key_name(c.key): {"shape": list(c.shape), "dtype": str(c.dtype).removeprefix("torch.")}
            for c in self.columns
        }

    def check(self, flat: dict[Key, torch.Tensor], lead: tuple[int, ...]) -> None:
        """Raise :class:`SchemaMismatchError` naming the first key that does not fit.

        Args:
            flat: the leaves of the write.
            lead: the batch dims the write claims (``()`` for one row).
        """
        if len(flat) != len(self.columns) or any(k not in self.by_key for k in flat):
            missing = [key_name(k) for k in self.by_key if k not in flat]
            extra = [key_name(k) for k in flat if k not in self.by_key]
            if missing:
                raise SchemaMismatchError(
                    f"key {missing[0]!r} is missing from the write; expected keys "
                    f"{sorted(key_name(k) for k in self.by_key)}, extra given {extra}"
                )
            raise SchemaMismatchError(
                f"key {extra[0]!r} is not in the storage schema; expected keys "
                f"{sorted(key_name(k) for k in self.by_key)}"
            )
        nlead = len(lead)
        for key, value in flat.items():
            col = self.by_key[key]
            if value.dtype != col.dtype:
                raise SchemaMismatchError(
                    f"key {key_name(key)!r}: expected dtype {col.dtype}, got {value.dtype}"
                )
            shape = value.shape
            if shape[nlead:] != col.shape or shape[:nlead] != lead:
                raise SchemaMismatchError(
                    f"key {key_name(key)!r}: expected shape {(*lead, *col.shape)}, "
                    f"got {tuple(shape)}"
                )


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

    def __init__(self, schema: Schema, rows: int, device: torch.device) -> None:
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
        self.parents = parents
        self.lengths = [len(sizes[k]) for k in nodes]
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
        dicts = [td._tensordict]
        for parent, name in self.parents:
            sub = dicts[parent].get(name)
            if type(sub) is not TensorDict:
                return False
            dicts.append(sub._tensordict)
        for d, n in zip(dicts, self.lengths):
            if len(d) != n:
                return False
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
