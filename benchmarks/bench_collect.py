"""Collection speed: a raw gymnasium loop, rldata's collectors, and TorchRL's Collector side by side.

Run:  python benchmarks/bench_collect.py [--frames 20000] [--repeats 3] [--skip-mujoco]
      [--only random|mlp|batched|record|mujoco]  (one row group only)

Rows (Pendulum-v1, frames_per_batch=1000 unless said otherwise), each timed ``--repeats``
times, best run kept; the ratio column is time / time of the row's reference:

1. random policy: raw ``env.step(env.action_space.sample())`` loop vs rldata vs TorchRL;
2. small MLP policy (64x64 tanh) run on every observation: raw loop vs rldata vs TorchRL;
3. 8 batched envs: gymnasium ``SyncVectorEnv`` loop vs rldata ``GymEnv(num_envs=8)`` vs TorchRL;
4. recording into a memmap store (``rldata.record``) vs collecting alone;
5. HalfCheetah-v5 (MuJoCo): ``MultiSyncDataCollector`` with 2 worker processes vs one process.

TorchRL rows appear when ``torchrl`` (the ``bench`` extra) is importable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import torch

from rldata import api
from rldata.collectors import MultiSyncDataCollector, SyncDataCollector
from rldata.envs import GymEnv
from rldata.modules import MLP, Actor

torch.set_num_threads(1)


def best(fn: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def mlp(obs_dim: int, act_dim: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return MLP(obs_dim, act_dim, num_cells=[64, 64], activation_class=torch.nn.Tanh)


# --- raw gymnasium loops --------------------------------------------------------------------


def raw_random(env_id: str, frames: int) -> Callable[[], None]:
    env = gym.make(env_id)
    env.reset(seed=0)

    def run() -> None:
        env.reset()
        for _ in range(frames):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()

    return run


def raw_mlp(env_id: str, frames: int, net: torch.nn.Module) -> Callable[[], None]:
    env = gym.make(env_id)
    env.reset(seed=0)

    def run() -> None:
        obs, _ = env.reset()
        with torch.no_grad():
            for _ in range(frames):
                action = net(torch.as_tensor(obs)).numpy()
                obs, _, term, trunc, _ = env.step(action)
                if term or trunc:
                    obs, _ = env.reset()

    return run


def raw_vector(env_id: str, frames: int, n: int) -> Callable[[], None]:
    envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
    envs.reset(seed=0)

    def run() -> None:
        envs.reset()
        for _ in range(frames // n):
            envs.step(envs.action_space.sample())

    return run


# --- rldata -----------------------------------------------------------------------------------


def rldata_collect(make_env, policy, frames: int, fpb: int = 1000) -> Callable[[], None]:
    collector = SyncDataCollector(make_env(), policy, frames_per_batch=fpb)
    collector.set_seed(0)
    it = iter(collector)

    def run() -> None:
        for _ in range(frames // fpb):
            next(it)

    return run


def rldata_record(make_env, frames: int, fpb: int = 1000) -> Callable[[], None]:
    def run() -> None:
        tmp = tempfile.mkdtemp()
        try:
            collector = SyncDataCollector(make_env(), None, frames_per_batch=fpb)
            api.record(collector, f"{tmp}/ds", frames=frames, commit_every=10_000)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    return run


def rldata_collect_fresh(make_env, frames: int, fpb: int = 1000) -> Callable[[], None]:
    """Collecting alone, built like ``rldata_record`` does (same env start-up in the timing)."""

    def run() -> None:
        collector = SyncDataCollector(make_env(), None, frames_per_batch=fpb)
        it = iter(collector)
        for _ in range(frames // fpb):
            next(it)

    return run


def rldata_multi(env_id: str, frames: int, workers: int, fpb: int = 1000) -> Callable[[], None]:
    factory = api.EnvFactory(env_id)
    if workers == 1:
        collector = SyncDataCollector(factory, None, frames_per_batch=fpb)
    else:
        collector = MultiSyncDataCollector(factory, None, frames_per_batch=fpb, num_workers=workers)
    it = iter(collector)
    next(it)  # start-up (processes, first reset) is not what we measure

    def run() -> None:
        for _ in range(frames // fpb):
            next(it)

    run.collector = collector  # type: ignore[attr-defined]
    return run


# --- TorchRL ----------------------------------------------------------------------------------


def torchrl_collect(
    env_id: str, policy_net, frames: int, num_envs: int | None = None, fpb: int = 1000
):
    try:
        from tensordict.nn import TensorDictModule
        from torchrl.collectors import Collector
        from torchrl.envs import GymEnv as TrlGymEnv
    except ImportError:
        return None
    kwargs = {"num_envs": num_envs} if num_envs else {}
    env = TrlGymEnv(env_id, **kwargs)
    env.set_seed(0)
    policy = None
    if policy_net is not None:
        policy = TensorDictModule(policy_net, in_keys=["observation"], out_keys=["action"])
    collector = Collector(env, policy, frames_per_batch=fpb, total_frames=-1)
    it = iter(collector)

    def run() -> None:
        for _ in range(frames // fpb):
            next(it)

    return run


# --- table ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--record-frames",
        type=int,
        default=100_000,
        help="frames of the recording row (commits every 10k)",
    )
    parser.add_argument("--skip-mujoco", action="store_true")
    parser.add_argument(
        "--only",
        choices=["random", "mlp", "batched", "record", "mujoco"],
        help="run one row group only",
    )
    args = parser.parse_args()
    frames, reps = args.frames, args.repeats
    env_id = "Pendulum-v1"
    rows: list[tuple[str, str, int, float, float | None, str]] = []

    def group(
        name: str,
        ref_label: str,
        ref: Callable[[], None],
        others: list,
        target: str,
        frames: int = frames,
        tag: str = "",
    ) -> None:
        if args.only and args.only != tag:
            return
        t_ref = best(ref, reps)
        rows.append((name, ref_label, frames, t_ref, None, ""))
        for label, fn in others:
            if fn is None:
                rows.append((name, label, frames, float("nan"), None, "not installed"))
                continue
            t = best(fn, reps)
            mark = target if label.startswith("rldata") else ""
            rows.append((name, label, frames, t, t / t_ref, mark))

    net = mlp(3, 1)
    actor = Actor(net)
    group(
        "random policy",
        "raw gymnasium loop",
        raw_random(env_id, frames),
        [
            ("rldata SyncDataCollector", rldata_collect(lambda: GymEnv(env_id), None, frames)),
            ("torchrl Collector", torchrl_collect(env_id, None, frames)),
        ],
        "<= 1.3",
        tag="random",
    )
    group(
        "MLP policy 64x64",
        "raw gymnasium loop + MLP",
        raw_mlp(env_id, frames, net),
        [
            ("rldata SyncDataCollector", rldata_collect(lambda: GymEnv(env_id), actor, frames)),
            ("torchrl Collector", torchrl_collect(env_id, net, frames)),
        ],
        "<= 1.3",
        tag="mlp",
    )
    group(
        "8 batched envs",
        "gymnasium SyncVectorEnv loop",
        raw_vector(env_id, frames, 8),
        [
            (
                "rldata SyncDataCollector",
                rldata_collect(lambda: GymEnv(env_id, num_envs=8), None, frames, fpb=1000),
            ),
            ("torchrl Collector", torchrl_collect(env_id, None, frames, num_envs=8)),
        ],
        "<= 1.3",
        tag="batched",
    )
    rec = args.record_frames
    group(
        f"record {rec // 1000}k into memmap",
        "rldata collecting alone",
        rldata_collect_fresh(lambda: GymEnv(env_id), rec),
        [("rldata.record -> memmap", rldata_record(lambda: GymEnv(env_id), rec))],
        "<= 1.15",
        frames=rec,
        tag="record",
    )
    if not args.skip_mujoco and args.only in (None, "mujoco"):
        try:
            import mujoco  # noqa: F401

            one = rldata_multi("HalfCheetah-v5", frames, 1)
            two = rldata_multi("HalfCheetah-v5", frames, 2)
            t1, t2 = best(one, reps), best(two, reps)
            rows.append(("HalfCheetah-v5 workers", "rldata 1 process", frames, t1, None, ""))
            rows.append(
                (
                    "HalfCheetah-v5 workers",
                    "rldata 2 worker processes",
                    frames,
                    t2,
                    t1 / t2,
                    "speed-up >= 1.6",
                )
            )
            one.collector.shutdown()
            two.collector.shutdown()
        except ImportError:
            rows.append(
                ("HalfCheetah-v5 workers", "mujoco", frames, float("nan"), None, "not installed")
            )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"frames per row: {frames} (recording row: {args.record_frames}), best of {reps}, torch threads: {torch.get_num_threads()}, "
        f"cores: {os.cpu_count()}, load average: {load}"
    )
    print(
        f"{'benchmark':<24} {'implementation':<30} {'seconds':>8} {'frames/s':>10} {'ratio':>7}  target"
    )
    for name, label, n, t, ratio, target in rows:
        fps = n / t if t == t else float("nan")
        r = "" if ratio is None else f"{ratio:.2f}x"
        print(f"{name:<24} {label:<30} {t:>8.3f} {fps:>10,.0f} {r:>7}  {target}")


if __name__ == "__main__":
    main()
