"""Seeded fuzzing of whole stores: every fault is detected or provably harmless.

A fault is a flipped bit, a truncation, a deletion or appended garbage in any file of a
store. ``benchmarks/soak.py`` runs thousands of these; CI runs a few hundred.
"""

from __future__ import annotations

import shutil

import pytest

import rldata.stores as stores
from rldata.testing import faults
from rldata.testing.ted_factory import ted_marked

BACKENDS = [b for b in ("memmap", "zarr", "parquet") if b in stores.backends()]


def _sound(root, backend, capacity=None):
    kwargs = {} if capacity is None else {"capacity": capacity}
    with stores.create(root, backend=backend, **kwargs) as w:
        for k in range(4):  # several commits: several chunks and an older episode index
            w.append(ted_marked(k * 40, 40))
            w.commit()
    return root


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_faults_are_detected_or_harmless(tmp_path, backend):
    sound = _sound(tmp_path / "sound", backend)
    seen: list[str] = []
    tally = faults.run(
        sound,
        tmp_path / "scratch",
        cases=120,
        seed=0,
        on_case=lambda case, result, detail: seen.append(f"{case}: {result} {detail}"),
    )
    bad = [line for line in seen if ": silent" in line or ": uncaught" in line]
    assert tally["silent"] == 0 and tally["uncaught"] == 0, bad[:5]
    assert tally["detected"] > 0  # the suite does damage what matters


@pytest.mark.parametrize("kind", faults.KINDS)
def test_every_file_of_a_store_is_covered(tmp_path, kind):
    sound = _sound(tmp_path / "sound", "memmap")
    ref = faults.Reference.of(sound)
    for file in faults.store_files(sound):
        scratch = tmp_path / "scratch"
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(sound, scratch)
        size = (scratch / file).stat().st_size
        if kind in ("flip", "truncate") and size == 0:
            continue  # nothing to flip or cut (the lock file of a closed store)
        case = faults.Case(file, kind, 0 if kind in ("flip", "truncate") else size)
        faults.apply(scratch, case)
        result, detail = faults.outcome(scratch, ref)
        assert result in ("detected", "harmless"), f"{case}: {result} {detail}"


def test_a_ring_survives_the_same_faults(tmp_path):
    sound = _sound(tmp_path / "sound", "memmap", capacity=64)
    tally = faults.run(sound, tmp_path / "scratch", cases=60, seed=1)
    assert tally["silent"] == 0 and tally["uncaught"] == 0, tally
