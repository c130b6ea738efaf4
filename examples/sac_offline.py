"""SAC offline: record a Pendulum dataset once, then train from the store alone.

``rldata.record`` runs a random policy in Pendulum and writes every transition to a store
on disk (committed as it goes). ``rldata.load`` opens that store read-only as a replay
buffer; the SAC loss then trains for ``--steps`` updates without touching the environment
again. A second run with the same ``--path`` skips the recording and reuses the dataset.

Run:
    python examples/sac_offline.py --path datasets/pendulum-random --frames 20000 --steps 5000
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn

import rldata
from rldata.envs import GymEnv
from rldata.envs.utils import ExplorationType, set_exploration_type
from rldata.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from rldata.objectives import SACLoss, SoftUpdate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # dataset
    p.add_argument("--path", default=None, help="store directory (default: a temporary one)")
    p.add_argument("--frames", type=int, default=20_000, help="transitions to record")
    # schedule
    p.add_argument("--steps", type=int, default=5_000, help="gradient updates")
    p.add_argument("--print-every", type=int, default=500, help="updates between loss lines")
    p.add_argument("--eval-episodes", type=int, default=1, help="episodes run after training")
    # loss
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    path = args.path or os.path.join(tempfile.mkdtemp(prefix="rldata-sac-"), "pendulum")

    # 1. record (once): random actions, every transition committed to the store
    if not os.path.exists(os.path.join(path, "rldata.json")):
        env = GymEnv("Pendulum-v1")
        env.set_seed(args.seed)
        summary = rldata.record(env, path, frames=args.frames)
        print(
            f"recorded {summary.frames} frames, {summary.episodes} episodes, "
            f"mean return {summary.mean_return:.1f} -> {summary.path}"
        )

    # 2. load: a read-only replay buffer over the committed rows
    buffer = rldata.load(path, batch_size=args.batch_size)
    env = GymEnv("Pendulum-v1")  # only for the specs and the evaluation at the end
    print(f"loaded {len(buffer)} rows from {path}")

    # 3. networks: a tanh-squashed Gaussian policy and a Q template (SAC makes two copies)
    n_obs = env.observation_spec["observation"].shape[-1]
    n_act = env.action_spec.shape[-1]
    spec = env.action_spec
    actor = ProbabilisticActor(
        TensorDictModule(
            nn.Sequential(
                MLP(n_obs, 2 * n_act, [256, 256], activation_class=nn.ReLU),
                NormalParamExtractor(),
            ),
            in_keys=["observation"],
            out_keys=["loc", "scale"],
        ),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": float(spec.low.min()), "high": float(spec.high.max())},
        spec=spec,
    )
    qnet = ValueOperator(
        MLP(n_obs + n_act, 1, [256, 256], activation_class=nn.ReLU),
        in_keys=["observation", "action"],
    )
    loss_fn = SACLoss(actor, qnet, num_qvalue_nets=2, gamma=args.gamma)
    optim = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)  # actor, critics and alpha
    updater = SoftUpdate(loss_fn, tau=args.tau)

    # 4. train from the store
    history = []
    for step in range(1, args.steps + 1):
        out = loss_fn(buffer.sample())
        loss = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        optim.zero_grad()
        loss.backward()
        optim.step()
        updater.step()
        if step % args.print_every == 0 or step == args.steps:
            row = {k: out[k].item() for k in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha")}
            history.append(row)
            print(f"step {step:6d}  " + "  ".join(f"{k} {v:9.4f}" for k, v in row.items()))

    # 5. evaluate the trained policy (its mean action) in the environment
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        returns = [
            float(env.rollout(200, actor)["next", "reward"].sum())
            for _ in range(args.eval_episodes)
        ]
    print(f"eval return {sum(returns) / len(returns):.1f} over {len(returns)} episode(s)")
    return {"path": path, "rows": len(buffer), "history": history, "eval_returns": returns}


if __name__ == "__main__":
    main()
