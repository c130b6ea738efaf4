"""Copy the benchmark tables from ``benchmarks/RESULTS-*.md`` into README.md.

Each benchmark writes its table between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``
markers in its RESULTS file; README.md holds the same markers where the table belongs.
This script replaces what is between each pair of README markers with the RESULTS text
of the same name, so the README can only quote figures a benchmark run produced.
Running it twice changes nothing.

Run:  python scripts/readme_tables.py            (rewrite README.md)
      python scripts/readme_tables.py --check    (exit 1 if README.md is out of date)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = re.compile(r"<!-- table:([\w.-]+) -->\n(.*?)\n?<!-- /table:\1 -->", re.DOTALL)


def tables(results_dir: Path) -> dict[str, str]:
    """``{name: text}`` of every marked region in ``results_dir/RESULTS-*.md``."""
    found: dict[str, str] = {}
    for path in sorted(results_dir.glob("RESULTS-*.md")):
        for name, body in REGION.findall(path.read_text()):
            if name in found:
                raise SystemExit(f"table {name!r} is marked twice (second time in {path})")
            found[name] = body.strip()
    return found


def render(readme: str, found: dict[str, str]) -> str:
    """``readme`` with each marked region replaced by the RESULTS text of the same name.

    Raises:
        SystemExit: a README region names a table that no RESULTS file has.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in found:
            raise SystemExit(
                f"README.md marks table {name!r} but no benchmarks/RESULTS-*.md has it; "
                f"known: {sorted(found)}"
            )
        return f"<!-- table:{name} -->\n{found[name]}\n<!-- /table:{name} -->"

    return REGION.sub(sub, readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    args = parser.parse_args(argv)
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text()
    new = render(readme, tables(ROOT / "benchmarks"))
    if new == readme:
        print("README.md tables match benchmarks/RESULTS-*.md")
        return 0
    if args.check:
        print("README.md tables differ from benchmarks/RESULTS-*.md: run scripts/readme_tables.py")
        return 1
    readme_path.write_text(new)
    print("README.md tables regenerated from benchmarks/RESULTS-*.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
