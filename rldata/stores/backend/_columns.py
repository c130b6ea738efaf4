"""Numpy columns of store rows: the decoded form the zarr and parquet payloads cache.

Both backends decode rows into plain numpy arrays (one per key, rows first) and gather
samples from them; these helpers map schema dtypes to numpy (``bfloat16`` travels as its
``int16`` bits, since numpy has no bfloat16), build the nested TensorDict of a gather, and
hold append-only columns that grow by doubling.
"""

from __future__ import annotations

import math
import mmap

import numpy as np
import torch
from tensordict import TensorDict

from rldata.stores.format import schema as sch

LAZY_BYTES = 1 << 20  # columns from this size on are mapped anonymous pages (see zeros)
_BITS = {"bfloat16": np.dtype("int16")}  # dtypes numpy lacks, stored as their raw bits


def np_dtype(name: str) -> np.dtype:
    """The numpy dtype that holds schema dtype ``name`` bit for bit."""
    if name in _BITS:
        return _BITS[name]
    return np.dtype(str(torch.empty((), dtype=sch.dtype_of(name)).numpy().dtype))


def to_numpy(t: torch.Tensor, name: str) -> np.ndarray:
    """A tensor's values as numpy (no copy for contiguous CPU tensors)."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if name in _BITS:
        t = t.contiguous().view(torch.int16)
    return t.numpy()


def to_torch(a: np.ndarray, name: str) -> torch.Tensor:
    """A numpy column back as a tensor of schema dtype ``name`` (no copy)."""
    t = torch.from_numpy(a)
    return t.view(sch.dtype_of(name)) if name in _BITS else t


def tree(tensors: dict[str, torch.Tensor], n: int) -> TensorDict:
    """Flat dotted names -> tensors ``[n, ...]`` as a nested TensorDict ``[n]``."""
    root: dict = {}
    for name, value in tensors.items():
        *parents, leaf = sch.key_tuple(name)
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return TensorDict(root, batch_size=[n])


def empty(schema: dict[str, dict], rows: int) -> dict[str, np.ndarray]:
    """Zeroed columns of ``rows`` rows for every key of ``schema``."""
    return {name: zeros((rows, *e["shape"]), np_dtype(e["dtype"])) for name, e in schema.items()}


def zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.zeros``, from fresh anonymous pages when large: the kernel zeroes a page when it
    is first touched, so a cache of a million rows costs nothing until rows are decoded into
    it (``np.zeros`` may memset recycled heap memory first: ~8 ms per open of 100 MB)."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < LAZY_BYTES:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).reshape(shape)


def grow(cols: dict[str, np.ndarray], rows: int, keep: int) -> dict[str, np.ndarray]:
    """Columns with room for ``rows`` rows, keeping the first ``keep`` rows of ``cols``."""
    out = {}
    for name, a in cols.items():
        b = zeros((rows, *a.shape[1:]), a.dtype)
        b[:keep] = a[:keep]
        out[name] = b
    return out


def take(cols: dict[str, np.ndarray], schema: dict[str, dict], index: np.ndarray) -> TensorDict:
    """Rows ``index`` of every column as a TensorDict (one gather per key)."""
    return tree(
        {
            name: to_torch(np.take(a, index, axis=0), schema[name]["dtype"])
            for name, a in cols.items()
        },
        len(index),
    )


def obs_keys(schema: dict[str, dict]) -> list[str]:
    """Keys stored again under ``next`` whose ``next`` value may repeat the following row's
    (observations): root keys other than the flags, ``action`` and ``collector.*``."""
    reserved = {"done", "terminated", "truncated", "action"}
    return [
        k
        for k in schema
        if not k.startswith(("next.", "collector.")) and k not in reserved and f"next.{k}" in schema
    ]


def implied(cur: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """``implied[t]``: row ``t``'s ``next`` value is, bit for bit, row ``t + 1``'s value (so
    need not be stored); the last row is never implied."""
    n = len(cur)
    out = np.zeros(n, dtype=bool)
    if n > 1:
        a = np.ascontiguousarray(nxt[:-1]).view(np.uint8).reshape(n - 1, -1)
        b = np.ascontiguousarray(cur[1:]).view(np.uint8).reshape(n - 1, -1)
        out[:-1] = (a == b).all(1)
    return out


def fill_implied(cur: np.ndarray, nxt: np.ndarray, implied_rows: np.ndarray) -> None:
    """Rebuild ``nxt`` in place: rows marked implied take the following row of ``cur``.

    Nearly every row is implied in a store of whole episodes (only an episode's last row is
    explicit), so one shifted copy plus the explicit rows put back costs ~10x less than a
    gather of the implied rows. An implied row without a following row raises IndexError.
    """
    implied = np.asarray(implied_rows, dtype=bool)
    rows = np.flatnonzero(implied)
    if not rows.size:
        return
    if 2 * rows.size < len(implied):  # sparse: gather only them
        nxt[rows] = cur[rows + 1]
        return
    m = min(len(nxt), len(cur) - 1, len(implied))
    if rows[-1] >= m:
        raise IndexError(f"implied row {int(rows[-1])} has no following row (of {len(cur)})")
    explicit = np.flatnonzero(~implied[:m])
    keep = nxt[explicit].copy()
    nxt[:m] = cur[1 : m + 1]
    nxt[explicit] = keep


def stored_once(root: object, payload: dict, schema: dict[str, dict]) -> list[str]:
    """The manifest's ``payload.next_stored_once``: observation keys whose ``next`` value is
    rebuilt from the following row (none before format 1.2).

    Raises:
        CorruptStoreError: the field is not a list of the schema's observation keys.
    """
    from rldata.errors import CorruptStoreError

    once = payload.get("next_stored_once", [])
    if not isinstance(once, list) or not set(once) <= set(obs_keys(schema)):
        raise CorruptStoreError(
            f"{root}: manifest field 'payload.next_stored_once': expected observation "
            f"keys of the schema, got {once!r}"
        )
    return once
