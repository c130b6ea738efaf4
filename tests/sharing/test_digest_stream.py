"""episode_hashes streams the store (row_blocks): the same hashes, lengths and returns as a
whole-store reference, also when episodes span blocks and interleave."""

from __future__ import annotations

import hashlib
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rldata import stores
from rldata.sharing.digest import REWARD_KEY, TRAJ_KEY, _bytes_view, episode_hashes
from rldata.stores.backend import blocks
from rldata.stores.format import schema as sch
from rldata.testing import ted_batch


def reference(store) -> dict[int, tuple[str, int, float]]:
    rows = store.get(store.readable())
    ids = rows.get(sch.key_tuple(TRAJ_KEY)).reshape(-1)
    out = {}
    for tid in ids.unique().tolist():
        ep = rows[(ids == tid).nonzero().reshape(-1)]
        h = hashlib.sha256()
        for key in sorted(k for k in store.schema if k != TRAJ_KEY):
            h.update(_bytes_view(ep.get(sch.key_tuple(key))).tobytes())
        ret = float(ep.get(sch.key_tuple(REWARD_KEY)).reshape(len(ep), -1).double().sum(1).sum())
        out[tid] = (h.hexdigest(), len(ep), ret)
    return out


@pytest.mark.parametrize("capacity", [None, 80, 400])
@pytest.mark.parametrize("interleave", [False, True])
def test_streamed_episode_hashes_match_a_whole_store_reference(
    tmp_path: Path, capacity, interleave
) -> None:
    lengths = [25, 7, 31, 1, 40, 12, 19]
    td = ted_batch(lengths, start_traj_id=3)
    if interleave:  # two envs' rows alternate in blocks of 5 (an episode in many segments)
        ids = td.get(sch.key_tuple(TRAJ_KEY)).reshape(-1)
        first = (ids % 2 == 0).nonzero().reshape(-1)
        second = (ids % 2 == 1).nonzero().reshape(-1)
        order = []
        for i in range(0, max(len(first), len(second)), 5):
            order += first[i : i + 5].tolist() + second[i : i + 5].tolist()
        td = td[torch.tensor(order)]
    with stores.create(tmp_path / "s", capacity=capacity, durable=False) as w:
        for a in range(0, len(td), 16):
            w.append(td[a : a + 16])
            w.commit()
    with stores.open(tmp_path / "s") as s:
        got = episode_hashes(s)
        ref = reference(s)
        assert sorted(set(got.traj_ids)) == sorted(ref)
        for t, h, n, r in zip(got.traj_ids, got.hashes, got.lengths, got.returns):
            assert (h, n) == ref[t][:2]
            assert r == pytest.approx(ref[t][2])


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    envs=st.integers(1, 4),
    chunk=st.integers(1, 9),
    append=st.integers(1, 40),
    seed=st.integers(0, 2**16),
    block_bytes=st.integers(1, 8192),
)
def test_episode_hashes_match_the_reference_for_any_interleaving(
    tmp_path_factory, lengths, envs, chunk, append, seed, block_bytes
) -> None:
    """Episodes are dealt to ``envs`` envs whose rows alternate ``chunk`` at a time, as a
    multi-env collector writes them; ids need not increase along the store; the streaming
    read's blocks (``block_bytes``) split episodes anywhere."""
    td = ted_batch(lengths, start_traj_id=1)
    ids = td.get(sch.key_tuple(TRAJ_KEY)).reshape(-1)
    gen = torch.Generator().manual_seed(seed)
    env_of = torch.randint(envs, (int(ids.max()) + 1,), generator=gen)
    queues = [(env_of[ids] == e).nonzero().reshape(-1).tolist() for e in range(envs)]
    order: list[int] = []
    while any(queues):
        for q in queues:
            order += q[:chunk]
            del q[:chunk]
    td = td[torch.tensor(order)]
    path = tmp_path_factory.mktemp("s") / "s"
    with stores.create(path, durable=False) as w:
        for a in range(0, len(td), append):
            w.append(td[a : a + append])
        w.commit()
    with stores.open(path) as s, mock.patch.object(blocks, "BLOCK_BYTES", block_bytes):
        got = episode_hashes(s)
        ref = reference(s)
    assert sorted(got.traj_ids) == sorted(ref)
    for t, h, n, r in zip(got.traj_ids, got.hashes, got.lengths, got.returns):
        assert (h, n) == ref[t][:2]
        assert r == pytest.approx(ref[t][2])
