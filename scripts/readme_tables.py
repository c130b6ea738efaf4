"""Copy the benchmark tables from ``benchmarks/RESULTS-*.md`` into README.md and docs/BENCHMARKS.md.

Each benchmark writes its table between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``
markers in its RESULTS file; README.md and docs/BENCHMARKS.md hold the same markers where
the table belongs. This script replaces what is between each pair of markers in those files
with the RESULTS text of the same name, so the docs can only quote figures a benchmark run
produced. Running it twice changes nothing.

Run:  python scripts/readme_tables.py            (rewrite README.md and docs/BENCHMARKS.md)
      python scripts/readme_tables.py --check    (exit 1 if either is out of date)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("README.md", "docs/BENCHMARKS.md")
REGION = re.compile(r"<!-- table:([\w.-]+) -->\n(.*?)\n?<!-- /table:\1 -->", re.DOTALL)
COMMAND = re.compile(r"^(?:Command: |# .*— )`([^`]+)`", re.MULTILINE)


def sources(results_dir: Path) -> dict[str, Path]:
    """``{name: RESULTS file}`` of every marked region in ``results_dir/RESULTS-*.md``."""
    found: dict[str, Path] = {}
    for path in sorted(results_dir.glob("RESULTS-*.md")):
        for name, _ in REGION.findall(path.read_text()):
            if name in found:
                raise SystemExit(f"table {name!r} is marked twice (second time in {path})")
            found[name] = path
    return found


def tables(results_dir: Path) -> dict[str, str]:
    """``{name: text}`` of every marked region in ``results_dir/RESULTS-*.md``."""
    found: dict[str, str] = {}
    for path in sources(results_dir).values():
        for name, body in REGION.findall(path.read_text()):
            found[name] = body.strip()
    return found


def command(path: Path) -> str | None:
    """The command a RESULTS file says produced it (its ``Command:`` line or title), if any."""
    match = COMMAND.search(path.read_text())
    return match.group(1) if match else None


def render(readme: str, found: dict[str, str], where: str = "README.md") -> str:
    """``readme`` with each marked region replaced by the RESULTS text of the same name.

    Raises:
        SystemExit: a region names a table that no RESULTS file has.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in found:
            raise SystemExit(
                f"{where} marks table {name!r} but no benchmarks/RESULTS-*.md has it; "
                f"known: {sorted(found)}"
            )
        return f"<!-- table:{name} -->\n{found[name]}\n<!-- /table:{name} -->"

    return REGION.sub(sub, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    args = parser.parse_args(argv)
    found = tables(ROOT / "benchmarks")
    stale = []
    for target in TARGETS:
        path = ROOT / target
        text = path.read_text()
        new = render(text, found, target)
        if new == text:
            print(f"{target} tables match benchmarks/RESULTS-*.md")
            continue
        stale.append(target)
        if not args.check:
            path.write_text(new)
            print(f"{target} tables regenerated from benchmarks/RESULTS-*.md")
    if args.check and stale:
        print(
            f"{', '.join(stale)}: tables differ from benchmarks/RESULTS-*.md: run scripts/readme_tables.py"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
