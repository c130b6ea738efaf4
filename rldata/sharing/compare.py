"""What makes two stores compatible: their schemas and specs, compared key by key.

:func:`schema_differences` and :func:`spec_differences` return one line per difference, in
a stable order, so ``diff`` can list them and ``merge`` can name the first.
"""

from __future__ import annotations

import json
from typing import Any


def schema_differences(a: dict | None, b: dict | None) -> list[str]:
    """Keys only in one schema, and keys whose shape or dtype differ."""
    a, b = a or {}, b or {}
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(f"key {key!r}: only in A ({_entry(a[key])})")
        elif key not in a:
            out.append(f"key {key!r}: only in B ({_entry(b[key])})")
        elif _entry(a[key]) != _entry(b[key]):
            out.append(f"key {key!r}: A {_entry(a[key])}, B {_entry(b[key])}")
    return out


def _entry(e: dict) -> str:
    return f"{e.get('dtype')} {list(e.get('shape', []))}"


def spec_differences(a: Any, b: Any) -> list[str]:
    """Paths in the specs' JSON trees whose values differ (``specs.observation.high``...)."""
    fa, fb = _flatten(a, "specs"), _flatten(b, "specs")
    out = []
    for path in sorted(set(fa) | set(fb)):
        if path not in fb:
            out.append(f"{path}: only in A ({_short(fa[path])})")
        elif path not in fa:
            out.append(f"{path}: only in B ({_short(fb[path])})")
        elif fa[path] != fb[path]:
            out.append(f"{path}: A {_short(fa[path])}, B {_short(fb[path])}")
    return out


def _flatten(tree: Any, prefix: str) -> dict[str, Any]:
    if isinstance(tree, dict):
        if not tree:
            return {prefix: {}}
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: tree}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
