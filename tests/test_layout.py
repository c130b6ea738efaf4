"""The package layout shows the design (issue 20, docs/ARCHITECTURE.md).

No import circle between any two modules of ``rldata`` (function-level and
``TYPE_CHECKING`` imports included), no store module past one screenful of jobs, no two
store modules opening with the same sentence, and a thin ``rldata/api.py``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
STORES = ROOT / "rldata" / "stores"
MAX_STORE_LINES = 500
MAX_API_LINES = 300


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"a"}}, []),  # a module importing itself is no circle between two
    ],
    ids=["chain", "pair", "triangle-with-tail", "self"],
)
def test_the_cycle_finder_finds_what_it_should(edges, expected):
    assert _cycles(edges) == expected


def test_no_import_circle_between_modules_of_rldata():
    graph = grimp.build_graph("rldata")  # every import statement, in functions too
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    circles = _cycles(edges)
    shown = [" -> ".join(c) for c in circles]
    assert circles == [], f"import circles: {shown}"


def _store_modules() -> list[Path]:
    return sorted(STORES.rglob("*.py"))


@pytest.mark.parametrize("path", _store_modules(), ids=lambda p: str(p.relative_to(STORES)))
def test_no_store_module_is_over_500_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_STORE_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it by job"


def test_no_two_store_modules_open_with_the_same_sentence():
    first_lines: dict[str, list[str]] = defaultdict(list)
    for path in _store_modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{path.relative_to(ROOT)} has no module docstring"
        first_lines[doc.splitlines()[0].strip().lower()].append(str(path.relative_to(ROOT)))
    same = {line: paths for line, paths in first_lines.items() if len(paths) > 1}
    assert same == {}, f"modules that say the same thing first: {same}"


def test_api_is_a_thin_facade():
    lines = len((ROOT / "rldata" / "api.py").read_text().splitlines())
    assert lines < MAX_API_LINES, f"rldata/api.py: {lines} lines (a few lines per entry point)"


def test_tests_mirror_the_store_rooms():
    rooms = sorted(p.name for p in STORES.iterdir() if (p / "__init__.py").exists())
    assert rooms == ["backend", "format", "interop", "location"]
    for room in rooms:
        assert list((ROOT / "tests" / "stores" / room).glob("test_*.py")), f"no tests for {room}"
