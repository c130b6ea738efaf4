"""Walkthrough cells In[48]-In[51] (replay buffers), run with ``torchrl`` replaced by ``rldata``.

In[41]-In[42] (a CartPole collector batch of 200 rows) provide ``data``, as in the walkthrough.
"""

from __future__ import annotations

import torch


def fetch_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def test_walkthrough_replay_buffer_cells():
    # In[41]-In[42]
    torch.manual_seed(0)
    from rldata.collectors import SyncDataCollector
    from rldata.envs import GymEnv
    from rldata.envs.utils import RandomPolicy

    env = GymEnv("CartPole-v1", device=fetch_device())
    env.set_seed(0)
    policy = RandomPolicy(env.action_spec)
    collector = SyncDataCollector(
        env, policy, frames_per_batch=200, total_frames=-1, device=fetch_device()
    )
    for data in collector:
        print(data)
        break

    # In[48]
    from rldata.data.replay_buffers import LazyMemmapStorage, ReplayBuffer

    buffer = ReplayBuffer(storage=LazyMemmapStorage(max_size=1000, device=fetch_device()))
    # In[49]
    indices = buffer.extend(data)
    # In[50]
    assert len(buffer) == collector.frames_per_batch
    # In[51]
    sample = buffer.sample(batch_size=30)
    print(sample)

    assert indices.tolist() == list(range(200))
    assert sample.batch_size == (30,)
    assert sample["action"].shape == (30, 2) and sample["action"].dtype == torch.int64
    assert sample["next", "observation"].shape == (30, 4)
    assert sample["collector", "traj_ids"].shape == (30,)
    assert sample["observation"].device.type == fetch_device()
    # every sampled row is one of the collected rows
    rows = data["observation"].cpu()
    hits = (sample["observation"].cpu()[:, None, :] == rows[None]).all(-1).any(-1)
    assert hits.all()
    collector.shutdown()
