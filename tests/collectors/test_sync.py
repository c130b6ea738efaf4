"""SyncDataCollector: batch shapes, traj-id continuity, episode boundaries, state and seeding."""

from __future__ import annotations

import pytest
import torch
from counting_env import CountingEnv
from ted_checks import assert_ted_trajectories, per_env_streams

from rldata.collectors import SyncDataCollector, TrajCounter
from rldata.errors import ConfigError

CASES = {
    # name: (env batch, frames_per_batch, n batches, max_frames_per_traj)
    "single env": ((), 8, 4, None),
    "single env, batch shorter than an episode": ((), 2, 9, None),
    "batched env": ((3,), 12, 4, None),
    "batched env, truncation": ((4,), 8, 5, 2),
    "single env, truncation": ((), 7, 3, 1),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_generic_loop_keeps_trajectories(case):
    batch, fpb, n, max_steps = CASES[case]
    env = CountingEnv(batch)
    collector = SyncDataCollector(
        env, None, frames_per_batch=fpb, total_frames=fpb * n, max_frames_per_traj=max_steps
    )
    batches = list(collector)
    assert len(batches) == n
    expected = (fpb,) if not batch else (batch[0], fpb // batch[0])
    assert all(tuple(b.batch_size) == expected for b in batches)
    streams = per_env_streams(batches)
    assert_ted_trajectories(streams)
    ids = torch.cat([s["collector", "traj_ids"] for s in streams])
    assert ids.min() == 0
    if max_steps is not None:
        for s in streams:  # every episode is cut at max_steps: no longer run of one id
            _, counts = torch.unique_consecutive(s["collector", "traj_ids"], return_counts=True)
            assert counts.max() <= max_steps


def test_traj_ids_continue_from_start_and_stride():
    collector = SyncDataCollector(
        CountingEnv((2,)),
        None,
        frames_per_batch=20,
        total_frames=20,
        traj_id_start=100,
        traj_id_stride=3,
        traj_id_offset=2,
    )
    ids = next(iter(collector))["collector", "traj_ids"].unique()
    assert ids.min() == 102
    assert torch.all((ids - 102) % 3 == 0)


def test_state_dict_resumes_the_id_sequence():
    first = SyncDataCollector(CountingEnv(), None, frames_per_batch=10, total_frames=20)
    seen = torch.cat([b["collector", "traj_ids"] for b in first])
    state = first.state_dict()
    second = SyncDataCollector(CountingEnv(), None, frames_per_batch=10, total_frames=40)
    second.load_state_dict(state)
    assert second.frames == 20
    later = torch.cat([b["collector", "traj_ids"] for b in second])
    assert len(later) == 20
    assert later.min() > seen.max()


def test_reset_at_each_iter_starts_new_trajectories():
    collector = SyncDataCollector(
        CountingEnv(lengths=(50,)),
        None,
        frames_per_batch=4,
        total_frames=8,
        reset_at_each_iter=True,
    )
    a, b = list(collector)
    assert a["collector", "traj_ids"].unique().tolist() == [0]
    assert b["collector", "traj_ids"].unique().tolist() == [1]


def test_split_trajs_pads_with_mask():
    collector = SyncDataCollector(
        CountingEnv(), None, frames_per_batch=10, total_frames=10, split_trajs=True
    )
    out = next(iter(collector))
    # lengths 3, 5 then a cut episode of 2
    assert out["collector", "mask"].sum(-1).tolist() == [3, 5, 2]
    assert out.batch_size == torch.Size([3, 5])


def test_policy_is_called_and_exploration_mode_is_set():
    from rldata.exploration import ExplorationType, exploration_type

    modes = []

    def policy(td):
        modes.append(exploration_type())
        td.set("action", torch.full((1,), 0.5))
        return td

    collector = SyncDataCollector(
        CountingEnv(),
        policy,
        frames_per_batch=4,
        total_frames=4,
        exploration_type=ExplorationType.DETERMINISTIC,
    )
    batch = next(iter(collector))
    assert torch.all(batch["action"] == 0.5)
    assert torch.all(batch["next", "reward"] == 0.5)
    assert set(modes) == {ExplorationType.DETERMINISTIC}


def test_init_random_frames_ignore_the_policy():
    def policy(td):
        td.set("action", torch.full((1,), 0.5))
        return td

    collector = SyncDataCollector(
        CountingEnv(), policy, frames_per_batch=4, total_frames=8, init_random_frames=4
    )
    a, b = list(collector)
    assert not torch.all(a["action"] == 0.5)
    assert torch.all(b["action"] == 0.5)


def test_init_random_frames_keep_the_keys_the_policy_writes():
    def policy(td):
        td.set("action", torch.full((1,), 0.5))
        td.set("loc", torch.full((1,), 0.25))
        return td

    collector = SyncDataCollector(
        CountingEnv(), policy, frames_per_batch=4, total_frames=8, init_random_frames=4
    )
    a, b = list(collector)
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    assert not torch.all(a["action"] == 0.5)
    assert torch.all(a["loc"] == 0.25)


BAD = {
    "zero frames_per_batch": dict(frames_per_batch=0),
    "negative total_frames": dict(frames_per_batch=4, total_frames=-5),
    "batch not a multiple of envs": dict(frames_per_batch=5, env=(2,)),
    "zero max_frames_per_traj": dict(frames_per_batch=4, max_frames_per_traj=0),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_arguments_raise_config_error(case):
    kw = dict(BAD[case])
    env = CountingEnv(kw.pop("env", ()))
    with pytest.raises(ConfigError):
        SyncDataCollector(env, None, **kw)


def test_shutdown_closes_envs_it_built_and_stops_iteration():
    collector = SyncDataCollector(lambda: CountingEnv(), None, frames_per_batch=4, total_frames=8)
    env = collector.env
    collector.shutdown()
    assert env.closed
    with pytest.raises(ConfigError):
        collector.next()


def test_traj_counter_sequences():
    c = TrajCounter(start=5, stride=2, offset=1)
    assert [c.take_one() for _ in range(3)] == [6, 8, 10]
    assert c.take(2).tolist() == [12, 14]
    with pytest.raises(ConfigError):
        TrajCounter(stride=2, offset=2)
