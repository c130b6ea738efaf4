"""Collection speed on equal work: plain loops, rldata's collectors and TorchRL's Collector.

Run:  python benchmarks/bench_collect.py [--frames 10000] [--rounds 5] [--record-frames 50000]
      [--skip-mujoco] [--write]   (--write: benchmarks/RESULTS-collect.md)

Every contender does the same work per frame: it draws a random action cheaply (the plain
loops: the next of 128 actions drawn per numpy ``Generator.random`` call, scaled into the
action bounds; rldata: the next of 128 actions its env's seeded action stream draws per
torch call, the stream ``env.rand_action`` uses) or runs the same 64x64 MLP on the observation, steps
the same gymnasium environments, and keeps observation, action, reward, next observation
and the terminated / truncated flags of every step in preallocated arrays (what a collector
hands out). rldata additionally wraps each 1000-frame batch as a TED TensorDict with
trajectory ids. Peer rows (gymnasium's ``SyncVectorEnv``, TorchRL's ``Collector``) do the
same work through their own APIs. Contenders run in interleaved rounds; each cell is the
median of all rounds with the min-max spread, and each ratio is taken round by round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import per_round, region, rounds, spread, table, timed, write_results  # noqa: E402

from rldata import api  # noqa: E402
from rldata.collectors import MultiSyncDataCollector, SyncDataCollector  # noqa: E402
from rldata.envs import GymEnv  # noqa: E402
from rldata.modules import MLP, Actor  # noqa: E402

torch.set_num_threads(1)
ENV = "Pendulum-v1"
FPB = 1000
BLOCK = 128  # random actions drawn per call, on every side


def mlp(obs_dim: int, act_dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return MLP(obs_dim, act_dim, num_cells=[64, 64], activation_class=torch.nn.Tanh)


# --- plain loops: the same action draw and the same kept arrays as rldata -------------------


class Kept:
    """Preallocated per-batch arrays for what a collector keeps of each step."""

    def __init__(self, n: int, obs_dim: int, act_dim: int) -> None:
        self.obs = np.empty((FPB // n, n, obs_dim), np.float32)
        self.nobs = np.empty_like(self.obs)
        self.act = np.empty((FPB // n, n, act_dim), np.float32)
        self.rew = np.empty((FPB // n, n), np.float64)
        self.term = np.zeros((FPB // n, n), bool)
        self.trunc = np.zeros((FPB // n, n), bool)


def random_draw(space, rng: np.random.Generator, n: int) -> Callable[[np.ndarray], np.ndarray]:
    """As rldata draws: 128 steps of ``low + (high - low) * U[0, 1)`` per numpy call, for ``n`` envs."""
    low, scale = space.low.astype(np.float64), (space.high - space.low).astype(np.float64)
    shape = (BLOCK, n, *space.shape)
    buf = [np.empty(shape, np.float32), BLOCK]

    def draw(obs: np.ndarray) -> np.ndarray:
        if buf[1] == BLOCK:
            buf[0], buf[1] = (low + scale * rng.random(size=shape)).astype(np.float32), 0
        buf[1] += 1
        return buf[0][buf[1] - 1]

    return draw


def mlp_draw(net: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: net(torch.from_numpy(obs)).numpy()


def plain_loop(frames: int, n: int, policy: Callable | None) -> Callable[[], None]:
    """``n`` gymnasium envs stepped one by one in a Python loop (``n=1``: the classic loop)."""
    envs = [gym.make(ENV) for _ in range(n)]
    space = envs[0].action_space
    if policy is None:
        draw = random_draw(space, np.random.default_rng(0), n)
    else:
        draw = mlp_draw(policy)
    obs = np.stack([e.reset(seed=i)[0] for i, e in enumerate(envs)])
    kept = Kept(n, obs.shape[-1], space.shape[0])
    T = FPB // n

    def run() -> None:
        with torch.no_grad():
            for _ in range(frames // FPB):
                for t in range(T):
                    a = draw(obs)
                    kept.obs[t] = obs
                    kept.act[t] = a
                    for i in range(n):
                        o, r, term, trunc, _ = envs[i].step(a[i])
                        kept.nobs[t, i] = o
                        kept.rew[t, i] = r
                        if term or trunc:
                            kept.term[t, i], kept.trunc[t, i] = term, trunc
                            o, _ = envs[i].reset()
                        obs[i] = o

    return run


def sync_vector(frames: int, n: int) -> Callable[[], None]:
    """gymnasium's ``SyncVectorEnv`` (next-step autoreset), same draw and kept arrays."""
    envs = gym.make_vec(ENV, num_envs=n, vectorization_mode="sync")
    draw = random_draw(envs.single_action_space, np.random.default_rng(0), n)
    obs, _ = envs.reset(seed=0)
    kept = Kept(n, obs.shape[-1], envs.single_action_space.shape[0])
    T = FPB // n

    def run() -> None:
        nonlocal obs
        for _ in range(frames // FPB):
            for t in range(T):
                a = draw(obs)
                kept.obs[t] = obs
                kept.act[t] = a
                obs, r, term, trunc, _ = envs.step(a)
                kept.nobs[t] = obs
                kept.rew[t] = r
                kept.term[t] = term
                kept.trunc[t] = trunc

    return run


# --- rldata -----------------------------------------------------------------------------------


def rldata_collect(make_env, policy, frames: int) -> Callable[[], None]:
    collector = SyncDataCollector(make_env(), policy, frames_per_batch=FPB)
    collector.set_seed(0)
    it = iter(collector)

    def run() -> None:
        for _ in range(frames // FPB):
            next(it)

    return run


def rldata_record(frames: int) -> Callable[[], None]:
    def run() -> None:
        tmp = tempfile.mkdtemp()
        try:
            collector = SyncDataCollector(GymEnv(ENV), None, frames_per_batch=FPB)
            api.record(collector, f"{tmp}/ds", frames=frames, commit_every=10_000)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return run


def rldata_collect_fresh(frames: int) -> Callable[[], None]:
    """Collecting alone, built like ``rldata_record`` does (same env start-up in the timing)."""

    def run() -> None:
        collector = SyncDataCollector(GymEnv(ENV), None, frames_per_batch=FPB)
        it = iter(collector)
        for _ in range(frames // FPB):
            next(it)

    return run


def rldata_multi(env_id: str, frames: int, workers: int) -> Callable[[], None]:
    factory = api.EnvFactory(env_id)
    if workers == 1:
        collector = SyncDataCollector(factory, None, frames_per_batch=FPB)
    else:
        collector = MultiSyncDataCollector(factory, None, frames_per_batch=FPB, num_workers=workers)
    it = iter(collector)
    next(it)  # start-up (processes, first reset) is not what we measure

    def run() -> None:
        for _ in range(frames // FPB):
            next(it)

    run.collector = collector  # type: ignore[attr-defined]
    return run


# --- TorchRL ----------------------------------------------------------------------------------


def torchrl_collect(policy_net, frames: int, num_envs: int | None = None):
    try:
        from tensordict.nn import TensorDictModule
        from torchrl.collectors import Collector as TrlCollector
        from torchrl.envs import GymEnv as TrlGymEnv
    except ImportError:
        return None
    kwargs = {"num_envs": num_envs} if num_envs else {}
    env = TrlGymEnv(ENV, **kwargs)
    env.set_seed(0)
    policy = None
    if policy_net is not None:
        policy = TensorDictModule(policy_net, in_keys=["observation"], out_keys=["action"])
    collector = TrlCollector(env, policy, frames_per_batch=FPB, total_frames=-1)
    it = iter(collector)

    def run() -> None:
        for _ in range(frames // FPB):
            next(it)

    return run


# --- table ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000, help="frames per contender per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record-frames", type=int, default=50_000)
    parser.add_argument("--skip-mujoco", action="store_true")
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS-collect.md")
    args = parser.parse_args()
    frames, n_rounds = args.frames, args.rounds
    rows: list[list[str]] = []
    notes: list[str] = []

    def group(
        name: str,
        contenders: dict[str, Callable | None],
        what: dict[str, str],
        target: dict[str, str],
        n: int = frames,
    ) -> None:
        live = {k: v for k, v in contenders.items() if v is not None}
        for k, v in contenders.items():
            if v is None:
                notes.append(f"{name}: {k} not installed (pip install -e '.[bench]')")
        secs = rounds({k: (lambda f=f: timed(f)) for k, f in live.items()}, n_rounds)
        ref = next(iter(live))
        for label, ts in secs.items():
            fps = [n / t for t in ts]
            ratio = spread(per_round(ts, secs[ref]), "x", bold=label.startswith("rldata"))
            rows.append(
                [
                    name if label == ref else "",
                    label,
                    what.get(label, ""),
                    spread(fps),
                    "1.00x (reference)" if label == ref else ratio,
                    target.get(label, ""),
                ]
            )
            print(" | ".join(rows[-1]), flush=True)

    net = mlp(3, 1)
    actor = Actor(net)
    group(
        "random policy, Pendulum-v1",
        {
            "plain gymnasium loop": plain_loop(frames, 1, None),
            "rldata SyncDataCollector": rldata_collect(lambda: GymEnv(ENV), None, frames),
            "TorchRL Collector": torchrl_collect(None, frames),
        },
        {
            "plain gymnasium loop": "env.step + numpy block draw + kept arrays",
            "rldata SyncDataCollector": "env.step + action stream + TED batches with traj ids",
            "TorchRL Collector": "TorchRL's collector, spec-drawn actions",
        },
        {"rldata SyncDataCollector": "≤ 1.15x"},
    )
    group(
        "64x64 MLP policy, Pendulum-v1",
        {
            "plain gymnasium loop + MLP": plain_loop(frames, 1, net),
            "rldata SyncDataCollector": rldata_collect(lambda: GymEnv(ENV), actor, frames),
            "TorchRL Collector": torchrl_collect(net, frames),
        },
        {
            "plain gymnasium loop + MLP": "MLP on each observation + env.step + kept arrays",
            "rldata SyncDataCollector": "same policy as a TensorDictModule, TED batches",
            "TorchRL Collector": "same policy as a TensorDictModule",
        },
        {"rldata SyncDataCollector": "≤ 1.10x"},
    )
    group(
        "8 envs, random policy, Pendulum-v1",
        {
            "plain loop over 8 envs": plain_loop(frames, 8, None),
            "rldata SyncDataCollector": rldata_collect(
                lambda: GymEnv(ENV, num_envs=8), None, frames
            ),
            "gymnasium SyncVectorEnv": sync_vector(frames, 8),
            "TorchRL Collector": torchrl_collect(None, frames, num_envs=8),
        },
        {
            "plain loop over 8 envs": "[8, act] block draw, 8 env.step calls, kept arrays",
            "rldata SyncDataCollector": "GymEnv(num_envs=8), action stream, TED batches [8, 125]",
            "gymnasium SyncVectorEnv": "SyncVectorEnv.step (autoreset), block draw, arrays",
            "TorchRL Collector": "TorchRL GymEnv(num_envs=8)",
        },
        {"rldata SyncDataCollector": "≤ 1.10x"},
    )
    rec = args.record_frames
    group(
        f"record {rec // 1000}k frames into memmap",
        {
            "rldata collecting alone": rldata_collect_fresh(rec),
            "rldata.record → memmap": rldata_record(rec),
        },
        {
            "rldata collecting alone": "a fresh collector, random policy",
            "rldata.record → memmap": "same, each batch appended, commit every 10k (fsync)",
        },
        {"rldata.record → memmap": "≤ 1.15x"},
        n=rec,
    )
    if not args.skip_mujoco:
        try:
            import mujoco  # noqa: F401
        except ImportError:
            notes.append("HalfCheetah row skipped: mujoco not installed")
        else:
            one = rldata_multi("HalfCheetah-v5", frames, 1)
            two = rldata_multi("HalfCheetah-v5", frames, 2)
            secs = rounds({"1": lambda: timed(one), "2": lambda: timed(two)}, n_rounds)
            speed = per_round(secs["1"], secs["2"])
            rows.append(
                [
                    "HalfCheetah-v5, 2 worker processes",
                    "rldata MultiSyncDataCollector",
                    "speed-up of 2 workers over 1 process (needs 2 free cores)",
                    spread([frames / t for t in secs["2"]]),
                    spread(speed, "x", bold=True) + " speed-up",
                    "≥ 1.6x",
                ]
            )
            one.collector.shutdown()
            two.collector.shutdown()

    head = [
        "group",
        "contender",
        "what it does per frame",
        "frames/s",
        "time / first row",
        "target",
    ]
    out = table(head, rows, "lllrrl")
    print(out)
    for note in notes:
        print("note:", note)
    if args.write:
        cmd = "python benchmarks/bench_collect.py --write " + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k in ("frames", "rounds", "record_frames")
        )
        body = (
            f"Each cell: median of {n_rounds} interleaved rounds (min–max); {frames} frames per "
            f"round per contender ({rec} in the recording row), frames_per_batch={FPB}, 1 torch "
            "thread.\n\n" + out + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "")
        )
        write_results("collect", "Collection on equal work", cmd, [region("collect", body)])


if __name__ == "__main__":
    main()
