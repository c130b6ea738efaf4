"""DDPG on Pendulum, online: collect -> store -> sample -> learn, as in the TorchRL overview.

A deterministic actor plus Gaussian exploration noise collects batches; each batch is
written to a replay buffer (memory-mapped files, or an rldata store with ``--store``, which
``rldata.load`` can read back afterwards); the DDPG loss trains on uniform samples and
``SoftUpdate`` moves the target networks after every optimizer step.

Run:
    python examples/ddpg_pendulum_online.py                    # ~20k frames, returns rise to ~-200
    python examples/ddpg_pendulum_online.py --frames 2000 --store /tmp/ddpg-buffer
"""

from __future__ import annotations

import argparse

import torch
from tensordict.nn import TensorDictSequential
from torch import nn

import rldata
from rldata.collectors import SyncDataCollector
from rldata.data import LazyMemmapStorage, ReplayBuffer, StoreStorage
from rldata.envs import GymEnv, RewardSum, TransformedEnv
from rldata.envs.utils import ExplorationType, set_exploration_type
from rldata.modules import MLP, Actor, AdditiveGaussianModule, ValueOperator
from rldata.objectives import DDPGLoss, SoftUpdate


class Scale(nn.Module):
    """Multiply by a constant: stretches ``tanh``'s [-1, 1] to the action bounds."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # schedule
    p.add_argument("--frames", type=int, default=20_000, help="environment steps in total")
    p.add_argument("--frames-per-batch", type=int, default=200, help="steps per collected batch")
    p.add_argument("--init-random-frames", type=int, default=1000, help="random steps first")
    p.add_argument("--optim-steps", type=int, default=200, help="updates per collected batch")
    p.add_argument("--print-every", type=int, default=5, help="batches between progress lines")
    # replay
    p.add_argument("--buffer-size", type=int, default=100_000, help="replay capacity in rows")
    p.add_argument("--batch-size", type=int, default=256, help="rows per update")
    p.add_argument("--store", default=None, help="keep the buffer in an rldata store at this path")
    # loss
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005, help="target update step (eps = 1 - tau)")
    p.add_argument("--actor-lr", type=float, default=1e-3)
    p.add_argument("--critic-lr", type=float, default=1e-3)
    p.add_argument("--sigma", type=float, default=0.5, help="initial exploration noise scale")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)

    # environment: RewardSum writes the running episode return under "episode_reward"
    env = TransformedEnv(GymEnv("Pendulum-v1"), RewardSum())
    env.set_seed(args.seed)
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]
    high = float(env.action_spec.high.max())

    # networks: mu(s) in [-2, 2] and Q(s, a)
    actor = Actor(
        nn.Sequential(
            MLP(n_obs, n_act, [256, 256], activation_class=nn.ReLU), nn.Tanh(), Scale(high)
        ),
        spec=env.action_spec,
    )
    qnet = ValueOperator(
        MLP(n_obs + n_act, 1, [256, 256], activation_class=nn.ReLU),
        in_keys=["observation", "action"],
    )
    noise = AdditiveGaussianModule(
        env.action_spec, sigma_init=args.sigma, sigma_end=0.05, annealing_num_steps=args.frames
    )
    exploration_policy = TensorDictSequential(actor, noise)

    # loss, optimizer, target updater
    loss_fn = DDPGLoss(actor, qnet, gamma=args.gamma)
    optim = torch.optim.Adam(
        [
            {"params": actor.parameters(), "lr": args.actor_lr},
            {"params": qnet.parameters(), "lr": args.critic_lr},
        ]
    )
    updater = SoftUpdate(loss_fn, tau=args.tau)

    # replay: memory-mapped scratch files, or a store that outlives the run
    if args.store is None:
        storage = LazyMemmapStorage(max_size=args.buffer_size)
    else:
        # committed (readable by rldata.load, safe from a crash) every 10k rows and on close
        store = rldata.create(
            args.store, capacity=args.buffer_size, env_id="Pendulum-v1", commit_every=10_000
        )
        storage = StoreStorage(store)
    buffer = ReplayBuffer(storage=storage, batch_size=args.batch_size)

    collector = SyncDataCollector(
        env,
        exploration_policy,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.frames,
        init_random_frames=args.init_random_frames,
    )

    returns: list[float] = []
    losses = {"loss_actor": float("nan"), "loss_value": float("nan")}
    frames = updates = 0
    for i, data in enumerate(collector):
        # collect -> store
        buffer.extend(data)
        frames += data.numel()
        noise.step(data.numel())
        done = data["next", "done"].squeeze(-1)
        returns += data["next", "episode_reward"][done].squeeze(-1).tolist()

        # sample -> learn
        if frames >= args.init_random_frames:
            for _ in range(args.optim_steps):
                out = loss_fn(buffer.sample())
                loss = out["loss_actor"] + out["loss_value"]
                optim.zero_grad()
                loss.backward()
                optim.step()
                updater.step()
                updates += 1
            losses = {k: out[k].item() for k in losses}

        if (i + 1) % args.print_every == 0:
            recent = returns[-5:]
            mean = sum(recent) / len(recent) if recent else float("nan")
            print(
                f"frames {frames:6d}  updates {updates:6d}  episodes {len(returns):4d}  "
                f"mean return (last 5) {mean:9.1f}  loss_actor {losses['loss_actor']:8.3f}  "
                f"loss_value {losses['loss_value']:8.3f}"
            )
    collector.shutdown()
    if args.store is not None:
        store.close()  # commits: rldata.load(args.store) now reads the whole buffer

    # evaluation: the actor without noise (exploration off), one episode
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        eval_return = float(env.rollout(200, actor)["next", "reward"].sum())
    print(f"done: {frames} frames, {updates} updates, eval return {eval_return:.1f}")
    return {
        "frames": frames,
        "updates": updates,
        "buffer_len": len(buffer),
        "returns": returns,
        "eval_return": eval_return,
        "losses": losses,
    }


if __name__ == "__main__":
    main()
