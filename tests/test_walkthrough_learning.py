"""The walkthrough's cells In[15]-In[33] (policies, exploration, Q-value actor, DDPG loss,
Adam, SoftUpdate), run with ``torchrl`` replaced by ``rldata``. Comments name the cell."""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from tensordict.nn.distributions import NormalParamExtractor
from torch.distributions import Normal
from torch.optim import Adam

from rldata.envs import GymEnv
from rldata.envs.utils import ExplorationType, set_exploration_type
from rldata.modules import (
    MLP,
    Actor,
    EGreedyModule,
    ProbabilisticActor,
    QValueModule,
    ValueOperator,
)
from rldata.objectives import DDPGLoss, SoftUpdate


def fetch_device() -> str:
    return "cpu"


def test_policies_and_exploration_on_pendulum():
    torch.manual_seed(0)
    # In[15]. The walkthrough's policies here are unbounded (LazyLinear, MLP, Normal); rldata's
    # GymEnv validates actions by default and would raise on the ~5% of steps where they leave
    # [-2, 2] (TorchRL hands them to gymnasium, which clips): switch validation off, as the
    # walkthrough implicitly does.
    env = GymEnv("Pendulum-v1", device=fetch_device(), validate_actions=False)
    module = torch.nn.LazyLinear(out_features=env.action_spec.shape[-1], device=fetch_device())
    policy = TensorDictModule(module, in_keys=["observation"], out_keys=["action"])
    # In[16]
    rollout = env.rollout(max_steps=10, policy=policy)
    assert rollout.batch_size == (10,) and rollout["action"].shape == (10, 1)
    assert rollout["next", "observation"].shape == (10, 3)
    # In[17]
    module = MLP(
        out_features=env.action_spec.shape[-1],
        num_cells=[32, 64],
        activation_class=torch.nn.Tanh,
        device=fetch_device(),
    )
    policy = Actor(module)
    rollout = env.rollout(max_steps=10, policy=policy)
    assert rollout["action"].shape == (10, 1)
    # In[18]
    backbone = MLP(in_features=3, out_features=2, device=fetch_device())
    extractor = NormalParamExtractor()
    module = torch.nn.Sequential(backbone, extractor)
    td_module = TensorDictModule(module, in_keys=["observation"], out_keys=["loc", "scale"])
    policy = ProbabilisticActor(
        td_module,
        in_keys=["loc", "scale"],
        out_keys=["action"],
        distribution_class=Normal,
        return_log_prob=True,
    )
    rollout = env.rollout(max_steps=10, policy=policy)
    for key in ("loc", "scale", "action", policy.log_prob_key):
        assert rollout[key].shape[0] == 10, key
    with set_exploration_type(ExplorationType.MEAN):  # takes the mean as action
        rollout = env.rollout(max_steps=10, policy=policy)
        torch.testing.assert_close(rollout["action"], rollout["loc"])
    with set_exploration_type(ExplorationType.RANDOM):  # samples actions
        rollout = env.rollout(max_steps=10, policy=policy)
        assert not torch.allclose(rollout["action"], rollout["loc"])
    # In[19]-In[21]
    policy = Actor(MLP(3, 1, num_cells=[32, 64], device=fetch_device()))
    exploration_module = EGreedyModule(spec=env.action_spec, annealing_num_steps=1000, eps_init=0.5)
    exploration_policy = TensorDictSequential(policy, exploration_module)
    with set_exploration_type(ExplorationType.MEAN):  # exploration off: the policy's own action
        rollout = env.rollout(max_steps=10, policy=exploration_policy)
        greedy = policy(rollout.select("observation").clone())["action"]
        torch.testing.assert_close(rollout["action"], greedy)
    with set_exploration_type(ExplorationType.RANDOM):  # exploration on: some actions replaced
        rollout = env.rollout(max_steps=10, policy=exploration_policy)
        greedy = policy(rollout.select("observation").clone())["action"]
        assert not torch.allclose(rollout["action"], greedy)
        assert env.action_spec.is_in(rollout["action"][(rollout["action"] != greedy).any(-1)])


def test_q_value_actor_on_cartpole():
    torch.manual_seed(0)
    # In[22]
    env = GymEnv("CartPole-v1", device=fetch_device())
    assert env.action_spec.shape == (2,) and env.action_spec.dtype == torch.int64
    # In[23]
    num_actions = 2
    value_net = TensorDictModule(
        MLP(out_features=num_actions, num_cells=[32, 32], device=fetch_device()),
        in_keys=["observation"],
        out_keys=["action_value"],
    )
    # In[24]
    policy = TensorDictSequential(value_net, QValueModule(action_space=env.action_spec))
    # In[25]
    rollout = env.rollout(max_steps=3, policy=policy)
    assert rollout["action"].shape == (3, 2) and rollout["action"].dtype == torch.int64
    assert rollout["action_value"].shape == (3, 2)
    assert rollout["chosen_action_value"].shape == (3, 1)
    torch.testing.assert_close(
        rollout["chosen_action_value"][:, 0], rollout["action_value"].max(-1).values
    )
    # In[26]
    policy_explore = TensorDictSequential(policy, EGreedyModule(env.action_spec))
    with set_exploration_type(ExplorationType.RANDOM):
        rollout_explore = env.rollout(max_steps=3, policy=policy_explore)
    assert env.action_spec.is_in(rollout_explore["action"])


def test_ddpg_loss_training_step():
    torch.manual_seed(0)
    # In[27] (unbounded actor: validation off, see In[15])
    env = GymEnv("Pendulum-v1", validate_actions=False)
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]
    actor = Actor(MLP(in_features=n_obs, out_features=n_act, num_cells=[32, 32]))
    value_net = ValueOperator(
        MLP(in_features=n_obs + n_act, out_features=1, num_cells=[32, 32]),
        in_keys=["observation", "action"],
    )
    ddpg_loss = DDPGLoss(actor_network=actor, value_network=value_net)
    # In[28]
    rollout = env.rollout(max_steps=100, policy=actor)
    loss_vals = ddpg_loss(rollout)
    expected = {
        "loss_actor",
        "loss_value",
        "pred_value",
        "pred_value_max",
        "target_value",
        "target_value_max",
        "td_error",
    }
    assert set(loss_vals.keys()) == expected
    assert all(v.shape == () for v in loss_vals.values())
    # only the losses carry gradients
    assert all(v.requires_grad == k.startswith("loss_") for k, v in loss_vals.items())
    # In[29]
    total_loss = 0
    for key, val in loss_vals.items():
        if key.startswith("loss_"):
            total_loss += val
    # In[31]
    optim = Adam(ddpg_loss.parameters())
    total_loss.backward()
    before = [p.detach().clone() for p in actor.parameters()]
    optim.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, actor.parameters()))
    # In[32]
    updater = SoftUpdate(ddpg_loss, eps=0.99)
    # In[33]
    online, target = ddpg_loss.target_pairs()
    old = [t.clone() for t in target]
    updater.step()
    for o, t, src in zip(old, target, online):
        torch.testing.assert_close(t, o + 0.01 * (src.detach() - o))
