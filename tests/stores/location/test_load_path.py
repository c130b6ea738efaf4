"""The path of ``rldata.load(URL)``: a location says where bytes live; the remote commit
protocol uses one and is never called from it (issue 20: the two used to call each other).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import rldata
from rldata import stores
from rldata.testing.ted_factory import ted_marked

PLACES = "rldata.stores.location.places"
COMMIT = "rldata.stores.location.remote_commit"


@pytest.fixture
def commit_store(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[str]:
    monkeypatch.setenv("RLDATA_CACHE", str(tmp_path / "cache"))
    url = f"memory://rldata-load-path-{tmp_path.name}/store"
    with stores.create(url, backend="parquet") as w:  # numbered manifests: the commit protocol
        w.append(ted_marked(0, 30))
    yield url


def _calls_into(module: str, target: str) -> set[tuple[str, str]]:
    """(caller module, function) of every call entering ``module`` while loading ``target``."""
    seen: set[tuple[str, str]] = set()

    def profile(frame, event, arg) -> None:
        if event == "call" and frame.f_back is not None:
            callee = frame.f_globals.get("__name__", "")
            caller = frame.f_back.f_globals.get("__name__", "")
            if callee == module and caller != module:
                seen.add((caller, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        rldata.load(target).sample(4)
    finally:
        sys.setprofile(None)
    return seen


def test_the_commit_protocol_is_never_entered_from_a_location(commit_store: str) -> None:
    entered = _calls_into(COMMIT, commit_store)
    assert entered, "loading a numbered-manifest store reads its commits"
    assert not [c for c in entered if c[0] == PLACES], entered


def test_a_location_never_imports_the_commit_protocol() -> None:
    import rldata.stores.location.places as places

    assert COMMIT not in {getattr(v, "__name__", "") for v in vars(places).values()}
    source = places.__file__
    assert source is not None
    with open(source) as fh:
        assert "remote_commit" not in fh.read()
