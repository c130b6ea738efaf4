"""Checks every collector test applies to what it collected: the TED trajectory invariants."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase


def per_env_streams(batches: list[TensorDictBase]) -> list[TensorDictBase]:
    """Concatenate consecutive batches along time: one ``[T_total]`` stream per env row."""
    if batches[0].batch_dims == 1:
        return [torch.cat(list(batches), 0)]
    rows = batches[0].batch_size[0]
    return [torch.cat([b[i] for b in batches], 0) for i in range(rows)]


def assert_ted_trajectories(streams: list[TensorDictBase], obs_key: str = "observation") -> None:
    """Within a trajectory next obs of row t == obs of row t+1; a new id starts exactly after each done.

    Also: done == terminated | truncated, ids never come back once left, and no id is shared
    between two env rows.
    """
    owner: dict[int, int] = {}
    for row, s in enumerate(streams):
        ids = s["collector", "traj_ids"]
        done = s["next", "done"].reshape(-1)
        nd = s["next", "terminated"].reshape(-1) | s["next", "truncated"].reshape(-1)
        assert torch.equal(done, nd), "done != terminated | truncated"
        assert not s["done"].any(), "a root (pre-step) state is marked done"
        seen: set[int] = set()
        for t in range(len(s)):
            i = int(ids[t])
            assert owner.setdefault(i, row) == row, (
                f"traj id {i} used by env rows {owner[i]} and {row}"
            )
            if t and i != int(ids[t - 1]):
                assert i not in seen, f"traj id {i} comes back at t={t}"
            seen.add(i)
        same = ids[1:] == ids[:-1]
        # a new id starts exactly after each done
        assert torch.equal(~same, done[:-1]), (
            f"id changes at {torch.nonzero(~same).flatten().tolist()} "
            f"but dones at {torch.nonzero(done[:-1]).flatten().tolist()}"
        )
        nxt, cur = s["next", obs_key][:-1][same], s[obs_key][1:][same]
        assert torch.equal(nxt, cur), "next obs of row t != obs of row t+1 within a trajectory"
        # a finished episode's successor starts with a bigger id than any before it
        new_ids = ids[1:][~same]
        assert torch.all(new_ids > torch.cummax(ids[:-1], 0).values[~same]), "new ids must increase"
