"""How long a user waits for ``rldata --help`` and ``--version``: cold starts of the console script.

Each round starts a new interpreter (``python -m rldata_cli.main ...``), so nothing is cached in the
process; the OS page cache is warm after the first round, as on a user's machine after the
first call. For scale it times ``python -c pass`` (the floor any Python CLI pays) and
``rldata collect --help`` (a command that imports the API and torch). Target: ``--help``
and ``--version`` at most 0.5 s (median of 9 cold starts).

Run:  python benchmarks/bench_cli.py [--rounds 9] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report as rep  # noqa: E402

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "rldata --version": [sys.executable, "-m", "rldata_cli.main", "--version"],
    "rldata --help": [sys.executable, "-m", "rldata_cli.main", "--help"],
    "rldata collect --help": [sys.executable, "-m", "rldata_cli.main", "collect", "--help"],
}
TARGET_S = 0.5


def _start(argv: list[str]) -> float:
    return rep.timed(
        lambda: subprocess.run(argv, cwd=rep.ROOT, check=True, stdout=subprocess.DEVNULL)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-cli.md")
    args = ap.parse_args()
    got = rep.rounds({k: (lambda a=a: _start(a)) for k, a in CASES.items()}, args.rounds)
    rows = []
    for label, xs in got.items():
        target = ""
        if label in ("rldata --help", "rldata --version"):
            target = f"≤ {TARGET_S} s: {'met' if rep.med(xs) <= TARGET_S else 'missed'}"
        rows.append([label, rep.spread(xs, "s"), target])
    body = rep.table(["command", "wall s (median, min-max)", "target"], rows, "lrl")
    print(body)
    if args.write:
        path = rep.write_results(
            "cli",
            "CLI start-up",
            f"python benchmarks/bench_cli.py --rounds {args.rounds} --write",
            [rep.region("cli", body)],
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
