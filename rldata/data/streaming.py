"""A store read as a ``torch.utils.data.IterableDataset``: blocks, a shuffle buffer, shards.

:class:`StoreDataset` streams a store in blocks of consecutive rows (the store's checksum
chunk by default, about 16 MB of rows) through a shuffle buffer, so a process holds at most
one block plus the buffer, never the whole store. Every epoch it splits the rows among all
readers, ``world_size`` ranks times ``num_workers`` DataLoader workers, into disjoint shards
whose union is every row exactly once, the way WebDataset and LeRobot's streaming dataset
shard files and ``DistributedSampler`` shards indices.

The loop it is used in::

    >>> ds = StoreDataset("ds", batch_size=256, seed=0)          # doctest: +SKIP
    >>> loader = ds.loader(num_workers=2)  # doctest: +SKIP
    >>> for epoch in range(10):                                   # doctest: +SKIP
    ...     ds.set_epoch(epoch)        # a new order each epoch, the same for the same seed
    ...     for td in loader:          # TensorDicts of 256 TED rows, no collate step
    ...         loss = ...

How an epoch is planned (:func:`shard_ranges`, index math only):

1. The rows ``0..N-1`` (a ring's readable positions, oldest first) are cut into blocks of
   ``block_rows``; with ``shuffle`` the block order is permuted by ``(seed, epoch)``, the
   same permutation on every rank and worker.
2. Read in that order, the rows form one sequence of ``N``; shard ``k`` of ``S`` takes the
   ``k``-th of ``S`` equal runs of it (``N * k // S`` to ``N * (k + 1) // S``), so shards
   differ by at most one row and every row lands in exactly one shard. A shard reads each
   block it touches with one ``store.get(slice)``.
3. With ``drop_last`` every shard keeps the same number of whole batches,
   ``(N // S) // batch_size``, so every rank yields the same number of batches (what a
   ``DistributedDataParallel`` loop needs to avoid a hang) and fewer than
   ``S * (batch_size + 1)`` rows are skipped per epoch, different ones each epoch. Without
   it every row is yielded once and a shard's last batch may be short, so ranks may differ
   by one batch. (``DistributedSampler`` pads by repeating rows instead; repeating rows
   would break "every row once", so this class does not.)

The shuffle buffer is WebDataset's: rows of each new block join the buffer, the buffer is
permuted with the shard's own generator (seeded by ``seed``, ``epoch`` and the shard), and
whole batches leave from its front while at least ``shuffle_buffer`` rows stay behind. The
rows stay in place and only their slot numbers are permuted
(:class:`~rldata.data._stream_shuffle.ShuffleBuffer`): each row is copied in once and out
once.
"""

from __future__ import annotations

import bisect
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from tensordict import TensorDict
from torch.utils.data import DataLoader, IterableDataset

from rldata import stores
from rldata.data._stream_shuffle import ShuffleBuffer, peak_rows
from rldata.data._stream_transport import Packed, SharedRun, warm_heap
from rldata.data._tdbuild import make_td
from rldata.errors import ConfigError

__all__ = ["Loader", "StoreDataset", "block_rows_of", "no_collate", "shard_ranges"]

BLOCK_BYTES = 16 << 20  # a block when the store does not name its chunk: ~16 MB of rows
MAX_BLOCK_ROWS = 1 << 16
BUFFER_BLOCKS = 4  # default shuffle buffer: this many blocks of rows


def no_collate(batch: Any) -> Any:
    """The DataLoader ``collate_fn`` for datasets that yield whole batches: the batch as is.

    ``DataLoader(batch_size=None)`` otherwise runs ``default_convert``, which takes a
    TensorDict for a plain mapping and fails on it.
    """
    return batch


