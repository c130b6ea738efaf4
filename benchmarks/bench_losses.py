"""Updates per second of rldata's DDPG / SAC / REDQ losses, side by side with peers.

One update = sample a batch of 256 rows from 10k in memory, forward, backward,
Adam step and target update, on CPU with 2 threads, Pendulum shapes (obs 3, action 1)
and 2x256 ReLU MLPs. Peers: TorchRL's DDPGLoss / SACLoss / REDQLoss (same networks,
same loop) and Stable-Baselines3's ``DDPG.train()`` / ``SAC.train()`` (its own loop,
which samples from its replay buffer). A peer that is not installed is skipped with
a note. Contenders run in interleaved rounds of ``--seconds``; each keeps its best
round, so a load spike on the shared machine does not decide a ratio.

    python benchmarks/bench_losses.py [--seconds 0.5] [--rounds 8] [--only sac,redq] [--plain-adam]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor

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
    optim = torch.optim.Adam(loss.parameters(), lr=LR, fused=fused or None)

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


def rldata_case(algo: str, data: TensorDict, fused: bool = True) -> Callable[[int], None]:
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


def torchrl_case(algo: str, data: TensorDict) -> Callable[[int], None]:
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
    return loss_loop(loss, SoftUpdate(loss, tau=TAU), data, fused=False)


def sb3_case(algo: str, data: TensorDict) -> Callable[[int], None]:
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
        policy_kwargs={"net_arch": HIDDEN},
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


def _fmt(x: float | None) -> str:
    return f"{x:9.1f}" if x else f"{'-':>9}"


def _ratio(ours: float, peer: float | None) -> str:
    return f"{ours / peer:.2f}x" if peer else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds; best counts")
    parser.add_argument(
        "--plain-adam", action="store_true", help="rldata with default Adam (not fused), as peers"
    )
    parser.add_argument("--only", default="ddpg,sac,redq")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    data = make_data()

    peers = {"rldata": rldata_case}
    notes = []
    if importlib.util.find_spec("torchrl") is not None:
        peers["torchrl"] = torchrl_case
    else:
        notes.append("torchrl not installed: its column is skipped (pip install rldata[bench])")
    if importlib.util.find_spec("stable_baselines3") is not None:
        peers["sb3"] = sb3_case
    else:
        notes.append(
            "stable-baselines3 not installed: its column is skipped (pip install rldata[bench])"
        )

    algos = args.only.split(",")
    cases: dict[tuple[str, str], Callable[[int], None]] = {}
    for algo in algos:
        for name, make in peers.items():
            if name == "sb3" and algo == "redq":
                continue
            if name == "rldata":
                cases[(algo, name)] = rldata_case(algo, data, fused=not args.plain_adam)
                continue
            try:
                cases[(algo, name)] = make(algo, data)
            except ImportError as exc:  # installed but broken: skip it, say why
                notes.append(f"{name} {algo} skipped: {exc}")
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):  # interleaved rounds: load spikes hit everyone alike
        for key, run in cases.items():
            best[key] = max(best.get(key, 0.0), rate(run, args.seconds))

    adam = "default Adam" if args.plain_adam else "fused Adam"
    print(
        f"updates/s, CPU {torch.get_num_threads()} threads, batch {BATCH}, 2x256 MLPs, "
        f"Pendulum shapes; rldata with {adam}, peers with their defaults; "
        f"best of {args.rounds} rounds x {args.seconds}s"
    )
    print(f"{'algo':<6} {'rldata':>9} {'torchrl':>9} {'sb3':>9} {'vs torchrl':>11} {'vs sb3':>8}")
    for algo in algos:
        r = best[(algo, "rldata")]
        t = best.get((algo, "torchrl"))
        s = best.get((algo, "sb3"))

        print(f"{algo:<6} {_fmt(r)} {_fmt(t)} {_fmt(s)} {_ratio(r, t):>11} {_ratio(r, s):>8}")
    for note in notes:
        print("note:", note)


if __name__ == "__main__":
    main()
