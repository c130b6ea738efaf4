"""REDQ (or SAC) on Pendulum, online: SAC with ten critics and a two-critic random target.

Swapping ``SACLoss`` for ``REDQLoss`` is the only change to a SAC script (``--loss sac`` runs
that script); REDQ's point is a high update-to-data ratio (``--utd`` updates per collected
frame), which its ensemble makes stable. The critics run as one batched ensemble, so ten
cost little more than two. On a machine with a GPU the networks, the losses and the replay
live there (``--device``); the collector acts with a CPU copy of the actor, refreshed
after every round of updates.

Run:
    python examples/redq_online.py                       # 5k frames, utd 4, GPU if any
    python examples/redq_online.py --loss sac --utd 1
    python examples/redq_online.py --frames 600 --utd 1 --init-random-frames 200 --device cpu
"""

from __future__ import annotations

import argparse
import copy

import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torch import nn

from rldata.collectors import SyncDataCollector
from rldata.data import LazyTensorStorage, ReplayBuffer
from rldata.envs import GymEnv, RewardSum, TransformedEnv
from rldata.envs.utils import ExplorationType, set_exploration_type
from rldata.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from rldata.objectives import REDQLoss, SACLoss, SoftUpdate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # schedule
    p.add_argument("--frames", type=int, default=5_000, help="environment steps in total")
    p.add_argument("--frames-per-batch", type=int, default=200)
    p.add_argument("--init-random-frames", type=int, default=1000)
    p.add_argument("--utd", type=int, default=4, help="updates per collected frame")
    # replay
    p.add_argument("--batch-size", type=int, default=256)
    # loss
    p.add_argument("--num-qvalue-nets", type=int, default=10, help="ensemble size N")
    p.add_argument("--sub-sample-len", type=int, default=2, help="target subset size M")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=0.005)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--loss", choices=["redq", "sac"], default="redq", help="sac: two critics")
    p.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where networks, losses and the replay live (default: cuda when there is one)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this machine has no CUDA device")

    env = TransformedEnv(GymEnv("Pendulum-v1"), RewardSum())
    env.set_seed(args.seed)
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
    if args.loss == "redq":
        loss_fn = REDQLoss(
            actor,
            qnet,
            num_qvalue_nets=args.num_qvalue_nets,
            sub_sample_len=args.sub_sample_len,
            gamma=args.gamma,
        )
    else:
        loss_fn = SACLoss(actor, qnet, num_qvalue_nets=2, gamma=args.gamma)
    loss_fn.to(device)
    optim = torch.optim.Adam(loss_fn.parameters(), lr=args.lr)
    updater = SoftUpdate(loss_fn, tau=args.tau)

    buffer = ReplayBuffer(
        storage=LazyTensorStorage(max_size=args.frames, device=device), batch_size=args.batch_size
    )
    collector = SyncDataCollector(
        env,
        actor,  # a stochastic actor explores by sampling (the collector runs it in RANDOM mode)
        frames_per_batch=args.frames_per_batch,
        total_frames=args.frames,
        init_random_frames=args.init_random_frames,
        policy_device="cpu",  # acts with a CPU copy when the learner is on the GPU
    )

    returns: list[float] = []
    frames = updates = 0
    out = None
    for data in collector:
        buffer.extend(data)
        frames += data.numel()
        done = data["next", "done"].squeeze(-1)
        returns += data["next", "episode_reward"][done].squeeze(-1).tolist()
        if frames < args.init_random_frames:
            continue
        for _ in range(args.utd * data.numel()):
            out = loss_fn(buffer.sample())
            loss = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
            optim.zero_grad()
            loss.backward()
            optim.step()
            updater.step()
            updates += 1
        collector.update_policy_weights_()
        recent = returns[-3:]
        mean = sum(recent) / len(recent) if recent else float("nan")
        print(
            f"frames {frames:6d}  updates {updates:6d}  mean return (last 3) {mean:9.1f}  "
            f"loss_qvalue {out['loss_qvalue'].item():9.3f}  alpha {out['alpha'].item():.3f}"
        )
    collector.shutdown()

    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        eval_actor = copy.deepcopy(actor).to("cpu")
        eval_return = float(env.rollout(200, eval_actor)["next", "reward"].sum())
    print(f"done: {frames} frames, {updates} updates, eval return {eval_return:.1f}")
    return {
        "frames": frames,
        "updates": updates,
        "returns": returns,
        "eval_return": eval_return,
        "device": str(next(loss_fn.parameters()).device),
    }


if __name__ == "__main__":
    main()
