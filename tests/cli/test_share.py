"""``rldata push | pull | diff | merge`` in-process: results, and one-line errors that write nothing."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner

from cli.main import rldata
from rldata import stores
from rldata.testing import ted_batch
from tests.sharing.conftest import make_store


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLDATA_CACHE", str(tmp_path / "cache"))


def _run(*args: object):
    return CliRunner().invoke(rldata, [str(a) for a in args])


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0]


def test_push_pull_diff_merge(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [10, 12])
    b = make_store(tmp_path / "b", [12, 5], first_id=1)
    url = "memory://cli-share/a"
    r = _run("push", a, url)
    assert r.exit_code == 0 and "pushed" in r.output and "sha256:" in r.output, r.output
    r = _run("pull", url, tmp_path / "back")
    assert r.exit_code == 0 and "pulled" in r.output, r.output
    r = _run("diff", url, b)
    assert r.exit_code == 0, r.output
    assert "episodes: 1 only in A, 1 only in B, 1 shared" in r.output
    r = _run("merge", url, b, "--out", tmp_path / "m")
    assert r.exit_code == 0 and "merged 2 stores" in r.output and "4 episodes" in r.output, r.output
    with stores.open(tmp_path / "m") as m:
        assert stores.verify(m) == [] and len(m) == 39
    fsspec.filesystem("memory").rm("/cli-share", recursive=True)


def test_unknown_scheme_is_one_line(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [4])
    _one_line_error(_run("push", a, "nosuchfs://bucket/x"), "nosuchfs", "fsspec")
    _one_line_error(_run("pull", "http://example.com/x", tmp_path / "dst"), "refused for safety")
    assert not (tmp_path / "dst").exists()


def test_missing_source_is_one_line(tmp_path: Path) -> None:
    _one_line_error(_run("push", tmp_path / "nope", "memory://cli-missing/x"), "no rldata store")
    assert not fsspec.filesystem("memory").exists("/cli-missing")
    _one_line_error(_run("pull", "memory://cli-missing/x", tmp_path / "dst"), "no rldata store")
    assert not (tmp_path / "dst").exists()


def test_merge_schema_mismatch_is_one_line(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [4])
    b = tmp_path / "b"
    with stores.create(b, capacity=None) as w:
        w.append(ted_batch([4], obs_shape=(5,)))
    _one_line_error(
        _run("merge", a, b, "--out", tmp_path / "m"),
        "cannot merge",
        "'next.observation'",
    )
    assert not (tmp_path / "m").exists()


def test_report_writes_one_page(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [10, 12])
    r = _run("report", a, "--out", tmp_path / "r.html")
    assert r.exit_code == 0 and "wrote" in r.output, r.output
    assert 'id="plot-returns-hist"' in (tmp_path / "r.html").read_text()
    _one_line_error(
        _run("report", tmp_path / "nope", "--out", tmp_path / "x.html"),
        "no rldata store",
    )
    assert not (tmp_path / "x.html").exists()
