"""diff and merge, on local stores and on stores at memory:// and s3:// URLs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rldata
from rldata import stores
from rldata.errors import ConfigError, SchemaMismatchError, StoreExistsError
from rldata.sharing import diff, merge, push
from rldata.sharing.digest import episode_hashes
from rldata.testing import ted_batch
from tests.sharing.conftest import make_store


@pytest.fixture
def pair(tmp_path: Path, remote: str) -> tuple[str, str]:
    """A (ids 0..3) and B (ids 3..5) at URLs; episode 3 is the same in both."""
    a = make_store(tmp_path / "a", [10, 12, 7, 9])
    b = make_store(tmp_path / "b", [9, 5, 6], first_id=3)
    push(a, f"{remote}/a")
    push(b, f"{remote}/b")
    return f"{remote}/a", f"{remote}/b"


def test_diff_matches_episodes_by_content(pair: tuple[str, str]) -> None:
    d = diff(*pair)
    assert d.schema == [] and d.specs == []
    assert d.only_a == [0, 1, 2] and d.only_b == [4, 5] and d.shared == [(3, 3)]
    assert not d.identical
    assert "3 only in A, 2 only in B, 1 shared" in "\n".join(d.lines())


def test_diff_of_a_store_with_its_pulled_copy_is_empty(
    pair: tuple[str, str], tmp_path: Path
) -> None:
    rldata.sharing.pull(pair[0], tmp_path / "copy")
    d = diff(pair[0], tmp_path / "copy")
    assert d.identical and len(d.shared) == 4 and d.digest_a == d.digest_b


def test_diff_names_schema_differences(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [4])
    b = tmp_path / "b"
    with stores.create(b, capacity=None) as w:
        w.append(ted_batch([4], obs_shape=(5,)))
    d = diff(a, b)
    assert d.schema == [
        "key 'next.observation': A float32 [3], B float32 [5]",
        "key 'observation': A float32 [3], B float32 [5]",
    ]
    assert d.only_a == [0] and d.only_b == [0]


def test_merge_renumbers_ids_and_keeps_every_episode(
    pair: tuple[str, str], remote: str, tmp_path: Path
) -> None:
    out = f"{remote}/merged"
    summary = merge(list(pair), out)
    assert (summary.transitions, summary.episodes) == (38 + 20, 7)
    with rldata.open(out) as m:
        assert stores.verify(m) == []
        eps = m.episodes()
        assert eps["traj_id"].tolist() == list(range(7))  # no collision: B's id 3 became 4
        assert eps["length"].tolist() == [10, 12, 7, 9, 9, 5, 6]
        assert m.manifest["specs"] == rldata.open(pair[0]).manifest["specs"]
        sources = m.provenance["merged_from"]
        assert [s["source"] for s in sources] == list(pair)
        assert [s["content_digest"] for s in sources] == [
            diff(*pair).digest_a,
            diff(*pair).digest_b,
        ]
        hashes = episode_hashes(m).hashes
    # the merge holds exactly the episodes of A followed by those of B
    for src, part in ((pair[0], hashes[:4]), (pair[1], hashes[4:])):
        with rldata.open(src) as s:
            assert episode_hashes(s).hashes == part
    d = diff(pair[0], out)
    assert d.only_a == [] and len(d.shared) == 4 and d.only_b == [4, 5, 6]


def test_merge_of_interleaved_episodes(tmp_path: Path) -> None:
    """Rows of a batch of envs interleave episodes; ids follow first appearance."""
    from rldata.testing import ted_rollout

    a = tmp_path / "a"
    roll = ted_rollout(num_envs=3, steps=8)
    with stores.create(a, capacity=None) as w:
        w.append(roll.reshape(-1))
    b = make_store(tmp_path / "b", [6, 6])
    merge([a, b], tmp_path / "m")
    with stores.open(tmp_path / "m") as m, stores.open(a) as sa:
        assert stores.verify(m) == []
        ids = m.get(m.readable())["collector", "traj_ids"]
        n = len(sa)
        old = sa.get(sa.readable())["collector", "traj_ids"]
        # same partition of rows into episodes, ids 0.. for A then continuing for B
        assert torch.equal(torch.unique(ids[:n]), torch.arange(len(torch.unique(old))))
        assert (ids[:n, None] == ids[None, :n]).equal(old[:, None] == old[None, :])
        assert int(ids[n:].min()) == len(torch.unique(old))


def test_merge_refuses_mismatched_schemas_before_writing(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [4])
    b = tmp_path / "b"
    with stores.create(b, capacity=None) as w:
        w.append(ted_batch([4], obs_shape=(5,)))
    with pytest.raises(SchemaMismatchError, match="key 'next.observation': A float32 \\[3\\], B"):
        merge([a, b], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_merge_needs_two_sources_and_a_new_out(tmp_path: Path) -> None:
    a = make_store(tmp_path / "a", [4])
    with pytest.raises(ConfigError, match="at least two"):
        merge([a], tmp_path / "m")
    with pytest.raises(StoreExistsError):
        merge([a, a], a)
