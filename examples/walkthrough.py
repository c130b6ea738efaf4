"""The TorchRL walkthrough, end to end, with ``torchrl`` replaced by ``rldata``.

Each block names the walkthrough cell it reproduces (``In[5]`` ...): TensorDicts, the
gymnasium wrapper and TED, ``step_mdp``, rollouts, transforms, TensorDict policies,
probabilistic actors and exploration, a Q-value actor, the DDPG loss with Adam and
``SoftUpdate``, a collector, and a replay buffer on disk.

One change from TorchRL: ``GymEnv`` checks every action against the action spec. The
walkthrough's Pendulum policies are unbounded (a linear layer, an MLP, a Normal), so those
envs are built with ``validate_actions=False`` (TorchRL hands such actions to gymnasium,
which clips them). A ``TanhNormal`` actor stays in bounds and needs no such switch.

Run:
    python examples/walkthrough.py [--device cpu] [--quiet]
"""

from __future__ import annotations

import argparse
import warnings

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.nn.distributions import NormalParamExtractor
from torch.distributions import Normal
from torch.optim import Adam

from rldata.collectors import SyncDataCollector
from rldata.data.replay_buffers import LazyMemmapStorage, ReplayBuffer
from rldata.envs import GymEnv, StepCounter, TransformedEnv, step_mdp
from rldata.envs.utils import ExplorationType, RandomPolicy, set_exploration_type
from rldata.modules import (
    MLP,
    Actor,
    EGreedyModule,
    ProbabilisticActor,
    QValueModule,
    TanhNormal,
    ValueOperator,
)
from rldata.objectives import DDPGLoss, SoftUpdate


