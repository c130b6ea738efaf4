"""A collector's policy acts with one torch CPU thread and no autograd, and torch's own
thread setting is left as it was (``rldata collect --policy RUN`` ran 10x slower than a
Python loop with torch's default threads on busy cores)."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule

from rldata import api
from rldata.collectors import SyncDataCollector
from rldata.collectors.policy_checkpoint import _ActionHead, mlp_policy, save_policy
from rldata.envs import GymEnv
from rldata.errors import ConfigError


class Spy(torch.nn.Module):
    """Pendulum's zero action; remembers torch's threads and grad mode at every call."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[int, bool]] = set()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.add((torch.get_num_threads(), torch.is_grad_enabled()))
        return torch.zeros(*obs.shape[:-1], 1)


@pytest.fixture
def two_threads():
    """torch set to 2 threads for the test (as on a 2-core machine), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def spy_policy() -> tuple[TensorDictModule, Spy]:
    spy = Spy()
    return TensorDictModule(spy, in_keys=["observation"], out_keys=["action"]), spy


def test_a_batch_runs_the_policy_on_one_thread_without_grad_and_restores_torch(two_threads):
    policy, spy = spy_policy()
    collector = SyncDataCollector(GymEnv("Pendulum-v1"), policy, frames_per_batch=20)
    collector.next()
    assert spy.seen == {(1, False)}
    assert torch.get_num_threads() == 2
    collector.shutdown()


def test_num_threads_none_keeps_torchs_setting(two_threads):
    policy, spy = spy_policy()
    collector = SyncDataCollector(
        GymEnv("Pendulum-v1"), policy, frames_per_batch=20, num_threads=None
    )
    collector.next()
    assert spy.seen == {(2, False)}
    collector.shutdown()


@pytest.mark.parametrize("bad", [0, -1, True])
def test_num_threads_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match="num_threads must be a positive integer"):
        SyncDataCollector(GymEnv("Pendulum-v1"), None, frames_per_batch=20, num_threads=bad)


def test_record_with_a_run_directory_acts_on_one_thread(tmp_path, monkeypatch, two_threads):
    env = GymEnv("Pendulum-v1")
    run = tmp_path / "run"
    run.mkdir()
    save_policy(mlp_policy(env.observation_spec, env.action_spec, [8, 8]), run / "policy.pt")
    seen: set[tuple[int, bool]] = set()
    forward = _ActionHead.forward

    def spying(self, *args, **kwargs):
        seen.add((torch.get_num_threads(), torch.is_grad_enabled()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(_ActionHead, "forward", spying)
    api.record("Pendulum-v1", tmp_path / "a", policy=str(run), frames=30, seed=0)
    assert seen == {(1, False)}
    seen.clear()
    api.collect("Pendulum-v1", frames=30, out=str(tmp_path / "b"), policy=str(run), seed=0)
    assert seen == {(1, False)}  # what `rldata collect --policy RUN` runs
    assert torch.get_num_threads() == 2
