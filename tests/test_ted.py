"""The TED contract: validation messages, step_mdp, episode bookkeeping."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tensordict import TensorDict

from rldata.errors import TedFormatError
from rldata.ted import (
    TED_KEYS,
    assign_traj_ids,
    episode_ends,
    episode_starts,
    segments,
    step_mdp,
    validate,
)


def ted_rows(n: int = 4, obs: int = 3, next_done=None, traj_ids=None) -> TensorDict:
    flags = lambda: torch.zeros(n, 1, dtype=torch.bool)  # noqa: E731
    next_done = torch.zeros(n, 1, dtype=torch.bool) if next_done is None else next_done
    td = TensorDict(
        {
            "observation": torch.randn(n, obs),
            "action": torch.randn(n, 1),
            "done": flags(),
            "terminated": flags(),
            "truncated": flags(),
            "next": {
                "observation": torch.randn(n, obs),
                "reward": torch.randn(n, 1),
                "done": next_done,
                "terminated": next_done.clone(),
                "truncated": flags(),
            },
        },
        [n],
    )
    if traj_ids is not None:
        td["collector", "traj_ids"] = traj_ids
    return td


def test_valid_rows_pass():
    validate(ted_rows(traj_ids=torch.zeros(4, dtype=torch.int64)), require_traj_ids=True)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda td: td.del_("terminated"), "'terminated' is missing"),
        (
            lambda td: td.set(("next", "done"), torch.zeros(4, 1)),
            "'next.done': expected dtype torch.bool",
        ),
        (
            lambda td: td.set(("next", "observation"), torch.zeros(4, 2)),
            r"'next.observation': expected shape \(4, 3\), got \(4, 2\)",
        ),
        (
            lambda td: td.set(("next", "reward"), torch.zeros(4, 1, dtype=torch.int64)),
            "'next.reward': expected a float",
        ),
        (
            lambda td: td.set(("collector", "traj_ids"), torch.zeros(4, dtype=torch.int32)),
            "'collector.traj_ids': expected dtype torch.int64",
        ),
    ],
    ids=["missing_flag", "float_done", "next_obs_shape", "int_reward", "int32_traj_ids"],
)
def test_validation_errors_name_key_and_expected_vs_given(mutate, message):
    td = ted_rows()
    mutate(td)
    with pytest.raises(TedFormatError, match=message):
        validate(td)


def test_validation_requires_a_batch_dim_and_a_tensordict():
    with pytest.raises(TedFormatError, match="batch dimension"):
        validate(ted_rows()[0])
    with pytest.raises(TedFormatError, match="got dict"):
        validate({"observation": 1})  # type: ignore[arg-type]


def test_validation_with_renamed_nested_observation_key():
    td = ted_rows()
    td["pixels", "cam"] = torch.zeros(4, 2, 2)
    td["next", "pixels", "cam"] = torch.zeros(4, 2, 2)
    validate(td, observation_keys=[("pixels", "cam"), "observation"])
    td["next", "pixels", "cam"] = torch.zeros(4, 2, 3)
    with pytest.raises(TedFormatError, match="next.pixels.cam"):
        validate(td, observation_keys=[("pixels", "cam")])


def test_step_mdp_defaults_match_the_walkthrough():
    td = ted_rows(1)[0]
    out = step_mdp(td)
    assert set(out.keys()) == {"observation", "done", "terminated", "truncated"}
    assert torch.equal(out["observation"], td["next", "observation"])


@pytest.mark.parametrize(
    "kwargs, present, absent",
    [
        ({"exclude_reward": False}, {"reward"}, {"action"}),
        ({"exclude_action": False}, {"action"}, {"reward"}),
        ({"exclude_done": True}, {"observation"}, {"done", "terminated", "truncated"}),
        ({"keep_other": False}, {"observation"}, {"extra"}),
        ({}, {"extra"}, {"next"}),
    ],
)
def test_step_mdp_options(kwargs, present, absent):
    td = ted_rows(2)
    td["extra"] = torch.ones(2)
    keys = set(step_mdp(td, **kwargs).keys())
    assert present <= keys
    assert not (absent & keys)


def test_step_mdp_writes_into_a_given_tensordict():
    td = ted_rows(2)
    target = TensorDict({}, [2])
    assert step_mdp(td, next_tensordict=target) is target
    assert torch.equal(target["observation"], td["next", "observation"])


EPISODE_CASES = {
    "one_episode_cut_at_the_end": ([0, 0, 0, 0], None, [(0, 4)]),
    "done_in_the_middle": ([0, 1, 0, 0], None, [(0, 2), (2, 2)]),
    "length_one_episodes": ([1, 1, 1, 0], None, [(0, 1), (1, 1), (2, 1), (3, 1)]),
    "traj_id_change_without_done": ([0, 0, 0, 0], [4, 4, 9, 9], [(0, 2), (2, 2)]),
}


@pytest.mark.parametrize("name", EPISODE_CASES)
def test_segments_from_done_flags_and_traj_ids(name):
    done, ids, expected = EPISODE_CASES[name]
    td = ted_rows(
        len(done),
        next_done=torch.tensor(done, dtype=torch.bool).unsqueeze(-1),
        traj_ids=None if ids is None else torch.tensor(ids),
    )
    assert segments(td) == expected
    starts = [s for s, _ in expected]
    assert torch.nonzero(episode_starts(td)).reshape(-1).tolist() == starts
    assert episode_ends(td).sum().item() == len(expected)


def test_assign_traj_ids_numbers_episodes_per_env_uniquely():
    done = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 1]], dtype=torch.bool).unsqueeze(-1)
    ids = assign_traj_ids(done, start_id=10)
    assert ids.tolist() == [[10, 10, 11, 11], [12, 13, 13, 13]]
    assert assign_traj_ids(torch.tensor([0, 1, 0], dtype=torch.bool)).tolist() == [0, 0, 1]


def test_keys_are_data_and_can_be_renamed():
    keys = dataclasses.replace(TED_KEYS, observation="state")
    td = ted_rows(2)
    td.rename_key_("observation", "state")
    td.rename_key_(("next", "observation"), ("next", "state"))
    validate(td, keys=keys)
    assert keys.nxt(keys.reward) == ("next", "reward")
    with pytest.raises(dataclasses.FrozenInstanceError):
        keys.observation = "x"  # type: ignore[misc]
