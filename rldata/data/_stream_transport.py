"""How :class:`~rldata.data.StoreDataset`'s rows cross from a DataLoader worker to the main
process.

* :class:`SharedRun` (what a :class:`~rldata.data.Loader`'s workers hand over): a run of
  whole batches, about a block of rows, gathered by the worker straight into one
  shared-memory segment, every key at an aligned offset. torch passes the segment by file
  descriptor; the main process maps it and rebuilds the TensorDict as views of it. No copy
  on either side, and one segment per run instead of one per key (what pickling a
  TensorDict does) or a consolidating copy (``TensorDict.consolidate``).
* :class:`Packed` (what a plain ``DataLoader``'s workers hand over): one batch pickled as
  its bytes, unpickled as a TensorDict; ``default_convert`` would take a TensorDict for a
  plain mapping.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, cast

import numpy as np
import torch
from tensordict import TensorDict

from rldata.data._tdbuild import make_td, nest

Key = tuple[str, ...]
Layout = list[tuple[Key, torch.dtype, tuple[int, ...]]]
ALIGN = 64  # byte alignment of each key in a batch or run handed over (a cache line)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20  # glibc's largest


def warm_heap() -> bool:
    """Make this (new) process keep freed memory for reuse, as a long-running one does.

    glibc serves allocations above its mmap threshold (128 kB in a new process, raised only
    as big blocks are freed) with new mappings and hands freed heap back to the kernel, so
    every block a new DataLoader worker reads landed in fresh pages: page faults and zeroing
    cost a worker more than reading the rows (~0.25 s of CPU per million HalfCheetah rows).
    Returns whether it applied (False off glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return bool(ok and mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1)


def offsets(layout: Layout, rows: int) -> tuple[list[int], int]:
    """Byte offset of each key of ``rows`` rows in one buffer, and the buffer's size."""
    starts, end = [], 0
    for _key, dtype, shape in layout:
        starts.append(end)
        nbytes = rows * int(torch.Size(shape).numel()) * dtype.itemsize
        end += nbytes + -nbytes % ALIGN
    return starts, end


def views(buf: torch.Tensor, layout: Layout, rows: int) -> dict[Key, torch.Tensor]:
    """``{key: tensor [rows, ...]}``, views of the uint8 tensor ``buf`` (see :func:`offsets`)."""
    starts, _ = offsets(layout, rows)
    out = {}
    for (key, dtype, shape), at in zip(layout, starts, strict=True):
        n = rows * int(torch.Size(shape).numel()) * dtype.itemsize
        out[key] = buf[at : at + n].view(dtype).view(rows, *shape)
    return out


class SharedRun:
    """A run of rows in one shared-memory segment; unpickles as a TensorDict of views of it.

    Make it with :meth:`allocate`, fill :attr:`columns` (views of the segment), then yield it
    from the worker.
    """

    __slots__ = ("buf", "columns", "layout", "rows")

    def __init__(self, buf: torch.Tensor, layout: Layout, rows: int) -> None:
        self.buf, self.layout, self.rows = buf, layout, rows
        self.columns = views(buf, layout, rows)

    @classmethod
    def allocate(cls, layout: Layout, rows: int) -> SharedRun:
        """An empty run of ``rows`` rows of ``layout``, created in shared memory (a segment
        made in ordinary memory would be copied into one when it is pickled)."""
        _, size = offsets(layout, rows)
        storage = torch.UntypedStorage._new_shared(max(size, 1))
        buf = torch.empty(0, dtype=torch.uint8).set_(storage)
        return cls(buf, layout, rows)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _rebuild_run, (self.buf, self.layout, self.rows)


def _rebuild_run(buf: torch.Tensor, layout: Layout, rows: int) -> TensorDict:
    return make_td(views(buf, layout, rows), rows, None)


class Packed:
    """A batch leaving a plain ``DataLoader``'s worker: pickled as its bytes, unpickled as a
    TensorDict.

    torch hands tensors between processes through a shared-memory segment per storage,
    created, passed by file descriptor and mapped for every batch: for a batch of a few
    hundred rows that is one segment per key. The bytes of one batch (~45 kB for 256
    HalfCheetah rows) cost microseconds through the worker's pipe instead.
    """

    __slots__ = ("td",)

    def __init__(self, td: TensorDict) -> None:
        self.td = td

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        layout, parts = [], []
        for key, value in self.td.items(include_nested=True, leaves_only=True):
            v = cast(torch.Tensor, value).detach().contiguous()
            arr = v.numpy() if v.dtype in _NUMPY else v.reshape(-1).view(torch.uint8).numpy()
            raw = arr.tobytes()
            layout.append((key, value.dtype, tuple(value.shape), len(raw)))
            parts.append(raw + bytes(-len(raw) % ALIGN))  # each key starts aligned
        return _unpack, (tuple(self.td.batch_size), layout, b"".join(parts))


_NUMPY = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.bool: np.bool_,
    torch.uint8: np.uint8,
    torch.int8: np.int8,
    torch.int16: np.int16,
    torch.int32: np.int32,
    torch.int64: np.int64,
}


def _unpack(batch_size: tuple[int, ...], layout: list[tuple], payload: bytes) -> TensorDict:
    """The TensorDict :class:`Packed` pickled (in the process that unpickles it): one copy of
    the payload, then a view per key, nested keys as nested dicts (one constructor call)."""
    buf = np.frombuffer(bytearray(payload), dtype=np.uint8)  # writable, 16-byte aligned
    flat: dict[Any, torch.Tensor] = {}
    offset = 0
    for key, dtype, shape, nbytes in layout:
        np_dtype = _NUMPY.get(dtype)
        if not nbytes:
            value = torch.empty(shape, dtype=dtype)
        elif np_dtype is None:  # bfloat16 and other dtypes numpy lacks: view in torch
            value = torch.from_numpy(buf[offset : offset + nbytes]).view(dtype).view(shape)
        else:
            value = torch.from_numpy(buf[offset : offset + nbytes].view(np_dtype).reshape(shape))
        flat[key if isinstance(key, tuple) else (key,)] = value
        offset += nbytes + -nbytes % ALIGN
    return TensorDict(nest(flat), batch_size=batch_size)
