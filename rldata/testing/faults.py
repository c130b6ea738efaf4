"""Damage a store on purpose and classify what rldata made of it (fuzz suite and soak).

Each case copies a sound store, applies one fault to one file (a flipped byte, a
truncation, a deletion, appended garbage) and then reads it as a user would: open it
(checksums verified), verify it, and compare every row with the original. The outcome is

- ``detected``: open or verify refused it with an :class:`~rldata.errors.RldataError`;
- ``harmless``: it opens, verifies and every row, the episode table and the specs equal
  the original (a byte past the committed rows, a stale advisory file, a lock file);
- ``silent``: it opens and verifies but serves something else: a bug;
- ``uncaught``: any other exception escaped: a bug.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rldata import stores
from rldata.errors import RldataError

KINDS = ("flip", "truncate", "delete", "append")


@dataclass(frozen=True)
class Case:
    """One fault: which file (relative to the store), what was done, where."""

    file: str
    kind: str
    offset: int = 0
    bit: int = 0

    def __str__(self) -> str:
        where = f" at byte {self.offset}" + (f" bit {self.bit}" if self.kind == "flip" else "")
        return f"{self.kind} {self.file}{where if self.kind != 'delete' else ''}"


def store_files(root: Path) -> list[str]:
    """Every regular file of a store, relative, sorted (the lock file included)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def random_case(root: Path, rng: random.Random, kinds: tuple[str, ...] = KINDS) -> Case:
    """A fault drawn uniformly over the store's files, then over kinds and positions."""
    file = rng.choice(store_files(root))
    size = (root / file).stat().st_size
    kind = rng.choice(kinds)
    if kind in ("flip", "truncate") and size == 0:
        kind = "append"
    offset = rng.randrange(size) if kind in ("flip", "truncate") else size
    return Case(file, kind, offset, rng.randrange(8))


def apply(root: Path, case: Case) -> None:
    """Do ``case`` to the store at ``root``."""
    path = root / case.file
    if case.kind == "delete":
        path.unlink()
        return
    with open(path, "r+b") as f:
        if case.kind == "flip":
            f.seek(case.offset)
            byte = f.read(1)[0]
            f.seek(case.offset)
            f.write(bytes([byte ^ (1 << case.bit)]))
        elif case.kind == "truncate":
            f.truncate(case.offset)
        elif case.kind == "append":
            f.seek(0, 2)
            f.write(b"\x00garbage\xff" * 3)


@dataclass(frozen=True)
class Reference:
    """What a sound store serves: every readable row, its episode table and its specs."""

    rows: object
    episodes: object
    specs: object

    @classmethod
    def of(cls, root: Path) -> Reference:
        with stores.open(root) as s:
            rows = s.get(s.readable()).clone() if len(s) else None
            return cls(rows, s.episodes().clone(), s.manifest.get("specs"))


def outcome(root: Path, ref: Reference) -> tuple[str, str]:
    """Classify how rldata treats the (damaged) store at ``root``: (outcome, detail)."""
    try:
        with stores.open(root) as s:
            faults = stores.verify(s)
            if faults:
                return "detected", faults[0]
            rows = s.get(s.readable()) if len(s) else None
            same = _equal(rows, ref.rows) and _equal(s.episodes(), ref.episodes)
            same = same and s.manifest.get("specs") == ref.specs
            return ("harmless", "") if same else ("silent", "rows differ, verify said ok")
    except RldataError as exc:
        return "detected", str(exc)
    except Exception as exc:  # the point of the suite: nothing else may escape
        return "uncaught", f"{type(exc).__name__}: {exc}"


def _equal(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    keys = sorted(map(str, a.keys(True, True)))  # type: ignore[attr-defined]
    if keys != sorted(map(str, b.keys(True, True))) or a.batch_size != b.batch_size:  # type: ignore[attr-defined]
        return False
    for key in a.keys(True, True):  # type: ignore[attr-defined]
        x, y = a.get(key), b.get(key)  # type: ignore[attr-defined]
        if x.dtype != y.dtype or not torch.equal(x.view(torch.uint8), y.view(torch.uint8)):
            return False
    return True


def run(
    sound: Path,
    scratch: Path,
    cases: int,
    seed: int,
    kinds: tuple[str, ...] = KINDS,
    on_case: Callable[[Case, str, str], None] | None = None,
) -> dict[str, int]:
    """Apply ``cases`` random faults, each to a fresh copy of ``sound``; count outcomes."""
    rng = random.Random(seed)
    ref = Reference.of(sound)
    tally = {"detected": 0, "harmless": 0, "silent": 0, "uncaught": 0}
    for _ in range(cases):
        if scratch.exists():
            shutil.rmtree(scratch)
        shutil.copytree(sound, scratch)
        case = random_case(scratch, rng, kinds)
        apply(scratch, case)
        result, detail = outcome(scratch, ref)
        tally[result] += 1
        if on_case is not None:
            on_case(case, result, detail)
    return tally
