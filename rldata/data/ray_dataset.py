"""A store read as a Ray Dataset: one read task per disjoint run of blocks, run by Ray Data.

:func:`to_ray_dataset` plans the store's rows as blocks of its checksum chunk (as
:class:`~rldata.data.streaming.StoreDataset` does) and hands Ray Data one ``ReadTask`` per
run of consecutive blocks. Each task opens the store where Ray runs it (a path every node
can reach, or a URL), reads its blocks one ``store.get`` at a time and yields one Arrow
block per store block, so a task holds one block in memory and the tasks of a cluster read
the store in parallel. Columns are the store's flattened keys (``"next.observation"``);
multi-dimensional entries become Ray's tensor columns (numpy arrays in ``iter_batches``).

Examples:
    >>> ds = to_ray_dataset("ds")                                   # doctest: +SKIP
    >>> for batch in ds.iter_batches(batch_size=256):              # doctest: +SKIP
    ...     obs = batch["observation"]                              # numpy [256, obs_dim]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from rldata import stores
from rldata.data.streaming import _check_keys, block_rows_of, flat_key
from rldata.errors import MissingDependencyError

__all__ = ["to_ray_dataset"]


def _import_ray_data() -> Any:
    try:
        import ray.data
    except ImportError:
        raise MissingDependencyError(
            "to_ray_dataset needs ray[data] (ray and pandas); install it with "
            "pip install 'rldata[ray]'"
        ) from None
    return ray.data


def to_ray_dataset(
    path: str | os.PathLike[str],
    *,
    keys: Sequence[str | tuple[str, ...]] | None = None,
    block_rows: int | None = None,
    override_num_blocks: int | None = None,
    verify: bool = True,
) -> Any:
    """A ``ray.data.Dataset`` of the store's rows (committed when this is called), in order.

    Args:
        path: a store directory every Ray node can reach (a shared filesystem) or a URL.
        keys: the columns to read (``"next.observation"`` or ``("next", "observation")``);
            default every key.
        block_rows: rows per store read and per Arrow block (default: the store's chunk).
        override_num_blocks: read tasks to plan (default: Ray's choice of parallelism);
            never more than the store has blocks.
        verify: verify the store's checksums here, once, before planning (the read tasks
            open it without re-hashing).

    Returns:
        A lazy ``ray.data.Dataset``; shuffle it with Ray (``random_shuffle``,
        ``iter_batches(local_shuffle_buffer_size=...)``).

    Raises:
        MissingDependencyError: ray or pandas is not installed.
        ConfigError: a key the store does not hold.
    """
    rd = _import_ray_data()
    with stores.open(path, verify=verify) as store:
        rows = len(store)
        blocks = block_rows or block_rows_of(store)
        chosen = _check_keys(keys, store.schema or {}, os.fspath(path))
        positions = None if store.capacity is None else store.readable()
        widths = _row_bytes(store.schema or {}, chosen)
    source = _new_source(os.fspath(path), rows, blocks, chosen, positions, widths)
    return rd.read_datasource(source, override_num_blocks=override_num_blocks)


def _row_bytes(schema: dict[str, Any], keys: list[tuple[str, ...]] | None) -> int:
    import numpy as np

    names = set(schema) if keys is None else {flat_key(k) for k in keys}
    return sum(
        np.dtype(f["dtype"]).itemsize * int(np.prod(f["shape"], dtype=np.int64))
        for name, f in schema.items()
        if name in names
    )


def _read_blocks(
    path: str,
    spans: list[tuple[int, int]],
    keys: list[tuple[str, ...]] | None,
    positions: Any,
) -> Iterator[Any]:
    """Runs inside a Ray task: one Arrow table per store block of ``spans``."""
    from ray.data.block import BlockAccessor

    with stores.open(path, verify=False) as store:
        for a, b in spans:
            td = store.get(slice(a, b) if positions is None else positions[a:b])
            if keys is not None:
                td = td.select(*keys)
            cols = {
                flat_key(k): v.numpy() for k, v in td.items(include_nested=True, leaves_only=True)
            }
            yield BlockAccessor.batch_to_block(cols)


def _make_datasource_class() -> type:
    rd = _import_ray_data()
    from ray.data.block import BlockMetadata

    class StoreDatasource(rd.Datasource):  # type: ignore[name-defined]
        """Read tasks over disjoint runs of store blocks (``get_read_tasks``)."""

        def __init__(
            self,
            path: str,
            rows: int,
            block_rows: int,
            keys: list[tuple[str, ...]] | None,
            positions: Any,
            row_bytes: int,
        ) -> None:
            super().__init__()
            self.path, self.rows, self.block_rows = path, rows, block_rows
            self.keys, self.positions, self.row_bytes = keys, positions, row_bytes

        def get_name(self) -> str:
            return "RldataStore"

        def estimate_inmemory_data_size(self) -> int | None:
            return self.rows * self.row_bytes

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[Any]:
            spans = [
                (a, min(a + self.block_rows, self.rows))
                for a in range(0, self.rows, self.block_rows)
            ]
            if not spans:
                return []
            tasks = max(1, min(parallelism, len(spans)))
            out = []
            for t in range(tasks):  # task t: blocks [nb * t // tasks, nb * (t + 1) // tasks)
                mine = spans[len(spans) * t // tasks : len(spans) * (t + 1) // tasks]
                n = sum(b - a for a, b in mine)
                meta = BlockMetadata(
                    num_rows=n,
                    size_bytes=n * self.row_bytes,
                    exec_stats=None,
                    input_files=None,
                )
                args = (self.path, mine, self.keys, self.positions)
                extra = (
                    {} if per_task_row_limit is None else {"per_task_row_limit": per_task_row_limit}
                )
                out.append(rd.ReadTask(lambda args=args: _read_blocks(*args), meta, **extra))
            return out

    return StoreDatasource


def _new_source(*args: Any) -> Any:
    """A ``StoreDatasource`` (its class subclasses ``ray.data.Datasource``, so it is made
    on first use: ray stays an optional import)."""
    global _SOURCE_CLASS
    if _SOURCE_CLASS is None:
        _SOURCE_CLASS = _make_datasource_class()
    return _SOURCE_CLASS(*args)


_SOURCE_CLASS: type | None = None