def fetch_device() -> str:
    """In[4]: 'cuda' when a GPU is present, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=fetch_device(), help="where envs and modules run")
    parser.add_argument("--quiet", action="store_true", help="do not print the TensorDicts")
    args = parser.parse_args(argv)
    device = args.device
    show = (lambda *a: None) if args.quiet else print
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)

    # --- The TensorDict ------------------------------------------------------------------
    # In[2], In[3]
    batch_size = 5
    tensordict = TensorDict(
        source={
            "key 1": torch.zeros(batch_size, 3),
            "key 2": torch.zeros(batch_size, 5, 6, dtype=torch.bool),
        },
        batch_size=[batch_size],
    )
    show(tensordict)
    show(tensordict[2])
    show(tensordict["key 1"] is tensordict.get("key 1"))

    # --- Environment wrappers ------------------------------------------------------------
    # In[5] .. In[10]: reset, a random action, one step (the TED layout: a "next" entry)
    env = GymEnv("Pendulum-v1", device=device)
    reset = env.reset()
    show(reset)
    reset_with_action = env.rand_action(reset)
    show(reset_with_action["action"])
    stepped_data = env.step(reset_with_action)
    show(stepped_data)
    show(stepped_data["next"]["observation"])

    # In[11]: step_mdp brings "next" to the root for the following step
    data = step_mdp(stepped_data)
    show(data)

    # In[12]: rollout closes the loop (random actions by default)
    rollout = env.rollout(max_steps=10)
    show(rollout)

    # In[13], In[14]: StepCounter counts steps and truncates after max_steps
    transformed_env = TransformedEnv(env, StepCounter(max_steps=10))
    rollout = transformed_env.rollout(max_steps=100)
    show(rollout["next", "truncated"].squeeze(-1))
    truncated_after = len(rollout)

    # --- TensorDict modules --------------------------------------------------------------
    # In[15], In[16]: a linear policy reading "observation", writing "action"
    env = GymEnv("Pendulum-v1", device=device, validate_actions=False)
    module = torch.nn.LazyLinear(out_features=env.action_spec.shape[-1], device=device)
    policy = TensorDictModule(module, in_keys=["observation"], out_keys=["action"])
    rollout = env.rollout(max_steps=10, policy=policy)
    show(rollout)

    # In[17]: MLP and Actor (a TensorDictModule with the default keys)
    module = MLP(
        out_features=env.action_spec.shape[-1],
        num_cells=[32, 64],
        activation_class=torch.nn.Tanh,
        device=device,
    )
    policy = Actor(module)
    rollout = env.rollout(max_steps=10, policy=policy)

    # In[18]: a probabilistic policy: MLP -> (loc, scale) -> Normal -> action and log-prob
    backbone = MLP(in_features=3, out_features=2, device=device)
    module = torch.nn.Sequential(backbone, NormalParamExtractor())
    td_module = TensorDictModule(module, in_keys=["observation"], out_keys=["loc", "scale"])
    policy = ProbabilisticActor(
        td_module,
        in_keys=["loc", "scale"],
        out_keys=["action"],
        distribution_class=Normal,
        return_log_prob=True,
    )
    rollout = env.rollout(max_steps=10, policy=policy)
    show(rollout)

    # the exploration type picks the point estimate or a sample
    with set_exploration_type(ExplorationType.MEAN):
        rollout = env.rollout(max_steps=10, policy=policy)
        mean_is_loc = torch.allclose(rollout["action"], rollout["loc"])
    with set_exploration_type(ExplorationType.RANDOM):
        rollout = env.rollout(max_steps=10, policy=policy)

    # The same actor with a TanhNormal: samples stay inside the action bounds, so the
    # validating env accepts them as they are.
    bounded_env = GymEnv("Pendulum-v1", device=device)
    td_module = TensorDictModule(
        torch.nn.Sequential(
            MLP(in_features=3, out_features=2, device=device), NormalParamExtractor()
        ),
        in_keys=["observation"],
        out_keys=["loc", "scale"],
    )
    tanh_policy = ProbabilisticActor(
        td_module,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -2.0, "high": 2.0},
        return_log_prob=True,
    )
    rollout = bounded_env.rollout(max_steps=10, policy=tanh_policy)
    tanh_in_bounds = bool(bounded_env.action_spec.is_in(rollout["action"]))

    # In[19] .. In[21]: epsilon-greedy exploration after a deterministic policy
    policy = Actor(MLP(3, 1, num_cells=[32, 64], device=device))
    exploration_module = EGreedyModule(spec=env.action_spec, annealing_num_steps=1000, eps_init=0.5)
    exploration_policy = TensorDictSequential(policy, exploration_module)
    with set_exploration_type(ExplorationType.MEAN):  # exploration off
        rollout = env.rollout(max_steps=10, policy=exploration_policy)
    with set_exploration_type(ExplorationType.RANDOM):  # exploration on
        rollout = env.rollout(max_steps=10, policy=exploration_policy)

    # --- Q-value actors --------------------------------------------------------------------
    # In[22] .. In[25]: a value per action, then the argmax as a one-hot action
    env = GymEnv("CartPole-v1", device=device)
    show(env.action_spec)
    num_actions = 2
    value_net = TensorDictModule(
        MLP(out_features=num_actions, num_cells=[32, 32], device=device),
        in_keys=["observation"],
        out_keys=["action_value"],
    )
    policy = TensorDictSequential(value_net, QValueModule(action_space=env.action_spec))
    rollout = env.rollout(max_steps=3, policy=policy)
    show(rollout)

    # In[26]: the same with epsilon-greedy exploration
    policy_explore = TensorDictSequential(policy, EGreedyModule(env.action_spec))
    with set_exploration_type(ExplorationType.RANDOM):
        rollout_explore = env.rollout(max_steps=3, policy=policy_explore)

    # --- Model optimization ----------------------------------------------------------------
    # In[27], In[28]: the DDPG loss returns a TensorDict of losses and metadata
    env = GymEnv("Pendulum-v1", validate_actions=False)
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]
    actor = Actor(MLP(in_features=n_obs, out_features=n_act, num_cells=[32, 32]))
    value_net = ValueOperator(
        MLP(in_features=n_obs + n_act, out_features=1, num_cells=[32, 32]),
        in_keys=["observation", "action"],
    )
    ddpg_loss = DDPGLoss(actor_network=actor, value_network=value_net)
    rollout = env.rollout(max_steps=100, policy=actor)
    loss_vals = ddpg_loss(rollout)
    show(loss_vals)

    # In[29]: only the "loss_*" entries carry gradients
    total_loss = 0
    for key, val in loss_vals.items():
        if key.startswith("loss_"):
            total_loss += val

    # In[31] .. In[33]: an optimizer step, then move the target networks
    optim = Adam(ddpg_loss.parameters())
    total_loss.backward()
    optim.step()
    optim.zero_grad()
    updater = SoftUpdate(ddpg_loss, eps=0.99)
    updater.step()

    # --- Data collection and storage -------------------------------------------------------
    # In[41], In[42]: a never-ending collector of 200-frame batches
    torch.manual_seed(0)
    env = GymEnv("CartPole-v1", device=device)
    env.set_seed(0)
    policy = RandomPolicy(env.action_spec)
    collector = SyncDataCollector(env, policy, frames_per_batch=200, total_frames=-1, device=device)
    for data in collector:
        show(data)
        break

    # In[48] .. In[51]: a replay buffer kept in memory-mapped files
    buffer = ReplayBuffer(storage=LazyMemmapStorage(max_size=1000, device=device))
    indices = buffer.extend(data)
    assert len(buffer) == collector.frames_per_batch
    sample = buffer.sample(batch_size=30)
    show(sample)
    collector.shutdown()

    figures = {
        "truncated_after": truncated_after,
        "mean_is_loc": mean_is_loc,
        "tanh_in_bounds": tanh_in_bounds,
        "explore_actions": rollout_explore["action"].shape,
        "loss_keys": sorted(loss_vals.keys()),
        "total_loss": float(total_loss),
        "buffer_len": len(buffer),
        "indices": len(indices),
        "sample_batch": tuple(sample.batch_size),
    }
    print(figures)
    return figures


if __name__ == "__main__":
    main()
