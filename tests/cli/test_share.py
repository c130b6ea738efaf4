"""``rldata push | pull | diff | merge`` in-process: results, and one-line errors that write nothing."""

from __future__ import annotations

from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner

from rldata import stores
from rldata.testing import ted_batch
from rldata_cli.main import rldata
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
    assert r.exit_code == 1, r.output  # they differ
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


# (lengths of A's episodes, shift of B's ids against A's): B holds A's episodes from ``shift`` on,
# then new ones; content derives from the traj id, so shared episodes are the overlap.
DIFF_CASES = [(lengths, shift) for lengths in ([6], [6, 9], [4, 7, 5]) for shift in range(4)]


@pytest.mark.parametrize(("lengths", "shift"), DIFF_CASES)
def test_diff_exit_code_and_episodes_by_content(
    tmp_path: Path, lengths: list[int], shift: int
) -> None:
    from rldata.sharing.digest import episode_hashes

    a = make_store(tmp_path / "a", lengths)
    b_lengths = lengths[shift:] + [3] * min(shift, len(lengths))
    b = make_store(tmp_path / "b", b_lengths, first_id=shift)
    r = _run("diff", a, b)
    with stores.open(a) as sa, stores.open(b) as sb:
        ha, hb = episode_hashes(sa), episode_hashes(sb)
    only_a = [h for h in ha.hashes if h not in hb.hashes]
    only_b = [h for h in hb.hashes if h not in ha.hashes]
    assert r.exit_code == (1 if only_a or only_b else 0), r.output
    assert f"{len(only_a)} only in A, {len(only_b)} only in B" in r.output
    for h in only_a + only_b:  # each listed by its content hash, not by a (shared) traj id
        assert h[:12] in r.output
    for h in set(ha.hashes) & set(hb.hashes):
        assert h[:12] not in r.output
    assert "traj ids" not in r.output


def test_diff_lists_length_and_return(tmp_path: Path) -> None:
    from rldata.sharing.digest import episode_hashes

    a = make_store(tmp_path / "a", [5, 8])
    b = make_store(tmp_path / "b", [7], first_id=5)
    r = _run("diff", a, b)
    assert r.exit_code == 1
    with stores.open(a) as sa:
        ha = episode_hashes(sa)
        rewards = sa.get(sa.readable()).get(("next", "reward")).reshape(-1)
        ids = sa.get(sa.readable()).get(("collector", "traj_ids")).reshape(-1)
    for tid, h, n in zip(ha.traj_ids, ha.hashes, ha.lengths):
        ret = float(rewards[ids == tid].double().sum())
        assert f"{h[:12]}  {n:,} steps  return {ret:.3f}  (traj {tid})" in r.output


def test_diff_identical_exits_0_and_trouble_exits_2(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [5, 8])
    r = _run("diff", a, a)
    assert r.exit_code == 0 and "0 only in A, 0 only in B, 2 shared" in r.output, r.output
    r = _run("diff", a, tmp_path / "missing")
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "missing" in lines[0]
