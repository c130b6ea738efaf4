"""The shuffle buffer of :class:`~rldata.data.StoreDataset`: rows in fixed slots, only their
slot numbers permuted.

The buffer's documented order (WebDataset's) is: rows of each new block join the buffer, the
whole buffer is permuted, and whole batches leave from its front. Permuting the rows
themselves copies the whole buffer (4 blocks and more) twice per block, a concatenation and
a random gather, which was most of an epoch's CPU. Here each row is written once into a free
slot of per-key arrays sized for the largest buffer of the epoch, the permutation is applied
to a vector of slot numbers, and the rows that leave are gathered once, into fresh tensors
or straight into the caller's (shared-memory) arrays. The rows and their order are the same
as permuting the rows, for the same generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rldata.data._stream_transport import Layout

Key = tuple[str, ...]


def peak_rows(sizes: Sequence[int], batch_size: int, shuffle_buffer: int, *, shuffle: bool) -> int:
    """The most rows the buffer holds at once when blocks of ``sizes`` rows arrive in turn
    and whole batches leave while more than ``shuffle_buffer`` rows (0 without shuffle) stay."""
    held = peak = 0
    keep = shuffle_buffer if shuffle else 0
    for m in sizes:
        held += m
        peak = max(peak, held)
        n = (held - keep) // batch_size
        if n > 0:
            held -= n * batch_size
    return peak


class ShuffleBuffer:
    """Rows waiting to leave, ``capacity`` at most, as slots of one array per key.

    Args:
        capacity: the most rows held at once (:func:`peak_rows` of the epoch's plan).
        generator: permutes the buffer after each :meth:`add` (and on :meth:`shuffle`);
            None keeps arrival order.
    """

    def __init__(self, capacity: int, generator: torch.Generator | None) -> None:
        self.capacity = capacity
        self.generator = generator
        self.data: dict[Key, torch.Tensor] = {}
        self.order = torch.empty(0, dtype=torch.int64)  # slot of each buffered row, in order
        self.free = torch.empty(0, dtype=torch.int64)  # slots whose rows have left
        self.fresh = 0  # slots from here on were never written

    def __len__(self) -> int:
        return len(self.order)

    def add(self, rows: dict[Key, torch.Tensor], m: int) -> None:
        """Append ``m`` rows (``{key: tensor [m, ...]}``), then permute the whole buffer."""
        if not self.data:
            self.data = {
                k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype)
                for k, v in rows.items()
            }
        reuse = min(m, len(self.free))
        if len(self.order) + m > self.capacity:
            raise RuntimeError(
                f"shuffle buffer: {len(self.order) + m} rows exceed its capacity {self.capacity}"
            )
        old, self.free = self.free[:reuse], self.free[reuse:]
        old = old.sort().values  # written in address order
        lo, hi = self.fresh, self.fresh + m - reuse
        self.fresh = hi
        for k, v in rows.items():
            dst = self.data[k]
            if reuse:
                dst.index_copy_(0, old, v[:reuse])
            if hi > lo:
                dst[lo:hi] = v[reuse:]
        parts = [self.order, old, torch.arange(lo, hi)]
        self.order = torch.cat([p for p in parts if len(p)])
        self.shuffle()

    def shuffle(self) -> None:
        """Permute the buffered rows (nothing without a generator)."""
        if self.generator is not None:
            self.order = self.order[torch.randperm(len(self.order), generator=self.generator)]

    def layout(self) -> Layout:
        """``(key, dtype, row shape)`` of each key, in a fixed order."""
        return [(k, v.dtype, tuple(v.shape[1:])) for k, v in self.data.items()]

    def take(self, k: int, out: dict[Key, torch.Tensor] | None = None) -> dict[Key, torch.Tensor]:
        """The first ``k`` buffered rows, removed: gathered into ``out`` (``{key: [k, ...]}``,
        e.g. views of one shared-memory segment) or into new tensors."""
        slots, self.order = self.order[:k], self.order[k:]
        self.free = torch.cat([self.free, slots])
        if out is None:
            return {key: v.index_select(0, slots) for key, v in self.data.items()}
        for key, v in self.data.items():
            torch.index_select(v, 0, slots, out=out[key])
        return out
