"""Benchmark tables in README.md and docs/BENCHMARKS.md are copies of the RESULTS files (scripts/readme_tables.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "readme_tables", ROOT / "scripts/readme_tables.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_tables_match_results() -> None:
    rt = _script()
    readme = (ROOT / "README.md").read_text()
    found = rt.tables(ROOT / "benchmarks")
    marked = {name for name, _ in rt.REGION.findall(readme)}
    assert marked <= set(found)
    assert rt.render(readme, found) == readme, "run: python scripts/readme_tables.py"


def test_render_is_idempotent_and_replaces_only_regions(tmp_path: Path) -> None:
    rt = _script()
    (tmp_path / "RESULTS-x.md").write_text(
        "# x\n\n<!-- table:x -->\n| a |\n|---|\n| 2 |\n<!-- /table:x -->\n"
    )
    readme = "intro\n\n<!-- table:x -->\n| a |\n|---|\n| 1 |\n<!-- /table:x -->\n\nafter\n"
    once = rt.render(readme, rt.tables(tmp_path))
    assert once == "intro\n\n<!-- table:x -->\n| a |\n|---|\n| 2 |\n<!-- /table:x -->\n\nafter\n"
    assert rt.render(once, rt.tables(tmp_path)) == once


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    rt = _script()
    with pytest.raises(SystemExit, match="'y'"):
        rt.render("<!-- table:y -->\nold\n<!-- /table:y -->\n", rt.tables(tmp_path))


BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
# Written into docs/BENCHMARKS.md's "Scale" section by benchmarks/bench_scale.py itself.
OWN_SECTION = ("scale",)


def test_benchmarks_doc_tables_match_results() -> None:
    rt = _script()
    text = BENCHMARKS.read_text()
    assert rt.render(text, rt.tables(ROOT / "benchmarks"), "docs/BENCHMARKS.md") == text, (
        "run: python scripts/readme_tables.py"
    )


def test_benchmarks_doc_holds_every_results_table() -> None:
    rt = _script()
    marked = {name for name, _ in rt.REGION.findall(BENCHMARKS.read_text())}
    expected = {n for n in rt.sources(ROOT / "benchmarks") if not n.startswith(OWN_SECTION)}
    assert expected - marked == set(), "tables missing from docs/BENCHMARKS.md"
    assert "<!-- scale:begin -->" in BENCHMARKS.read_text()


def test_each_benchmarks_table_names_the_command_that_produced_it() -> None:
    rt = _script()
    text = BENCHMARKS.read_text()
    for name, path in rt.sources(ROOT / "benchmarks").items():
        command = rt.command(path)
        if name.startswith(OWN_SECTION) or command is None:
            continue
        section = text[: text.index(f"<!-- table:{name} -->")].rsplit("\n#", 1)[-1]
        assert command in section, f"{name}: docs/BENCHMARKS.md does not show `{command}`"


def test_readme_holds_no_benchmark_table_but_the_headline_one() -> None:
    """Benchmark tables live in docs/BENCHMARKS.md; the README keeps one headline table."""
    rt = _script()
    readme = (ROOT / "README.md").read_text()
    marked = [name for name, _ in rt.REGION.findall(readme)]
    assert marked == [], f"README.md quotes benchmark tables {marked}: they live in docs/"
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    assert prose.count("\n|---") == 1, "README.md holds a table besides the headline one"


def _headline_rows(readme: str) -> list[list[str]]:
    section = readme.split("## Headline numbers", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _number(text: str) -> float:
    return float(re.match(r"[\d,.]+", text.lstrip("≤≥ ")).group(0).replace(",", ""))  # type: ignore[union-attr]


def test_readme_headline_numbers_are_quoted_from_results() -> None:
    """Each headline figure is a verbatim quote of the RESULTS file the row links to, and
    its verdict agrees with its target (never rounder or better than the file)."""
    rows = _headline_rows((ROOT / "README.md").read_text())
    assert rows, "README.md has no headline table under '## Headline numbers'"
    for measure, figure, target, verdict, source in rows:
        path = ROOT / re.search(r"\((benchmarks/RESULTS-[\w.-]+\.md)\)", source).group(1)  # type: ignore[union-attr]
        quoted = path.read_text().replace("**", "")
        assert figure in quoted, f"{measure}: {figure!r} is not in {path.name}"
        value, bound = _number(figure), _number(target)
        holds = value <= bound if target.startswith("≤") else value >= bound
        assert verdict.startswith("met") == holds, (
            f"{measure}: {figure} vs {target} is not {verdict!r}"
        )
