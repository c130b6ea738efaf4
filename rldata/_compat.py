"""The private tensordict and torch internals rldata uses for speed, fenced in one place.

Sampling, single-row adds and environment steps build or read many small TensorDicts;
tensordict's public calls re-validate every leaf, which costs as much as the work itself.
Each internal used here has a public fallback that gives the same result more slowly.
At import, a self-test runs every internal on a probe and compares it with its fallback;
an internal that is missing or disagrees (a new tensordict or torch release) is replaced
by its fallback, and :data:`FAST` says which ones are in use. ``pyproject.toml`` pins
tensordict below its next minor release so that a new release is checked here first.

Callers use the module attributes (``_compat.new_td(...)``), never ``from`` imports, so
that :func:`use_fallbacks` (used by the tests) switches every caller at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

__all__ = ["FAST", "TensorGuards", "entries", "new_td", "new_td_nested", "set_unchecked"]

# --- public fallbacks ------------------------------------------------------------------------


def _new_td_public(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    return TensorDict(entries, batch_size=batch, device=device)


def _entries_public(td: TensorDict) -> dict:
    return dict(td.items())


def _set_public(td: TensorDict, key: str, value: Any) -> None:
    td.set(key, value)


def _version_public(t: torch.Tensor) -> int:
    raise RuntimeError("tensor version counters are not available")  # callers copy instead


# --- internals ---------------------------------------------------------------------------------

_OBJECT_NEW = object.__new__


def _new_td_direct(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    """The four fields ``TensorDict._new_unsafe`` sets, set directly (no per-leaf checks)."""
    td = _OBJECT_NEW(TensorDict)
    state = td.__dict__
    state["_tensordict"] = entries
    state["_device"] = device
    state["_batch_size"] = batch
    state["_td_dim_names"] = None
    return td


def _new_td_unsafe(entries: dict, batch: torch.Size, device: torch.device | None) -> TensorDict:
    return TensorDict._new_unsafe(source=entries, batch_size=batch, device=device, nested=False)


def _new_td_nested_unsafe(
    source: dict, batch: torch.Size, device: torch.device | None
) -> TensorDict:
    return TensorDict._new_unsafe(source, batch_size=batch, device=device)


def _entries_private(td: TensorDict) -> dict:
    return td._tensordict


def _set_private(td: TensorDict, key: str, value: Any) -> None:
    td._set_str(key, value, inplace=False, validated=True)


_version_private = attrgetter("_version")


# --- self-tests ----------------------------------------------------------------------------------


def _same(a: TensorDictBase, b: TensorDictBase) -> bool:
    return (
        type(a) is type(b) is TensorDict
        and a.batch_size == b.batch_size
        and a.device == b.device
        and set(a.keys(True, True)) == set(b.keys(True, True))
        and bool((a == b).all())
    )


def _probe() -> dict:
    return {"a": torch.arange(4.0).reshape(2, 2), "b": torch.zeros(2, dtype=torch.bool)}


def _check_new_td(fast: Callable) -> bool:
    size, cpu = torch.Size([2]), torch.device("cpu")
    sub = _new_td_public({"r": torch.ones(2, 1)}, size, cpu)
    ref = _new_td_public({**_probe(), "next": sub}, size, cpu)
    got = fast({**_probe(), "next": fast({"r": torch.ones(2, 1)}, size, cpu)}, size, cpu)
    if not _same(got, ref):
        return False
    if fast is _new_td_direct:  # the direct builder must set exactly what _new_unsafe sets
        unsafe = _new_td_unsafe(_probe(), size, cpu)
        if set(got.__dict__) != set(unsafe.__dict__) - {"_has_mps_val"}:
            return False
    got.set("c", torch.ones(2))  # usable as any TensorDict afterwards
    return bool(got.clone()["c"].sum() == 2)


def _check_new_td_nested(fast: Callable) -> bool:
    size, cpu = torch.Size([2]), torch.device("cpu")
    src = {**_probe(), "next": {"r": torch.ones(2, 1)}}
    return _same(fast(dict(src), size, cpu), _new_td_public(dict(src), size, cpu))


def _check_entries(fast: Callable) -> bool:
    t = torch.ones(2)
    td = TensorDict({"a": t, "n": {"b": t}}, batch_size=[2])
    got = fast(td)
    return isinstance(got, dict) and got["a"] is t and set(got) == {"a", "n"}


def _check_set(fast: Callable) -> bool:
    td = TensorDict({"a": torch.ones(2)}, batch_size=[2])
    value = torch.zeros(2, 3)
    fast(td, "b", value)
    return td.get("b") is value and set(td.keys()) == {"a", "b"}


def _check_version(fast: Callable) -> bool:
    t = torch.zeros(2)
    before = fast(t)
    t.add_(1)
    return isinstance(before, int) and fast(t) > before


def _check_guards(guards: Any) -> bool:
    a, b = torch.zeros(2, 3), torch.zeros(2, 3)
    check = guards(
        a, b, dynamic_dims_sizes=[[2, 3], [2, 3]], dynamic_dims_strides=[[None, None]] * 2
    ).check
    return bool(check(a, b)) and not check(a, torch.zeros(2, 4)) and not check(a, b.double())


def _choose(check: Callable[[Any], bool], fast: Any, fallback: Any) -> tuple[Any, bool]:
    """The first internal of ``fast`` (one, or a tuple in order of preference) that passes."""
    for candidate in fast if isinstance(fast, tuple) else (fast,):
        if candidate is None:
            continue
        try:
            ok = check(candidate)
        except Exception:  # noqa: BLE001 - any failure of an internal means: not this one
            ok = False
        if ok:
            return candidate, True
    return fallback, False


def _tensor_guards() -> Any:
    with contextlib.suppress(ImportError):
        from torch._C._dynamo.guards import TensorGuards as guards

        return guards
    return None


_CHOICES: dict[str, tuple[Callable[[Any], bool], Any, Any]] = {
    # name: (self-test, internal, public fallback)
    "new_td": (_check_new_td, (_new_td_direct, _new_td_unsafe), _new_td_public),
    "new_td_nested": (_check_new_td_nested, _new_td_nested_unsafe, _new_td_public),
    "entries": (_check_entries, _entries_private, _entries_public),
    "set_unchecked": (_check_set, _set_private, _set_public),
    "version": (_check_version, _version_private, _version_public),
    "TensorGuards": (_check_guards, _tensor_guards(), None),
}

FAST: dict[str, bool] = {}
"""Per internal, whether it passed its self-test and is in use (False: the public fallback)."""

new_td: Callable[[dict, torch.Size, torch.device | None], TensorDict]
"""``new_td(entries, batch, device)``: a TensorDict over leaves that already fit (tensors or
TensorDicts with the batch dims and device), without re-validating them."""
new_td_nested: Callable[[dict, torch.Size, torch.device | None], TensorDict]
"""As :func:`new_td`, where nested plain dicts become sub-TensorDicts."""
entries: Callable[[TensorDict], dict]
"""The top-level ``{key: value}`` of a plain TensorDict, for reading only."""
set_unchecked: Callable[[TensorDict, str, Any], None]
"""``td.set(key, value)`` for a value the caller built to fit ``td`` (not re-validated)."""
version: Callable[[torch.Tensor], int]
"""A tensor's in-place version counter; raises RuntimeError where unavailable."""
TensorGuards: Any
"""torch's C++ check of many tensors' kind, dtype and sizes at once, or None."""


def _select(force_fallback: bool) -> None:
    g = globals()
    for name, (check, fast, fallback) in _CHOICES.items():
        chosen, ok = (fallback, False) if force_fallback else _choose(check, fast, fallback)
        g[name] = chosen
        FAST[name] = ok


@contextlib.contextmanager
def use_fallbacks() -> Iterator[None]:
    """Within the block, every caller uses the public fallbacks (for tests)."""
    _select(force_fallback=True)
    try:
        yield
    finally:
        _select(force_fallback=False)


_select(force_fallback=False)
