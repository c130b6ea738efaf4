"""rldata: record RL experience into durable, shareable replay stores and train from them.

Only the entry points live here; everything else is imported from its subpackage
(``rldata.envs``, ``rldata.data``, ``rldata.objectives``, ...). The entry points
are resolved lazily so that ``import rldata`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "create": "rldata.stores",
    "open": "rldata.api",
    "load": "rldata.api",
    "record": "rldata.api",
    "load_policy": "rldata.api",
}

__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str) -> Any:
    module = _ENTRY_POINTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rldata' has no attribute {name!r}")
    return getattr(import_module(module), name)
