"""The schema of a store: flat key name -> per-row shape and dtype, checked on every write.

Key names join nested keys with dots (``("next", "reward")`` -> ``"next.reward"``), so key
components may not contain a dot. Shapes exclude the row dimension.
"""

from __future__ import annotations

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


def leaves(td: TensorDictBase) -> dict[str, torch.Tensor]:
    """Every tensor of a row batch ``[N]`` under its dotted name."""
    out = {}
    for key, value in td.items(include_nested=True, leaves_only=True):
        parts = (key,) if isinstance(key, str) else key
        for part in parts:
            if "." in part or "/" in part or not part:
                raise TedFormatError(
                    f"key {parts!r}: components must be non-empty and contain no '.' or '/'"
                )
        out[".".join(parts)] = cast(torch.Tensor, value)  # leaves_only: always a tensor
    return out


def of(td: TensorDictBase) -> Schema:
    """The schema a row batch ``[N]`` defines."""
    n = len(td.batch_size)
    return {
        name: {"shape": list(t.shape[n:]), "dtype": dtype_name(t.dtype)}
        for name, t in sorted(leaves(td).items())
    }


def check(tensors: dict[str, torch.Tensor], schema: Schema, batch_dims: int = 1) -> None:
    """Raise :class:`SchemaMismatchError` naming the first key that does not fit ``schema``."""
    if tensors.keys() != schema.keys():
        missing = sorted(schema.keys() - tensors.keys())
        extra = sorted(tensors.keys() - schema.keys())
        raise SchemaMismatchError(
            f"keys differ from the store schema: missing {missing}, unexpected {extra}"
        )
    for name, t in tensors.items():
        want = schema[name]
        shape = list(t.shape[batch_dims:])
        if shape != want["shape"]:
            raise SchemaMismatchError(
                f"key {name!r}: expected row shape {tuple(want['shape'])}, got {tuple(shape)}"
            )
        if dtype_name(t.dtype) != want["dtype"]:
            raise SchemaMismatchError(
                f"key {name!r}: expected dtype {want['dtype']}, got {dtype_name(t.dtype)}"
            )


def row_bytes(entry: dict) -> int:
    """Bytes one row of a schema entry occupies."""
    n = 1
    for d in entry["shape"]:
        n *= int(d)
    return n * torch.empty((), dtype=dtype_of(entry["dtype"])).element_size()
