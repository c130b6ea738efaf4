"""The TorchRL collector names users port code with (docs/TORCHRL.md, one test per row)."""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule

from rldata.collectors import SyncDataCollector, split_trajectories
from rldata.envs import GymEnv


def test_iterate_len_next_and_shutdown():
    collector = SyncDataCollector(
        GymEnv("Pendulum-v1"), None, frames_per_batch=50, total_frames=100
    )
    assert len(collector) == 2
    batches = list(collector)
    assert [b.batch_size for b in batches] == [torch.Size([50])] * 2
    assert collector.next().batch_size == (50,)
    collector.shutdown()


def test_options_users_set():
    seen = []
    collector = SyncDataCollector(
        GymEnv("Pendulum-v1"),
        None,
        frames_per_batch=20,
        total_frames=20,
        max_frames_per_traj=7,
        init_random_frames=10,
        reset_at_each_iter=True,
        split_trajs=False,
        postproc=lambda td: seen.append(td.batch_size) or td,
    )
    batch = next(iter(collector))
    assert seen == [torch.Size([20])]
    assert batch["next", "truncated"].reshape(-1).nonzero().reshape(-1).tolist() == [6, 13]
    assert split_trajectories(batch)["collector", "mask"].shape[0] == 3


def test_set_seed_state_dict_and_policy_weights():
    net = torch.nn.Linear(3, 1)
    policy = TensorDictModule(net, in_keys=["observation"], out_keys=["action"])
    collector = SyncDataCollector(GymEnv("Pendulum-v1"), policy, frames_per_batch=10)
    assert collector.set_seed(0) == 1
    collector.next()
    state = collector.state_dict()
    with torch.no_grad():
        net.weight.zero_()
    collector.update_policy_weights_()
    other = SyncDataCollector(GymEnv("Pendulum-v1"), policy, frames_per_batch=10)
    other.load_state_dict(state)
    assert other.frames == 10
