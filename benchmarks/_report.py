"""Shared by the benchmark scripts: interleaved rounds, median with min-max spread, RESULTS files.

Every figure a benchmark prints is the median of all rounds of one run, with the smallest and
largest round beside it; ratios are taken round by round (both sides measured in the same
round, under the same load) and summarised the same way. ``write_results`` writes the
tables between ``<!-- table:NAME -->`` markers that ``scripts/readme_tables.py`` copies
into docs/BENCHMARKS.md, so the docs' figures and RESULTS files cannot drift apart.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_at(rev: str, into: Path) -> Path:
    """``rldata/`` of commit ``rev`` extracted under ``into`` (put ``into`` on ``PYTHONPATH``
    to measure that revision's code beside today's in the same run)."""
    into.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(
        ["git", "archive", rev, "rldata"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def disk_bytes(path: Path) -> int:
    """Allocated bytes under ``path`` (sparse preallocation counts only what holds data)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def rounds(fns: dict[str, Callable[[], float]], n: int) -> dict[str, list[float]]:
    """Run every contender once per round, in turn, ``n`` rounds: ``{label: [value per round]}``."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for label, fn in fns.items():
            out[label].append(fn())
    return out


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def per_round(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a[i] / b[i]`` for each round ``i``."""
    return [x / y for x, y in zip(a, b, strict=True)]


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def num(v: float, unit: str = "") -> str:
    """3 significant figures with k/M suffixes (``unit='%'`` formats a fraction as percent)."""
    if unit == "%":
        return f"{100 * v:.0f}%"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "s":
        return f"{v:.3f}"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def spread(xs: Sequence[float] | None, unit: str = "", bold: bool = False) -> str:
    """``median (min–max)`` of ``xs``; ``–`` when there is nothing."""
    if not xs:
        return "–"
    m = num(med(xs), unit)
    if bold:
        m = f"**{m}**"
    if len(xs) == 1:
        return m
    return f"{m} ({num(min(xs), unit)}–{num(max(xs), unit)})"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` holds ``l`` / ``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line on where and on what this run happened (read ratios, not absolute rates)."""
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "rldata", "benchmarks/*.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    versions = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    from importlib.metadata import PackageNotFoundError, version

    for name in ("tensordict", "gymnasium", "numpy", "torchrl", "stable-baselines3", "cpprb"):
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} absent")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    state = f"commit {commit}" + (" + uncommitted changes" if dirty else "")
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {state}, {os.cpu_count()} cores "
        f"(load average {load} at the end), {'; '.join(versions)}"
    )


def region(name: str, body: str) -> str:
    """A table wrapped in the markers that ``scripts/readme_tables.py`` copies into docs/BENCHMARKS.md."""
    return f"<!-- table:{name} -->\n{body.strip()}\n<!-- /table:{name} -->"


def write_results(name: str, title: str, command: str, sections: Sequence[str]) -> Path:
    """Write ``benchmarks/RESULTS-<name>.md``: title, command, machine line, then ``sections``."""
    path = ROOT / "benchmarks" / f"RESULTS-{name}.md"
    parts = [
        f"# {title}",
        "Generated by the benchmark itself from one full run (do not edit by hand; rerun it,\n"
        "then `python scripts/readme_tables.py` copies the marked tables into docs/BENCHMARKS.md).",
        f"Command: `{command}`",
        f"Run: {machine()}",
        *sections,
    ]
    path.write_text("\n\n".join(p.strip() for p in parts) + "\n")
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return path


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as a benchmark's heading quotes them."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def goal_line(mine: str, label: str, ratio: float, goal: float, clock: str = "") -> str:
    """``- mine ≥ goal x label: ratio: met`` (or missed by how much)."""
    verdict = "met" if ratio >= goal else f"missed by {goal - ratio:.2f}x"
    at = f" ({clock})" if clock else ""
    return f"- {mine} ≥ {goal:g}x {label}{at}: {ratio:.2f}x: {verdict}"


def finish(
    name: str,
    title: str,
    script: str,
    heading: str,
    table_md: str,
    lines: Sequence[str],
    notes: str,
    *,
    after: str = "",
    before: str = "",
    write: bool = True,
) -> str:
    """The end of a before/after benchmark: print its section (``### heading``, the table,
    the verdict ``lines``) and, unless ``write`` is False, write ``RESULTS-<name>.md`` with
    the command that reproduces it (``--after`` / ``--before`` as given) and ``notes``."""
    body = f"### {heading}\n\n{table_md}\n\n" + "\n".join(lines)
    print(body)
    if write:
        cmd = f"nice -n 10 python benchmarks/{script}"
        cmd += f" --after {after}" if after else ""
        cmd += f" --before {before}" if before else ""
        write_results(name, title, cmd, [region(name, body), notes])
    return body
