"""The schema of a store: flat key name -> per-row shape and dtype, checked on every write.

Key names join nested keys with dots (``("next", "reward")`` -> ``"next.reward"``), so key
components may not contain a dot. Shapes exclude the row dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import torch
from tensordict import TensorDictBase

from rldata.errors import SchemaMismatchError, TedFormatError

Schema = dict[str, dict]

_DTYPES = {
    name: getattr(torch, name)
    for name in (
        "bool",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}


STORABLE_DTYPES = tuple(_DTYPES)
"""The dtype names a schema may hold (a manifest naming any other is refused)."""


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def dtype_of(name: str) -> torch.dtype:
    """``"float32"`` -> ``torch.float32``; only plain numeric dtypes are allowed."""
    try:
        return _DTYPES[name]
    except KeyError:
        raise SchemaMismatchError(
            f"dtype {name!r} is not storable; expected one of {sorted(_DTYPES)}"
        ) from None


def key_tuple(name: str) -> tuple[str, ...]:
    """``"next.reward"`` -> ``("next", "reward")``."""
    return tuple(name.split("."))


def check_key(key: str | tuple[str, ...]) -> tuple[str, ...]:
    """The components of a nested key, refused when one cannot be a stored name (a dotted
    name is how a store names the column, so no component may hold ``.`` or ``/``)."""
    parts = (key,) if isinstance(key, str) else tuple(key)
    for part in parts:
        if not isinstance(part, str) or "." in part or "/" in part or not part:
            raise TedFormatError(
                f"key {parts!r}: components must be non-empty and contain no '.' or '/'"
            )
    return parts


def leaves(td: TensorDictBase) -> dict[str, torch.Tensor]:
    """Every tensor of a row batch ``[N]`` under its dotted name."""
    out = {}
    for key, value in td.items(include_nested=True, leaves_only=True):
        parts = check_key(key)
        out[".".join(parts)] = cast(torch.Tensor, value)  # leaves_only: always a tensor
    return out


def of(td: TensorDictBase) -> Schema:
    """The schema a row batch ``[N]`` defines."""
    n = len(td.batch_size)
    return {
        name: {"shape": list(t.shape[n:]), "dtype": dtype_name(t.dtype)}
        for name, t in sorted(leaves(td).items())
    }


def check(
    tensors: Mapping[str, torch.Tensor],
    schema: Schema,
    batch_dims: int = 1,
    lead: tuple[int, ...] | None = None,
) -> None:
    """Raise :class:`SchemaMismatchError` naming the first key that does not fit ``schema``.

    The one check of a write against a schema, for stores and in-memory storages alike
    (their fast paths compare cached shapes and call this for the message).

    Args:
        tensors: the write's leaves under their dotted names.
        schema: the expected keys, row shapes and dtypes.
        batch_dims: leading dims that count rows (ignored when ``lead`` is given).
        lead: the exact leading dims every key must have (``(n,)``, or ``()`` for one row).
    """
    if tensors.keys() != schema.keys():
        missing = sorted(schema.keys() - tensors.keys())
        extra = sorted(tensors.keys() - schema.keys())
        raise SchemaMismatchError(
            f"keys differ from the schema: missing {missing}, unexpected {extra}; "
            f"expected keys {sorted(schema)}"
        )
    nlead = batch_dims if lead is None else len(lead)
    for name, t in tensors.items():
        want = schema[name]
        shape = list(t.shape[nlead:])
        if shape != list(want["shape"]):
            raise SchemaMismatchError(
                f"key {name!r}: expected row shape {tuple(want['shape'])}, got {tuple(shape)}"
            )
        if dtype_name(t.dtype) != want["dtype"]:
            raise SchemaMismatchError(
                f"key {name!r}: expected dtype {want['dtype']}, got {dtype_name(t.dtype)}"
            )
        if lead is not None and tuple(t.shape[:nlead]) != lead:
            raise SchemaMismatchError(
                f"key {name!r}: expected leading dims {lead} like the other keys, "
                f"got {tuple(t.shape[:nlead])}"
            )


def row_bytes(entry: dict) -> int:
    """Bytes one row of a schema entry occupies."""
    n = 1
    for d in entry["shape"]:
        n *= int(d)
    return n * torch.empty((), dtype=dtype_of(entry["dtype"])).element_size()


# --- the schema as columns (in-memory storages) -----------------------------------------------


def key_name(key: tuple[str, ...]) -> str:
    """``("next", "reward")`` -> ``"next.reward"``."""
    return ".".join(key)


@dataclass(frozen=True)
class Column:
    """One leaf of a row: its nested key, per-row shape and dtype."""

    key: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def width(self) -> int:
        return math.prod(self.shape)


class RowSchema:
    """A schema as columns keyed by nested-key tuples, for storages that check every write.

    The same schema as the ``{dotted name: {"shape", "dtype"}}`` form (:meth:`to_json`,
    :meth:`from_json`), and the same check and messages (:func:`check`).
    """

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.by_key = {c.key: c for c in columns}

    @classmethod
    def from_flat(cls, flat: Mapping[tuple[str, ...], torch.Tensor], batch_dims: int) -> RowSchema:
        """The schema a write's leaves define (``batch_dims`` leading dims count rows)."""
        cols = []
        for key, value in flat.items():
            if not isinstance(value, torch.Tensor):
                raise TedFormatError(
                    f"key {key_name(key)!r}: expected a tensor, got {type(value).__name__}"
                )
            cols.append(Column(key, tuple(value.shape[batch_dims:]), value.dtype))
        return cls(cols)

    @classmethod
    def from_json(cls, schema: Schema) -> RowSchema:
        """From the manifest's form; dtype names are checked (:func:`dtype_of`)."""
        return cls(
            [
                Column(key_tuple(name), tuple(e["shape"]), dtype_of(e["dtype"]))
                for name, e in schema.items()
            ]
        )

    def to_json(self) -> Schema:
        """``{"next.reward": {"shape": [1], "dtype": "float32"}}``, the store manifest's form."""
        return {
            key_name(c.key): {"shape": list(c.shape), "dtype": dtype_name(c.dtype)}
            for c in self.columns
        }

    def check(self, flat: Mapping[tuple[str, ...], torch.Tensor], lead: tuple[int, ...]) -> None:
        """Raise :class:`SchemaMismatchError` (from :func:`check`) if ``flat`` does not fit.

        Args:
            flat: the leaves of the write.
            lead: the batch dims the write claims (``()`` for one row).
        """
        by_key = self.by_key
        fits = len(flat) == len(by_key) and all(k in by_key for k in flat)
        nlead = len(lead)
        for key, value in flat.items() if fits else ():
            col = by_key[key]
            shape = value.shape
            if value.dtype != col.dtype or shape[nlead:] != col.shape or shape[:nlead] != lead:
                fits = False
                break
        if not fits:
            check({key_name(k): v for k, v in flat.items()}, self.to_json(), lead=lead)
