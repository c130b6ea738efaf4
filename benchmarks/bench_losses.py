"""Updates per second of rldata's DDPG / SAC / REDQ losses, side by side with peers.

One update = sample a batch of 256 rows from 10k in memory, forward, backward,
Adam step and target update, on CPU with 2 threads, Pendulum shapes (obs 3, action 1)
and 2x256 ReLU MLPs. Peers: TorchRL's DDPGLoss / SACLoss / REDQLoss (same networks,
same loop) and Stable-Baselines3's ``DDPG.train()`` / ``SAC.train()`` (its own loop,
which samples from its replay buffer). A peer that is not installed is skipped with
a note. Every contender gets the same optimizer: ``torch.optim.Adam(lr=3e-4)`` with
torch's defaults (``--fused``: fused Adam for all, SB3 through ``optimizer_kwargs``).
Contenders run in interleaved rounds of ``--seconds``; each cell is the median of the
rounds with the min-max spread, ratios are taken round by round.

    python benchmarks/bench_losses.py [--seconds 0.5] [--rounds 8] [--only sac,redq] [--fused] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import per_round, region, rounds, spread, table, write_results  # noqa: E402

OBS, ACT, HIDDEN, BATCH, ROWS = 3, 1, [256, 256], 256, 10_000
LOW, HIGH = -2.0, 2.0
GAMMA, TAU, LR = 0.99, 0.005, 3e-4


def make_data() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            "observation": torch.randn(ROWS, OBS, generator=g),
            "action": torch.rand(ROWS, ACT, generator=g) * (HIGH - LOW) + LOW,
            "done": torch.zeros(ROWS, 1, dtype=torch.bool),
            "terminated": torch.zeros(ROWS, 1, dtype=torch.bool),
            "truncated": torch.zeros(ROWS, 1, dtype=torch.bool),
            "next": {
                "observation": torch.randn(ROWS, OBS, generator=g),
                "reward": torch.randn(ROWS, 1, generator=g),
                "done": torch.rand(ROWS, 1, generator=g) < 0.005,
                "terminated": torch.rand(ROWS, 1, generator=g) < 0.005,
                "truncated": torch.zeros(ROWS, 1, dtype=torch.bool),
            },
        },
        batch_size=[ROWS],
    )


# --- one update loop, shared by rldata and TorchRL -----------------------------------


def loss_loop(
    loss: torch.nn.Module, updater, data: TensorDict, fused: bool
) -> Callable[[int], None]:
    optim = torch.optim.Adam(loss.parameters(), lr=LR, fused=fused or None)  # None: defaults

    def run(n: int) -> None:
        for _ in range(n):
            batch = data[torch.randint(ROWS, (BATCH,))]
            out = loss(batch)
            total = sum(v for k, v in out.items() if k.startswith("loss_"))
            optim.zero_grad()
            total.backward()
            optim.step()
            updater.step()

    return run


def rldata_case(algo: str, data: TensorDict, fused: bool = False) -> Callable[[int], None]:
    from rldata.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
    from rldata.objectives import DDPGLoss, REDQLoss, SACLoss, SoftUpdate

    relu = torch.nn.ReLU
    q = ValueOperator(
        MLP(OBS + ACT, 1, HIDDEN, activation_class=relu), in_keys=["observation", "action"]
    )
    if algo == "ddpg":
        actor = Actor(MLP(OBS, ACT, HIDDEN, activation_class=relu))
        loss = DDPGLoss(actor, q, gamma=GAMMA)
    else:
        head = TensorDictModule(
            torch.nn.Sequential(
                MLP(OBS, 2 * ACT, HIDDEN, activation_class=relu), NormalParamExtractor()
            ),
            in_keys=["observation"],
            out_keys=["loc", "scale"],
        )
        actor = ProbabilisticActor(
            head,
            in_keys=["loc", "scale"],
            distribution_class=TanhNormal,
            distribution_kwargs={"low": LOW, "high": HIGH},
        )
        if algo == "sac":
            loss = SACLoss(actor, q, num_qvalue_nets=2, gamma=GAMMA)
        else:
            loss = REDQLoss(actor, q, num_qvalue_nets=10, sub_sample_len=2, gamma=GAMMA)
    return loss_loop(loss, SoftUpdate(loss, tau=TAU), data, fused=fused)


def torchrl_case(algo: str, data: TensorDict, fused: bool = False) -> Callable[[int], None]:
    from torchrl.data import Bounded
    from torchrl.modules import MLP, Actor, ProbabilisticActor, TanhNormal, ValueOperator
    from torchrl.objectives import DDPGLoss, REDQLoss, SACLoss, SoftUpdate

    relu = torch.nn.ReLU
    spec = Bounded(LOW, HIGH, shape=(ACT,))
    q = ValueOperator(
        MLP(in_features=OBS + ACT, out_features=1, num_cells=HIDDEN, activation_class=relu),
        in_keys=["observation", "action"],
    )
    if algo == "ddpg":
        actor = Actor(
            MLP(in_features=OBS, out_features=ACT, num_cells=HIDDEN, activation_class=relu),
            spec=spec,
        )
        loss = DDPGLoss(actor, q)
    else:
        head = TensorDictModule(
            torch.nn.Sequential(
                MLP(in_features=OBS, out_features=2 * ACT, num_cells=HIDDEN, activation_class=relu),
                NormalParamExtractor(),
            ),
            in_keys=["observation"],
            out_keys=["loc", "scale"],
        )
        actor = ProbabilisticActor(
            head,
            in_keys=["loc", "scale"],
            spec=spec,
            distribution_class=TanhNormal,
            distribution_kwargs={"low": LOW, "high": HIGH},
            return_log_prob=False,
        )
        cls = SACLoss if algo == "sac" else REDQLoss
        n = 2 if algo == "sac" else 10
        loss = cls(actor, q, num_qvalue_nets=n, loss_function="l2")
    loss.make_value_estimator(gamma=GAMMA)
    return loss_loop(loss, SoftUpdate(loss, tau=TAU), data, fused=fused)


def sb3_case(algo: str, data: TensorDict, fused: bool = False) -> Callable[[int], None]:
    import gymnasium as gym
    from stable_baselines3 import DDPG, SAC
    from stable_baselines3.common.logger import configure

    env = gym.make("Pendulum-v1")
    cls = SAC if algo == "sac" else DDPG
    model = cls(
        "MlpPolicy",
        env,
        batch_size=BATCH,
        learning_rate=LR,
        gamma=GAMMA,
        tau=TAU,
        buffer_size=ROWS,
        learning_starts=0,
        policy_kwargs={
            "net_arch": HIDDEN,
            "optimizer_class": torch.optim.Adam,
            "optimizer_kwargs": {"fused": True} if fused else {},
        },
        device="cpu",
    )
    model.set_logger(configure(None, [""]))
    rb = model.replay_buffer
    obs, act = data["observation"].numpy(), data["action"].numpy()
    nobs, rew = data["next", "observation"].numpy(), data["next", "reward"].numpy()
    term = data["next", "terminated"].numpy()
    for i in range(ROWS):
        rb.add(obs[i : i + 1], nobs[i : i + 1], act[i : i + 1] / HIGH, rew[i], term[i], [{}])

    def run(n: int) -> None:
        model.train(gradient_steps=n, batch_size=BATCH)

    return run


# --- timing ----------------------------------------------------------------------------


def rate(run: Callable[[int], None], seconds: float) -> float:
    run(10)
    n, t0 = 0, time.perf_counter()
    step = 10
    while time.perf_counter() - t0 < seconds:
        run(step)
        n += step
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds")
    parser.add_argument(
        "--fused", action="store_true", help="every contender with fused Adam (default: plain)"
    )
    parser.add_argument("--only", default="ddpg,sac,redq")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 is steadier on a loaded machine)"
    )
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-losses.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = make_data()

    peers: dict[str, Callable[..., Callable[[int], None]]] = {"rldata": rldata_case}
    notes = []
    if importlib.util.find_spec("torchrl") is not None:
        peers["TorchRL"] = torchrl_case
    else:
        notes.append("torchrl not installed: its column is skipped (pip install -e '.[bench]')")
    if importlib.util.find_spec("stable_baselines3") is not None:
        peers["SB3"] = sb3_case
    else:
        notes.append("stable-baselines3 not installed: its column is skipped")

    algos = args.only.split(",")
    cases: dict[str, Callable[[int], None]] = {}
    for algo in algos:
        for name, make in peers.items():
            if name == "SB3" and algo == "redq":
                continue
            try:
                cases[f"{algo}/{name}"] = make(algo, data, fused=args.fused)
            except ImportError as exc:  # installed but broken: skip it, say why
                notes.append(f"{name} {algo} skipped: {exc}")
    # interleaved rounds: a load spike hits every contender of that round alike
    res = rounds({k: (lambda r=r: rate(r, args.seconds)) for k, r in cases.items()}, args.rounds)

    names = {"ddpg": "DDPG", "sac": "SAC", "redq": "REDQ (N=10, M=2)"}
    targets = {"ddpg": "≥ 1.2x SB3", "sac": "≥ 1.2x SB3", "redq": "≥ 2x TorchRL"}
    rows = []
    for algo in algos:
        ours = res[f"{algo}/rldata"]
        cells = [names[algo], spread(ours)]
        for peer in ("TorchRL", "SB3"):
            cells.append(spread(res.get(f"{algo}/{peer}")))
        for peer in ("TorchRL", "SB3"):
            theirs = res.get(f"{algo}/{peer}")
            headline = targets[algo].endswith(peer)
            cells.append(spread(per_round(ours, theirs), "x", headline) if theirs else "–")
        cells.append(targets[algo])
        rows.append(cells)
    adam = "fused Adam" if args.fused else "plain Adam (torch defaults, not fused)"
    head = ["algo", "rldata", "TorchRL", "SB3 `train()`", "vs TorchRL", "vs SB3", "target"]
    out = table(head, rows, "lrrrrrl")
    line = (
        f"Updates/s, median of {args.rounds} interleaved rounds of {args.seconds}s (min–max); "
        f"every contender with {adam}, lr {LR}; batch {BATCH}, 2x256 ReLU MLPs, Pendulum "
        f"shapes, {torch.get_num_threads()} CPU threads."
    )
    print(line)
    print(out)
    for note in notes:
        print("note:", note)
    if args.write:
        cmd = (
            f"python benchmarks/bench_losses.py --write --rounds {args.rounds} "
            f"--seconds {args.seconds} --threads {args.threads}"
        )
        if args.fused:
            cmd += " --fused"
        body = line + "\n\n" + out + "".join(f"\n- {n}" for n in notes)
        name = "losses-fused" if args.fused else "losses"
        write_results(
            name, f"Loss updates on equal optimizer settings ({adam})", cmd, [region(name, body)]
        )


if __name__ == "__main__":
    main()
