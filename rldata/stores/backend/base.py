"""The store interface: a durable table of TED rows with an explicit commit.

A store is written by one writer and read by any number of readers; readers see
only what the last commit lists. Backends declare what they can do.

Examples:
    The write -> commit -> read loop::

        >>> import rldata.stores as stores
        >>> from rldata.testing import ted_batch
        >>> with stores.create(tmp / "ds", capacity=None) as w:   # doctest: +SKIP
        ...     positions = w.append(ted_batch([5, 3]))  # rows 0..7, not yet readable
        ...     w.commit()                               # now they are
        >>> r = stores.open(tmp / "ds")                  # doctest: +SKIP
        >>> len(r), r.episodes()["length"].tolist()      # doctest: +SKIP
        (8, [5, 3])
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

import torch
from tensordict import TensorDict

from rldata.errors import MemoryBudgetError, RowIndexError
from rldata.stores.format.schema import key_name, row_bytes

#: The most bytes :meth:`Store.tensordict` reads into memory by default (1 GiB).
TENSORDICT_BYTES = 1 << 30


class Store(abc.ABC):
    """A replay store: rows ``[N]`` of TED, a manifest, episodes, one writer.

    Positions are row indices ``0..capacity-1`` (ring) or ``0..len-1`` (append-only).
    """

    # what the backend can do
    supports_overwrite: bool = False  # a ring (capacity set) may overwrite its oldest rows
    supports_random_read: bool = False  # get() with arbitrary positions is cheap

    path: str
    backend: str
    capacity: int | None
    writable: bool

    # --- metadata -------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def manifest(self) -> dict[str, Any]:
        """A copy of the committed manifest."""

    @property
    @abc.abstractmethod
    def schema(self) -> dict[str, dict] | None:
        """Flat key -> ``{"shape": [...], "dtype": "float32"}``; None before the first write."""

    @property
    @abc.abstractmethod
    def specs(self) -> Any:
        """The env's ``Composite`` spec, or None."""

    @property
    @abc.abstractmethod
    def env_id(self) -> str | None:
        """The gymnasium id of the env that produced the rows, or None."""

    @property
    @abc.abstractmethod
    def env_kwargs(self) -> dict:
        """The keyword arguments the env was made with (a copy)."""

    @property
    @abc.abstractmethod
    def provenance(self) -> dict:
        """Who wrote the store and how (a copy of the manifest's ``provenance``)."""

    def manifest_field(self, name: str, default: Any = None) -> Any:
        """A copy of one field of the committed manifest (``manifest`` copies all of it,
        every checksum and sketch of a million-row store included)."""
        return self.manifest.get(name, default)

    @property
    def allow_nonfinite(self) -> bool:
        """Whether the store keeps NaN/inf rewards (``create(..., allow_nonfinite=True)``)."""
        return bool(self.manifest_field("allow_nonfinite"))

    # --- writing ----------------------------------------------------------------------
    @abc.abstractmethod
    def append(self, td: TensorDict) -> torch.Tensor:
        """Write rows ``[N]`` (schema-checked); return their int64 positions. Not readable until commit."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Make every appended row durable and readable (payload fsynced, then the manifest)."""

    # --- reading ----------------------------------------------------------------------
    @abc.abstractmethod
    def __len__(self) -> int:
        """Readable rows: committed ones (a writer also counts its own uncommitted rows)."""

    @abc.abstractmethod
    def get(self, index: int | slice | torch.Tensor) -> TensorDict:
        """Rows at positions: committed rows only (a writer also reads its own uncommitted rows)."""

    @abc.abstractmethod
    def readable(self) -> torch.Tensor:
        """int64 positions readable now (as :meth:`get` defines it), oldest first."""

    @abc.abstractmethod
    def episodes(self) -> TensorDict:
        """The episode table: one row per episode, oldest first.

        Columns ``traj_id``, ``start`` (its first row's position), ``length`` (rows),
        ``return`` (sum of ``next.reward``), ``terminated``, ``truncated`` (how it ended;
        both False for an episode still open). Read from the episode index, no row is read.

        Examples:
            >>> table = store.episodes()                        # doctest: +SKIP
            >>> table["length"].tolist(), table["return"].mean()  # doctest: +SKIP
        """

    @abc.abstractmethod
    def segments(self) -> TensorDict:
        """One row per contiguous run of one trajectory (columns of :meth:`episodes`; ``start``
        is a position): what trajectory samplers draw windows from without reading rows."""

    @abc.abstractmethod
    def episode(self, i: int) -> TensorDict:
        """The rows ``[T]`` of the ``i``-th episode of :meth:`episodes`, in time order.

        Args:
            i: the episode's index in :meth:`episodes` (negative counts from the end), not
                its ``traj_id``.

        Returns:
            TED rows with ``next.*`` filled (also where observations are stored once).

        Raises:
            RowIndexError: ``i`` is out of range (the message gives the episode count).
        """

    @abc.abstractmethod
    def next_traj_id(self) -> int:
        """``1 +`` the largest trajectory id ever written (ids for a resumed collection)."""

    def rows_view(self) -> TensorDict | None:
        """Samplers' fast path: the stored rows (positions == row index) as one TensorDict
        that costs no new memory (memory-mapped, or already decoded), or None."""
        return None

    def tensordict(self, *, max_bytes: int | None = TENSORDICT_BYTES) -> TensorDict:
        """Every stored row as one TensorDict, indexed by position, on every backend.

        ``td[store.readable()]`` are the readable rows, oldest first; ``next.*`` is filled.
        Memory-mapped (no copy) where the backend stores rows so; otherwise the rows are
        read once, which must fit ``max_bytes`` (1 GiB by default; None: no limit). For a
        store above it, read in pieces: :meth:`get` over positions, :meth:`episode`,
        :meth:`column`, or ``rldata.stores.iter_arrow(store, batch_rows)``.

        Raises:
            MemoryBudgetError: reading the rows would take more than ``max_bytes``.
        """
        view = self.rows_view()
        if view is not None:
            return view
        positions = torch.sort(self.readable()).values
        need = len(positions) * sum(row_bytes(e) for e in (self.schema or {}).values())
        if max_bytes is not None and need > max_bytes:
            raise MemoryBudgetError(
                f"store {self.path}: tensordict() would read {need:,} bytes, over "
                f"max_bytes={max_bytes:,}; read pieces with get(positions), episode(i), "
                "column(key) or rldata.stores.iter_arrow(store, batch_rows)"
            )
        return self.get(positions)

    def columns(self) -> dict[str, torch.Tensor] | None:
        """Flat key -> zero-copy tensor over stored rows (fastest gathers), or None."""
        return None

    def column(self, name: str | tuple[str, ...]) -> torch.Tensor | None:
        """One key's stored rows (positions == row index; zero-copy where the backend can),
        for samplers' index math over one key without reading the others; or None when
        the backend has no column path or the schema has no such key.

        ``name`` is a flat key (``"next.observation"``) or a nested one
        (``("next", "observation")``); both name the same column.
        """
        return self._column(name if isinstance(name, str) else key_name(tuple(name)))

    def _column(self, name: str) -> torch.Tensor | None:
        cols = self.columns()
        return None if cols is None else cols.get(name)

    # --- other tools: Arrow, pandas, DuckDB (rows whole: next.* filled) ------------------
    def iter_arrow(self, batch_rows: int | None = None) -> Iterator[Any]:
        """Readable rows as ``pyarrow.RecordBatch`` es of at most ``batch_rows`` rows, oldest
        first, ``next.*`` filled (see :mod:`rldata.stores.backend.arrow_rows`)."""
        from rldata.stores.backend import arrow_rows

        return arrow_rows.iter_arrow(self, batch_rows)

    def to_arrow(self, batch_rows: int | None = None) -> Any:
        """Every readable row as one ``pyarrow.Table``, ``next.*`` filled (read
        ``batch_rows`` at a time; for a store larger than memory use :meth:`iter_arrow`)."""
        from rldata.stores.backend import arrow_rows

        return arrow_rows.to_arrow(self, batch_rows)

    def to_pandas(self, batch_rows: int | None = None) -> Any:
        """Every readable row as a ``pandas.DataFrame`` (dotted column names), ``next.*`` filled."""
        from rldata.stores.backend import arrow_rows

        return arrow_rows.to_pandas(self, batch_rows)

    def to_duckdb(self, con: Any, name: str, batch_rows: int | None = None) -> Any:
        """Register every readable row as DuckDB view ``name`` in ``con``; return ``con``.
        Quote dotted columns: ``con.sql('SELECT avg("next.reward") FROM name')``."""
        from rldata.stores.backend import arrow_rows

        return arrow_rows.to_duckdb(self, con, name, batch_rows)

    # --- lifetime ---------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Commit (if writable) and release the writer lock; idempotent."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "read-only"
        return (
            f"{type(self).__name__}(path={self.path!r}, backend={self.backend!r}, "
            f"capacity={self.capacity}, len={len(self)}, {mode})"
        )


def as_positions(index: Any, where: object) -> torch.Tensor:
    """``index`` (a tensor, array or sequence of row positions) as a flat int64 tensor.

    Every store's :meth:`Store.get` goes through this: positions are integers, so a float
    index (``tensor([0.5, 1.7])`` would be truncated to rows 0 and 1) or a boolean mask is
    refused with one line instead of serving other rows than asked.

    Raises:
        RowIndexError: the index is not integer-valued.
    """
    try:
        pos = torch.as_tensor(index)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise RowIndexError(f"{where}: row positions must be integers, got {exc}") from None
    if pos.dtype == torch.bool or pos.dtype.is_floating_point or pos.dtype.is_complex:
        raise RowIndexError(
            f"{where}: row positions must be an integer tensor, got dtype {pos.dtype} "
            "(round or convert with .long() first; boolean masks: use .nonzero())"
        )
    return pos.to(torch.int64).reshape(-1)