def block_rows_of(store: Any) -> int:
    """Rows per block: the store's checksum chunk (``chunk_rows``) where it has one, so each
    block is one chunk to decode and verify; else about 16 MB of rows from the schema."""
    rows = getattr(store, "chunk_rows", None)
    if isinstance(rows, int) and rows > 0:
        return rows
    schema = store.schema or {}
    width = sum(
        torch.empty((), dtype=getattr(torch, f["dtype"])).element_size()
        * int(torch.Size(f["shape"]).numel())
        for f in schema.values()
    )
    return max(1, min(MAX_BLOCK_ROWS, BLOCK_BYTES // max(width, 1)))


def shard_ranges(
    num_rows: int,
    block_rows: int,
    *,
    shard: int,
    num_shards: int,
    order_seed: int | None = None,
    keep: int | None = None,
) -> list[tuple[int, int]]:
    """The row ranges ``[a, b)`` shard ``shard`` of ``num_shards`` reads, in read order.

    Each range lies inside one block of ``block_rows``; the ranges of all shards are
    disjoint and, with ``keep=None``, cover ``range(num_rows)`` exactly.

    Args:
        num_rows: rows in the epoch (``N``).
        block_rows: rows per block.
        shard / num_shards: which shard, of how many.
        order_seed: permute the block order with this seed (the same on every shard); None
            keeps the stored order.
        keep: read only the first ``keep`` rows of the shard's run (``drop_last``).

    Examples:
        >>> shard_ranges(10, 4, shard=0, num_shards=2)
        [(0, 4), (4, 5)]
        >>> shard_ranges(10, 4, shard=1, num_shards=2)
        [(5, 8), (8, 10)]
    """
    nb = -(-num_rows // block_rows)
    if order_seed is None:
        order = list(range(nb))
    else:
        gen = torch.Generator().manual_seed(order_seed)
        order = torch.randperm(nb, generator=gen).tolist()
    sizes = [min(block_rows, num_rows - b * block_rows) for b in order]
    offsets = [0]
    for n in sizes:
        offsets.append(offsets[-1] + n)
    lo = num_rows * shard // num_shards
    hi = num_rows * (shard + 1) // num_shards
    if keep is not None:
        hi = min(hi, lo + keep)
    out = []
    i = max(0, bisect.bisect_right(offsets, lo) - 1)
    while i < nb and offsets[i] < hi:
        a, b = max(lo, offsets[i]), min(hi, offsets[i + 1])
        if a < b:
            base = order[i] * block_rows - offsets[i]
            out.append((base + a, base + b))
        i += 1
    return out


class StoreDataset(IterableDataset):
    """Batches of TED rows streamed from a store, sharded over ranks and DataLoader workers.

    Use it with ``ds.loader(num_workers=k)``, i.e. ``DataLoader(ds, batch_size=None,
    collate_fn=no_collate, num_workers=k)``: the dataset batches (``batch_size`` rows a
    TensorDict), so the loader must not. Call :meth:`set_epoch` before each epoch, as with
    ``DistributedSampler``, or every epoch repeats the same order. The epoch lives in shared
    memory, so workers kept across epochs (what :meth:`loader` does unless told
    ``persistent_workers=False``; iterate the same loader each epoch) read the epoch set
    since, and skip a worker's start-up (a new process, its store handle, its buffers) every
    epoch. Other attributes changed after a loader's first epoch do not reach its workers. Each worker opens its own read-only store handle inside ``__iter__`` (handles do not
    survive a fork); the store is opened, and verified with ``verify``, once here.

    The epoch covers the rows committed when the dataset was made (a ring's readable
    positions then); every rank must construct it after the same commit, or their shards
    overlap. Memory per reader is one block plus the shuffle buffer plus one batch.

    Args:
        path: a store directory (or URL ``rldata.stores.open`` accepts).
        batch_size: rows per yielded TensorDict.
        shuffle: permute the block order per epoch and pass rows through the shuffle buffer;
            False yields every shard's rows in stored order.
        shuffle_buffer: rows kept back to mix with the next block (default: 4 blocks).
        seed: base seed; epoch ``e`` uses ``(seed, e)`` for its block order and buffers.
        drop_last: every shard yields the same number of whole batches (see the module doc);
            False yields every row exactly once per epoch.
        keys: the keys to yield (``"next.observation"`` or ``("next", "observation")``);
            default all.
        rank / world_size: this process's shard of the ranks; both or neither. Default: from
            ``torch.distributed`` when it is initialised, else 0 and 1.
        block_rows: rows per read (default: the store's checksum chunk).
        verify: verify the store's checksums when opening it here.

    Raises:
        ConfigError: a bad ``batch_size``, ``shuffle_buffer``, ``rank`` / ``world_size``,
            ``block_rows``, or a key the store does not hold.
        StoreNotFoundError / CorruptStoreError: as ``rldata.stores.open``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        batch_size: int,
        shuffle: bool = True,
        shuffle_buffer: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
        keys: Sequence[str | tuple[str, ...]] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        block_rows: int | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__()
        _positive("batch_size", batch_size)
        if block_rows is not None:
            _positive("block_rows", block_rows)
        if shuffle_buffer is not None and (
            isinstance(shuffle_buffer, bool)
            or not isinstance(shuffle_buffer, int)
            or shuffle_buffer < 0
        ):
            raise ConfigError(f"shuffle_buffer: expected an integer >= 0, got {shuffle_buffer!r}")
        if (rank is None) != (world_size is None):
            raise ConfigError(
                f"rank and world_size: pass both or neither, got rank={rank!r}, "
                f"world_size={world_size!r}"
            )
        if world_size is not None:
            _positive("world_size", world_size)
            if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
                raise ConfigError(f"rank: expected an integer in [0, {world_size}), got {rank!r}")
        self.path = os.fspath(path)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # seen by workers
        self._rank = rank
        self._world_size = world_size
        self._whole_runs = False  # set in a Loader's workers: hand over runs, not batches
        self._verify = verify  # each reading handle checks the blocks it reads (format 1.4)
        with stores.open(self.path, verify=verify) as store:
            self.num_rows = len(store)
            self.block_rows = block_rows or block_rows_of(store)
            self.keys = _check_keys(keys, store.schema or {}, self.path)
            # a ring's readable positions (at most its capacity); append-only rows are 0..N-1
            self._positions = None if store.capacity is None else store.readable()
        self.shuffle_buffer = (
            BUFFER_BLOCKS * self.block_rows if shuffle_buffer is None else shuffle_buffer
        )

    # --- epochs and shards -------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch the next ``__iter__`` reads (see :meth:`set_epoch`)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order on the next ``__iter__`` (call it before each epoch),
        here and in this dataset's DataLoader workers, persistent ones included."""
        self._epoch.fill_(int(epoch))

    def rank_and_world_size(self) -> tuple[int, int]:
        """The explicit ``rank, world_size``, else ``torch.distributed``'s, else ``0, 1``."""
        if self._world_size is not None:
            return int(self._rank or 0), self._world_size
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __getstate__(self) -> dict[str, Any]:
        # resolved in the parent, where the process group lives (spawned workers have none)
        state = dict(self.__dict__)
        state["_rank"], state["_world_size"] = self.rank_and_world_size()
        return state

    def shard(self) -> tuple[int, int]:
        """``(index, count)`` of the shard this process and DataLoader worker read."""
        rank, world = self.rank_and_world_size()
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return rank * workers + worker, world * workers

    def ranges(self, epoch: int | None = None) -> list[tuple[int, int]]:
        """The row ranges (indices into the epoch's rows) this shard reads in ``epoch``."""
        epoch = self.epoch if epoch is None else epoch
        index, count = self.shard()
        keep = None
        if self.drop_last:
            per = self.num_rows // count
            keep = per - per % self.batch_size
        return shard_ranges(
            self.num_rows,
            self.block_rows,
            shard=index,
            num_shards=count,
            order_seed=_mix(self.seed, epoch) if self.shuffle else None,
            keep=keep,
        )

    def loader(self, num_workers: int = 0, **kwargs: Any) -> Loader:
        """This dataset's batches read by ``num_workers`` DataLoader worker processes (each
        its own shard); ``kwargs`` go to ``DataLoader``. Workers hand over whole runs of
        batches (about a block of rows), which the main process cuts into batches, and are
        kept for the next epoch (``persistent_workers=True`` unless given): a worker's
        start-up cost a third of the CPU of reading 1M HalfCheetah rows."""
        if num_workers > 0:
            kwargs.setdefault("persistent_workers", True)
        return Loader(self, num_workers, kwargs)

    # --- reading ------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[TensorDict]:
        index, _ = self.shard()
        bs = self.batch_size
        if torch.utils.data.get_worker_info() is None:
            for rows, n in self._runs(index):
                yield from _split(make_td(rows, n, None), bs)
        elif self._whole_runs:  # Loader cuts the runs into batches in the main process
            for run, _ in self._runs(index, shared=True):  # gathered into shared memory
                yield run  # type: ignore[misc]
        else:  # each batch crosses to the main process through the worker's pipe
            for rows, n in self._runs(index):
                for batch in _split(make_td(rows, n, None), bs):
                    yield Packed(batch)  # type: ignore[misc]

    def _runs(self, index: int, shared: bool = False) -> Iterator[tuple[Any, int]]:
        """Shard ``index``'s rows in runs of whole batches (the last batch of the epoch may
        be short), blocks in plan order through the shuffle buffer: ``({key: tensor}, rows)``
        each, or with ``shared`` a :class:`SharedRun` in place of the dict."""
        epoch = self.epoch  # read once: the main process may set the next one meanwhile
        gen = torch.Generator().manual_seed(_mix(self.seed, epoch, index + 1))
        bs = self.batch_size
        ranges = self.ranges(epoch)
        keep = self.shuffle_buffer if self.shuffle else 0
        peak = peak_rows([b - a for a, b in ranges], bs, keep, shuffle=self.shuffle)
        buffer = ShuffleBuffer(peak, gen if self.shuffle else None)

        def take(n: int) -> tuple[Any, int]:
            if not shared:
                return buffer.take(n), n
            run = SharedRun.allocate(buffer.layout(), n)
            buffer.take(n, out=run.columns)
            return run, n

        with stores.open(self.path, verify=self._verify) as store:  # cheap: checks on read
            for a, b in ranges:
                td = self._read(store, a, b)
                buffer.add(_leaves(td), b - a)
                n = (len(buffer) - keep) // bs
                if n > 0:
                    yield take(n * bs)
        if len(buffer) == 0:
            return
        buffer.shuffle()
        end = len(buffer) - len(buffer) % bs if self.drop_last else len(buffer)
        if end:
            yield take(end)

    def _read(self, store: Any, a: int, b: int) -> TensorDict:
        """Rows ``[a, b)`` of the epoch, in one ``store.get``."""
        if self._positions is None:
            td = store.get(slice(a, b))
        else:
            td = store.get(self._positions[a:b])
        return td if self.keys is None else td.select(*self.keys)

    def __repr__(self) -> str:
        return (
            f"StoreDataset(path={self.path!r}, rows={self.num_rows}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"shuffle_buffer={self.shuffle_buffer}, block_rows={self.block_rows}, "
            f"epoch={self.epoch})"
        )


class Loader:
    """``DataLoader`` workers over a :class:`StoreDataset`, each batch a TensorDict.

    A worker hands each run of batches it reads (about a block of rows) to the main process
    at once, gathered from its shuffle buffer straight into one shared-memory segment
    (:class:`~rldata.data._stream_transport.SharedRun`), and the main process cuts it into
    ``batch_size`` batches (views of the run): torch's hand-over costs about 0.6 ms of CPU a
    batch (pickling, the pipe, the index queue), more than reading 256 HalfCheetah rows, so
    a hand-over per batch left 2 workers slower than one process (benchmarks/bench_loader.py
    measures both). Each worker keeps the memory it frees for reuse
    (:func:`~rldata.data._stream_transport.warm_heap`), as a long-running process does.
    Iterating it again resumes the same workers (``persistent_workers=True``, the default of
    :meth:`StoreDataset.loader`; they read the epoch from the dataset's shared memory), or
    with ``persistent_workers=False`` starts new ones.
    """

    def __init__(self, dataset: StoreDataset, num_workers: int, kwargs: dict[str, Any]) -> None:
        self.dataset = dataset
        self.num_workers = num_workers
        self.kwargs = kwargs
        self._loader: DataLoader | None = None  # kept across epochs for persistent workers

    def __iter__(self) -> Iterator[TensorDict]:
        if self.num_workers == 0:
            yield from self.dataset
            return
        loader = self._loader
        if loader is None or not self.kwargs.get("persistent_workers"):
            user_init = self.kwargs.get("worker_init_fn")
            kwargs = {k: v for k, v in self.kwargs.items() if k != "worker_init_fn"}
            loader = DataLoader(
                self.dataset,
                batch_size=None,
                collate_fn=no_collate,
                num_workers=self.num_workers,
                worker_init_fn=functools.partial(_hand_over_runs, user_init),
                **kwargs,
            )
            self._loader = loader if self.kwargs.get("persistent_workers") else None
        for run in loader:
            yield from _split(run, self.dataset.batch_size)


def _hand_over_runs(user_init: Any, worker_id: int) -> None:
    """``worker_init_fn`` of a :class:`Loader`: this worker's copy hands over whole runs."""
    info = torch.utils.data.get_worker_info()
    if info is not None:
        cast(StoreDataset, info.dataset)._whole_runs = True
        warm_heap()
    if user_init is not None:
        user_init(worker_id)


def _leaves(td: TensorDict) -> dict[tuple[str, ...], torch.Tensor]:
    """``{("next", "reward"): tensor, ("action",): tensor, ...}``: every leaf, tuple keys."""
    return {
        k if isinstance(k, tuple) else (k,): cast(torch.Tensor, v)
        for k, v in td.items(include_nested=True, leaves_only=True)
    }


def _split(run: TensorDict, bs: int) -> Iterator[TensorDict]:
    for i in range(0, len(run), bs):
        yield run[i : i + bs]


def _mix(*parts: int) -> int:
    """One 63-bit seed from several integers (distinct tuples give unrelated seeds)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")


def flat_key(key: str | tuple[str, ...]) -> str:
    """``("next", "observation")`` or ``"next.observation"`` -> ``"next.observation"``."""
    return ".".join(key) if isinstance(key, tuple) else str(key)


def _check_keys(
    keys: Sequence[str | tuple[str, ...]] | None, schema: dict[str, Any], path: str
) -> list[tuple[str, ...]] | None:
    """The keys as tuples for ``TensorDict.select``; a key the store lacks is refused."""
    if keys is None:
        return None
    if isinstance(keys, str):
        keys = [keys]
    out = []
    for k in keys:
        name = flat_key(k)
        if name not in schema:
            raise ConfigError(
                f"keys: store {path} has no key {name!r}; expected some of {sorted(schema)}"
            )
        out.append(tuple(name.split(".")))
    return out
