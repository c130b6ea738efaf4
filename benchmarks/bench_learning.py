"""Learning benchmark on Pendulum-v1: rldata's Trainer, side by side with Stable-Baselines3's SAC.

Online (eval every 1k env steps, 5 deterministic episodes on fixed seeds, one CPU thread):
  - SAC (rldata) vs SAC (SB3) with the same hyperparameters (lr 3e-4, batch 256, 2x256 ReLU
    nets, gamma 0.99, tau 0.005, equal learning_starts, one update per env step, auto
    temperature), in the same process, seeds interleaved. Figures: env steps to reach a mean
    eval return >= -200, wall time to get there (evaluation time counted on both sides).
  - REDQ (target: -200 within 3k steps), TD3 and DDPG (within 10k).
Offline: a store recorded while SAC trains (``--dataset-frames``, 50k in the issue), then
TD3+BC, IQL and CQL from that store alone (target: >= -250).

Discrete actions on CartPole-v1 (``--only dqn,sb3dqn,dcql``, 50k env steps, eval every 5k):
  - DQN (rldata, double DQN) vs DQN (SB3) at rl-zoo's CartPole hyperparameters (lr 2.3e-3,
    batch 64, replay 1e5, learning_starts 1000, train_freq 256 with 128 gradient steps,
    target copied every 10 env steps, eps 1 -> 0.04 over 16%, [256, 256]); target: eval >= 475
    within 50k env steps (median seed).
  - discrete CQL (and BC, for reference) from two 50k-transition stores, target >= 400:
    ``dcql``: recorded by the trained DQN's greedy policy (``rldata collect --policy RUN``),
    expert-only (every return 500), which BC solves as well;
    ``dcqlreplay``: the replay of a DQN training run (``rldata train --algo dqn --store PATH``:
    epsilon-greedy exploration, returns from ~10 to 500), mixed-quality data.
  Run alone, they rewrite only the discrete section of ``--out``; ``dcql`` or ``dcqlreplay``
  without a DQN contender rewrites only that dataset's rows of the offline table.

Every figure is the median over seeds, with min-max beside it. Plain script, prints
markdown tables and writes them to ``benchmarks/RESULTS-learning.md`` (``--out``).

Run (the whole issue's protocol, hours on 2 shared cores):
    python benchmarks/bench_learning.py --seeds 3
A short run:
    python benchmarks/bench_learning.py --seeds 1 --only sac,sb3 --sac-frames 5000
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import rldata
from rldata.collectors.policy_checkpoint import load_policy
from rldata.trainers import TrainConfig, Trainer

THRESHOLD_ONLINE = -200.0
THRESHOLD_OFFLINE = -250.0
EVAL_EVERY = 1000
EVAL_EPISODES = 5
EVAL_SEED_OFFSET = 10_000  # as rldata.trainers.evaluation: same starting states on both sides
DISCRETE_ENV = "CartPole-v1"
DISCRETE_EVAL_EVERY = 5000
THRESHOLD_DQN = 475.0
THRESHOLD_DCQL = 400.0
DISCRETE_CONTENDERS = {"dqn", "dqnmax", "sb3dqn", "dcql", "dcqlreplay"}
DISCRETE_BEGIN, DISCRETE_END = "<!-- section:discrete -->", "<!-- /section:discrete -->"
OFFLINE_BEGIN, OFFLINE_END = (
    "<!-- section:discrete-offline -->",
    "<!-- /section:discrete-offline -->",
)
OFFLINE_TABLE_BEGIN = "<!-- table:learning-discrete-offline -->"
OFFLINE_TABLE_END = "<!-- /table:learning-discrete-offline -->"
# (raw key of the results, raw key of the dataset, the label naming the dataset in the table)
DISCRETE_DATASETS = (
    ("discrete_offline", "discrete_dataset", "trained DQN greedy"),
    ("discrete_offline_replay", "discrete_replay_dataset", "DQN replay"),
)


# --- rldata ------------------------------------------------------------------------------------


def rldata_online(algo: str, frames: int, seed: int, learning_starts: int, **extra) -> dict:
    cfg = TrainConfig(
        algo=algo,
        env="Pendulum-v1",
        frames=frames,
        seed=seed,
        init_random_frames=learning_starts,
        frames_per_batch=1,
        eval_every=EVAL_EVERY,
        eval_episodes=EVAL_EPISODES,
        threads=1,
        tensorboard=False,
        **extra,
    )
    t0 = time.perf_counter()
    summary = Trainer(cfg).fit()
    wall = time.perf_counter() - t0
    curve = [(e["env_steps"], e["mean"], e["wall_s"]) for e in summary.evaluations]
    return {"curve": curve, "wall": wall, "updates": summary.updates}


def record_dataset(path: Path, frames: int, seed: int, learning_starts: int) -> dict:
    """SAC online, recording every transition into the store at ``path``."""
    return rldata_online("sac", frames, seed, learning_starts, store=str(path))


def rldata_offline(
    algo: str, dataset: Path, steps: int, seed: int, eval_every: int, **overrides
) -> dict:
    cfg = TrainConfig(
        **overrides,
        algo=algo,
        dataset=str(dataset),
        steps=steps,
        seed=seed,
        eval_every=eval_every,
        eval_episodes=EVAL_EPISODES,
        threads=1,
        tensorboard=False,
    )
    t0 = time.perf_counter()
    summary = Trainer(cfg).fit()
    curve = [(e["updates"], e["mean"], e["wall_s"]) for e in summary.evaluations]
    return {"curve": curve, "wall": time.perf_counter() - t0, "final": summary.eval_return_mean}


def rldata_dqn(frames: int, seed: int, out: Path, **extra) -> dict:
    """rldata's ``dqn`` with its registry defaults (rl-zoo's CartPole hyperparameters)."""
    cfg = TrainConfig(
        **extra,
        algo="dqn",
        env=DISCRETE_ENV,
        frames=frames,
        seed=seed,
        eval_every=DISCRETE_EVAL_EVERY,
        eval_episodes=EVAL_EPISODES,
        threads=1,
        tensorboard=False,
    )
    t0 = time.perf_counter()
    summary = Trainer(cfg, out).fit()
    wall = time.perf_counter() - t0
    curve = [(e["env_steps"], e["mean"], e["wall_s"]) for e in summary.evaluations]
    return {"curve": curve, "wall": wall, "updates": summary.updates, "run": str(out)}


def parse_overrides(pairs: list[str] | None) -> dict:
    """``["key=value", ...]`` as TrainConfig fields (values read as JSON, else kept as text)."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--discrete-cql-set: expected KEY=VALUE, got {pair!r}")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


def discrete_offline_runs(args: argparse.Namespace, path: Path, seed: int):
    """``(row name, result)`` of each discrete offline algorithm on ``path`` for ``seed``;
    ``--discrete-cql-set`` changes discrete CQL's config, and its row name says how."""
    overrides = parse_overrides(args.discrete_cql_set)
    for algo in args.discrete_offline_algos.split(","):
        extra = overrides if algo == "discrete_cql" else {}
        name = algo + (f" ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")
        steps = args.discrete_offline_steps
        r = rldata_offline(algo, path, steps, seed, args.discrete_offline_eval_every, **extra)
        yield name, {**r, "steps": steps}


def record_discrete_dataset(path: Path, run: str, frames: int, seed: int) -> dict:
    """``rldata collect CartPole-v1 --policy RUN --frames N``: the trained DQN's greedy policy."""
    from rldata.envs import GymEnv

    env = GymEnv(DISCRETE_ENV)
    env.set_seed(seed)
    rldata.record(env, path, frames=frames, policy=load_policy(run, env=env))
    env.close()
    return {**store_returns(path), "seed": seed, "policy": run}


def record_discrete_replay(path: Path, frames: int, seed: int, out: Path) -> dict:
    """``rldata train --algo dqn --store PATH``: every transition of a DQN training run."""
    run = rldata_dqn(frames, seed, out, store=str(path))
    return {**store_returns(path), "seed": seed, "dqn_curve": run["curve"]}


def store_returns(path: Path) -> dict:
    """Size and episode returns of the store at ``path`` (what its offline rows learn from)."""
    with rldata.open(path) as store:
        returns = store.episodes()["return"].double()
        return {
            "path": str(path),
            "rows": len(store),
            "episodes": int(len(returns)),
            "mean_return": float(returns.mean()),
            "median_return": float(returns.median()),
            "min_return": float(returns.min()),
            "max_return": float(returns.max()),
            "provenance": dict(store.provenance or {}),
        }


# --- Stable-Baselines3 ---------------------------------------------------------------------------


def sb3_online(frames: int, seed: int, learning_starts: int) -> dict:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    eval_env = gym.make("Pendulum-v1")
    curve: list[tuple[int, float, float]] = []
    t0 = [0.0]

    def evaluate(model) -> float:
        returns = []
        for i in range(EVAL_EPISODES):
            obs, _ = eval_env.reset(seed=seed + EVAL_SEED_OFFSET + i)
            done, total = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, term, trunc, _ = eval_env.step(action)
                total += float(reward)
                done = term or trunc
            returns.append(total)
        return statistics.fmean(returns)

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY == 0:
                curve.append(
                    (self.num_timesteps, evaluate(self.model), time.perf_counter() - t0[0])
                )
            return True

    env = gym.make("Pendulum-v1")
    model = SAC(
        "MlpPolicy",
        env,
        learning_rate=3e-4,
        buffer_size=1_000_000,
        learning_starts=learning_starts,
        batch_size=256,
        tau=0.005,
        gamma=0.99,
        train_freq=1,
        gradient_steps=1,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
    )
    t0[0] = time.perf_counter()
    model.learn(total_timesteps=frames, callback=Every())
    return {"curve": curve, "wall": time.perf_counter() - t0[0]}


def sb3_dqn(frames: int, seed: int) -> dict:
    """SB3's DQN at rl-zoo's hyperparams/dqn.yml for CartPole-v1."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    eval_env = gym.make(DISCRETE_ENV)
    curve: list[tuple[int, float, float]] = []
    t0 = [0.0]

    def evaluate(model) -> float:
        returns = []
        for i in range(EVAL_EPISODES):
            obs, _ = eval_env.reset(seed=seed + EVAL_SEED_OFFSET + i)
            done, total = False, 0.0
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, term, trunc, _ = eval_env.step(int(action))
                total += float(reward)
                done = term or trunc
            returns.append(total)
        return statistics.fmean(returns)

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % DISCRETE_EVAL_EVERY == 0:
                curve.append(
                    (self.num_timesteps, evaluate(self.model), time.perf_counter() - t0[0])
                )
            return True

    model = DQN(
        "MlpPolicy",
        gym.make(DISCRETE_ENV),
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        device="cpu",
    )
    t0[0] = time.perf_counter()
    model.learn(total_timesteps=frames, callback=Every())
    if not curve or curve[-1][0] != model.num_timesteps:
        curve.append((model.num_timesteps, evaluate(model), time.perf_counter() - t0[0]))
    return {"curve": curve, "wall": time.perf_counter() - t0[0]}


# --- reporting -----------------------------------------------------------------------------------


def first_reach(curve, threshold: float) -> tuple[float | None, float | None]:
    """``(steps, wall_s)`` of the first evaluation at or above ``threshold`` (None: never)."""
    for steps, ret, wall in curve:
        if ret >= threshold:
            return steps, wall
    return None, None


def spread(xs: list[float | None], fmt: str = "{:.0f}") -> str:
    """Median over seeds (min to max); None (a threshold never reached) counts as infinite."""
    got = sorted(x for x in xs if x is not None)
    n = len(xs)
    if not got:
        return f"not reached (0/{n} seeds)"
    ranked = got + [float("inf")] * (n - len(got))
    median = statistics.median(ranked)
    if median == float("inf"):
        shown = ", ".join(fmt.format(x) for x in got)
        return f"not reached by the median seed ({len(got)}/{n} seeds reached: {shown})"
    text = fmt.format(median)
    if n > 1:
        high = "never" if len(got) < n else fmt.format(got[-1])
        text += f" ({fmt.format(got[0])} to {high})"
    return text


def online_table(results: dict[str, list[dict]], targets: dict[str, int]) -> list[str]:
    lines = [
        "| algo | target | seeds | env steps to -200 (median, min-max) | wall s to -200 | "
        "final eval return | updates/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        reach = [first_reach(r["curve"], THRESHOLD_ONLINE) for r in runs]
        finals = [r["curve"][-1][1] for r in runs if r["curve"]]
        ups = [r["updates"] / r["wall"] for r in runs if "updates" in r]
        lines.append(
            f"| {name} | {targets.get(name.split()[0], 0):,} | {len(runs)} | "
            f"{spread([s for s, _ in reach])} | {spread([w for _, w in reach], '{:.1f}')} | "
            f"{spread(finals, '{:.1f}')} | {spread(ups, '{:.0f}') if ups else '-'} |"
        )
    return lines


def offline_table(results: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| algo | updates | seeds | final eval return (median, min-max) | best eval | "
        "updates to -250 | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        finals = [r["final"] for r in runs]
        best = [max(x[1] for x in r["curve"]) for r in runs]
        reach = [first_reach(r["curve"], THRESHOLD_OFFLINE)[0] for r in runs]
        walls = [r["wall"] for r in runs]
        lines.append(
            f"| {name} | {runs[0]['steps']:,} | {len(runs)} | {spread(finals, '{:.1f}')} | "
            f"{spread(best, '{:.1f}')} | {spread(reach)} | {spread(walls, '{:.0f}')} |"
        )
    return lines


def curves(title: str, results: dict[str, list[dict]]) -> list[str]:
    """One line per run: its evaluation returns, by thousands of steps."""
    lines = [title, ""]
    for name, runs in results.items():
        for r in runs:
            points = ", ".join(f"{int(s) // 1000}k: {ret:.0f}" for s, ret, _ in r["curve"])
            lines.append(f"- {name}, seed {r.get('seed', '?')}: {points}")
    return [*lines, ""]


def discrete_online_table(results: dict[str, list[dict]]) -> list[str]:
    lines = [
        f"| algo | seeds | env steps to {THRESHOLD_DQN:.0f} (median, min-max) | "
        f"wall s to {THRESHOLD_DQN:.0f} | best eval | final eval return | updates/s | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        reach = [first_reach(r["curve"], THRESHOLD_DQN) for r in runs]
        best = [max(x[1] for x in r["curve"]) for r in runs]
        finals = [r["curve"][-1][1] for r in runs if r["curve"]]
        ups = [r["updates"] / r["wall"] for r in runs if "updates" in r]
        lines.append(
            f"| {name} | {len(runs)} | {spread([s for s, _ in reach])} | "
            f"{spread([w for _, w in reach], '{:.1f}')} | {spread(best, '{:.1f}')} | "
            f"{spread(finals, '{:.1f}')} | {spread(ups, '{:.0f}') if ups else '-'} | "
            f"{spread([r['wall'] for r in runs], '{:.0f}')} |"
        )
    return lines


def discrete_offline_rows(label: str, dataset: dict | None, results: dict) -> list[str]:
    """The offline table's rows learnt from one dataset; the first cell names it."""
    cell = label if dataset is None else f"{label}, mean return {dataset['mean_return']:.1f}"
    lines = []
    for name, runs in results.items():
        reach = [first_reach(r["curve"], THRESHOLD_DCQL)[0] for r in runs]
        lines.append(
            f"| {cell} | {name} | {runs[0]['steps']:,} | {len(runs)} | "
            f"{spread([r['final'] for r in runs], '{:.1f}')} | "
            f"{spread([max(x[1] for x in r['curve']) for r in runs], '{:.1f}')} | "
            f"{spread(reach)} | {spread([r['wall'] for r in runs], '{:.0f}')} |"
        )
    return lines


def dataset_line(label: str, dataset: dict, command: str, runs: list[dict] | None = None) -> str:
    """One bullet naming a dataset: where its transitions come from, their episode returns."""
    made_by = (dataset.get("provenance") or {}).get("policy") or ""
    seed = dataset.get("seed", (dataset.get("provenance") or {}).get("seed", "?"))
    if dataset.get("dqn_curve") is not None or made_by == "rldata train --algo dqn":
        source = (
            f"the replay of an rldata DQN training run of seed {seed} (as "
            "`rldata train --algo dqn --store PATH`: epsilon-greedy exploration from the first "
            "step, every transition kept)"
        )
    elif dataset.get("policy") is not None:
        source = (
            f"the trained rldata DQN of seed {seed} (its greedy policy, as "
            "`rldata collect --policy RUN`)"
        )
    else:
        source = f"the store `{dataset['path']}`"
    stats = f"mean episode return {dataset['mean_return']:.1f}"
    if "min_return" in dataset:
        stats += (
            f", median {dataset['median_return']:.1f}, min {dataset['min_return']:.0f}, "
            f"max {dataset['max_return']:.0f}"
        )
    written = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    merged = "--merge" in command and runs
    parts = "; ".join(f"`{r['command']}` (started {r['started']})" for r in runs or [])
    return (
        f"- {label}: {dataset['rows']:,} transitions ({dataset['episodes']} episodes) from "
        f"{source}; {stats}. Rows written {written} by `{command}`"
        + (f", from the runs {parts}." if merged else ".")
    )


def offline_block(datasets: list[str], rows: list[str], curve_lines: list[str]) -> list[str]:
    """The offline part of the CartPole section, between its markers."""
    return [
        OFFLINE_BEGIN,
        "Datasets (each 50k-transition store below; the table's first column names it):",
        "",
        *datasets,
        "",
        OFFLINE_TABLE_BEGIN,
        "| dataset | algo | updates | seeds | final eval return (median, min-max) | best eval | "
        f"updates to {THRESHOLD_DCQL:.0f} | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        OFFLINE_TABLE_END,
        "",
        "Evaluation curves (updates: mean return):",
        "",
        *curve_lines,
        OFFLINE_END,
    ]


def offline_parts(raw: dict, command: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(labels, dataset bullets, table rows, curve lines)`` of the datasets ``raw`` holds."""
    labels, datasets, rows, curve_lines = [], [], [], []
    for results_key, dataset_key, label in DISCRETE_DATASETS:
        results, dataset = raw.get(results_key) or {}, raw.get(dataset_key)
        if not results:
            continue
        labels.append(label)
        if dataset:
            datasets.append(dataset_line(label, dataset, command, raw.get("runs")))
        rows += discrete_offline_rows(label, dataset, results)
        named = {f"{name} on {label}": runs for name, runs in results.items()}
        curve_lines += curves("", named)[2:-1]
    return labels, datasets, rows, curve_lines


def merge_offline_block(old: list[str], raw: dict, command: str) -> list[str]:
    """``old`` (an offline block) with the rows of the datasets in ``raw`` replaced or added.

    A line belongs to a dataset when its bullet (``- LABEL:``), its table row (``| LABEL,``)
    or its curve (``- ALGO on LABEL, seed``) names it; the lines of other datasets are kept.
    """
    labels, datasets, rows, curve_lines = offline_parts(raw, command)

    def other(line: str) -> bool:
        return not any(
            line.startswith((f"- {lab}:", f"| {lab},", f"| {lab} |")) or f" on {lab}, seed " in line
            for lab in labels
        )

    table_at, table_end = old.index(OFFLINE_TABLE_BEGIN), old.index(OFFLINE_TABLE_END)
    kept_datasets = [x for x in old[:table_at] if x.startswith("- ") and other(x)]
    kept_rows = [x for x in old[table_at + 3 : table_end] if other(x)]
    kept_curves = [x for x in old[table_end:] if x.startswith("- ") and other(x)]
    return offline_block(kept_datasets + datasets, kept_rows + rows, kept_curves + curve_lines)


def render_discrete(raw: dict, command: str) -> list[str]:
    """The CartPole section (between markers, so a discrete-only run replaces just it)."""
    online = raw.get("discrete_online") or {}
    lines = [
        DISCRETE_BEGIN,
        "## Discrete actions: CartPole-v1 (DQN vs Stable-Baselines3's DQN, discrete CQL)",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}, "
        f"torch {torch.__version__}, one CPU thread per run, by `{command}`. Both DQNs use "
        "rl-zoo's CartPole-v1 hyperparameters (rldata's `dqn` registry defaults); rldata's "
        "target is double DQN, SB3's the max of the target net. Eval every "
        f"{DISCRETE_EVAL_EVERY:,} env steps and at the end, {EVAL_EPISODES} deterministic "
        "episodes on fixed seeds. Wall times depend on the machine's load (a shared 2-core VM "
        "here): compare them only between rows of one invocation, whose seeds interleave.",
        "",
    ]
    if len(raw.get("runs", [])) > 1:
        lines += [*[f"- started {r['started']}: `{r['command']}`" for r in raw["runs"]], ""]
    if online:
        lines += [
            "<!-- table:learning-discrete-online -->",
            *discrete_online_table(online),
            "<!-- /table:learning-discrete-online -->",
            "",
        ]
        lines += curves("Evaluation curves (env steps: mean return):", online)
    labels, datasets, rows, curve_lines = offline_parts(raw, command)
    if labels:
        lines += [*offline_block(datasets, rows, curve_lines), ""]
    return [*lines, DISCRETE_END]


def write_discrete(path: Path | None, raw: dict, command: str) -> str:
    """Print and write the CartPole part of ``raw``: its whole section when it holds DQN runs,
    else only its datasets' rows of the offline block already in ``path`` (the rest kept)."""
    text = path.read_text() if path is not None and path.is_file() else ""
    if not raw.get("discrete_online") and OFFLINE_BEGIN in text and OFFLINE_END in text:
        head, rest = text.split(OFFLINE_BEGIN, 1)
        old, tail = rest.split(OFFLINE_END, 1)
        block = merge_offline_block([OFFLINE_BEGIN, *old.split("\n"), OFFLINE_END], raw, command)
        print("\n".join(block))
        if path is not None:
            path.write_text(head + "\n".join(block) + tail)
        return "\n".join(block)
    section = "\n".join(render_discrete(raw, command))
    print(section)
    if path is not None:
        write_discrete_only(path, section)
    return section


def write_discrete_only(path: Path, section: str) -> str:
    """Replace the discrete section of ``path`` (or append it), keeping the rest as it is."""
    text = path.read_text() if path.is_file() else ""
    if DISCRETE_BEGIN in text and DISCRETE_END in text:
        head, rest = text.split(DISCRETE_BEGIN, 1)
        tail = rest.split(DISCRETE_END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return text


def render(raw: dict, command: str) -> str:
    """The markdown report of ``raw`` (``{"online", "offline", "dataset"}``)."""
    online, offline, dataset = raw["online"], raw["offline"], raw.get("dataset")
    targets = {"sac": 5000, "redq": 3000, "td3": 10000, "ddpg": 10000}
    lines = [
        "# Learning on Pendulum-v1 (rldata Trainer vs Stable-Baselines3)",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"one CPU thread per run, by `{command}` from these runs:",
        "",
        *[f"- started {r['started']}: `{r['command']}`" for r in raw.get("runs", [])],
        "",
    ]
    if online:
        lines += ["## Online (eval every 1k env steps, 5 deterministic episodes)", ""]
        lines += ["<!-- table:learning-online -->", *online_table(online, targets)]
        if "sac (rldata)" in online and "sac (SB3)" in online:
            pairs = list(zip(online["sac (rldata)"], online["sac (SB3)"]))
            ratio = []
            for a, b in pairs:
                wa, wb = first_reach(a["curve"], -200)[1], first_reach(b["curve"], -200)[1]
                ratio.append(f"{wb / wa:.2f}x" if wa and wb else "n/a")
            walls = [b["wall"] / a["wall"] for a, b in pairs]
            lines += [
                "",
                f"Wall time to -200, SB3 / rldata per seed: {', '.join(ratio) or 'n/a'}; "
                f"whole run, SB3 / rldata per seed: {', '.join(f'{r:.2f}x' for r in walls)}.",
            ]
        lines += ["<!-- /table:learning-online -->", ""]
        lines += curves("Evaluation curves (env steps: mean return):", online)
    if offline:
        lines += ["## Offline (from a store recorded while SAC trained)", ""]
        if dataset:
            lines += [
                f"Dataset: {dataset['rows']:,} transitions recorded by SAC online "
                f"(seed {dataset.get('seed', '?')}), mean episode return "
                f"{dataset['mean_return']:.1f}.",
                "",
            ]
        lines += ["<!-- table:learning-offline -->", *offline_table(offline)]
        lines += ["<!-- /table:learning-offline -->", ""]
        lines += curves("Evaluation curves (updates: mean return):", offline)
    if any(raw.get(k) for k in ("discrete_online", "discrete_offline", "discrete_offline_replay")):
        lines += ["", *render_discrete(raw, command)]
    return "\n".join(lines)


def discrete_raw() -> dict:
    """The CartPole keys of a run's raw results, empty."""
    return {
        "discrete_online": {},
        "discrete_offline": {},
        "discrete_dataset": None,
        "discrete_offline_replay": {},
        "discrete_replay_dataset": None,
    }


def merge(paths: list[str]) -> dict:
    """Runs saved by several invocations (``--json``), contender by contender."""
    raw: dict = {"online": {}, "offline": {}, "dataset": None}
    raw.update(discrete_raw())
    for path in paths:
        part = json.loads(Path(path).read_text())
        kinds = ("online", "offline", "discrete_online", "discrete_offline")
        for kind in (*kinds, "discrete_offline_replay"):
            for name, runs in (part.get(kind) or {}).items():
                raw[kind].setdefault(name, []).extend(runs)
        for key in ("dataset", "discrete_dataset", "discrete_replay_dataset"):
            raw[key] = raw[key] or part.get(key)
        raw.setdefault("runs", []).extend(part.get("runs", []))
    raw["runs"] = sorted(raw.get("runs", []), key=lambda r: r["started"])
    return raw


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seed0", type=int, default=0, help="first seed (seeds seed0 .. seed0+n-1)")
    p.add_argument(
        "--only",
        default="sac,sb3,redq,td3,ddpg,offline",
        help="comma list of: sac, sb3, redq, td3, ddpg, offline (Pendulum); dqn, dqnmax, sb3dqn, "
        "dcql, dcqlreplay (CartPole)",
    )
    p.add_argument("--dqn-frames", type=int, default=50_000)
    p.add_argument("--discrete-dataset", default=None, help="reuse this CartPole store")
    p.add_argument(
        "--discrete-replay-dataset",
        default=None,
        help="dcqlreplay: reuse this store, recorded by `rldata train --algo dqn --store PATH`",
    )
    p.add_argument("--discrete-dataset-frames", type=int, default=50_000)
    p.add_argument("--discrete-offline-algos", default="discrete_cql,bc")
    p.add_argument(
        "--discrete-cql-set",
        action="append",
        metavar="KEY=VALUE",
        help="a TrainConfig field for discrete_cql (repeatable; the row names it), e.g. "
        "target_update_interval=128",
    )
    p.add_argument("--discrete-offline-steps", type=int, default=10_000)
    p.add_argument("--discrete-offline-eval-every", type=int, default=2_000)
    p.add_argument("--learning-starts", type=int, default=1000)
    p.add_argument("--sac-frames", type=int, default=5000)
    p.add_argument("--redq-frames", type=int, default=3000)
    p.add_argument("--td3-frames", type=int, default=10000)
    p.add_argument("--dataset", default=None, help="reuse this store (skip recording)")
    p.add_argument("--dataset-frames", type=int, default=50_000)
    p.add_argument("--offline-algos", default="td3bc,iql,cql")
    p.add_argument("--offline-steps", type=int, default=20_000)
    p.add_argument(
        "--cql-steps",
        type=int,
        default=None,
        help="CQL's updates (default: --offline-steps); CQL costs ~15x IQL per update on CPU",
    )
    p.add_argument("--offline-eval-every", type=int, default=2_000)
    p.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-learning.md")))
    p.add_argument("--json", default=None, help="raw curves, rewritten after every run")
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="only report: combine the --json files of runs made in parallel (seed ranges)",
    )
    args = p.parse_args(argv)
    command = (
        f"python benchmarks/bench_learning.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    )
    if args.merge:
        raw = merge(args.merge)
        if not raw["online"] and not raw["offline"]:  # CartPole only: rewrite just its section
            write_discrete(Path(args.out) if args.out else None, raw, command)
            return raw
        text = render(raw, command)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return raw
    torch.set_num_threads(1)
    only = set(args.only.split(","))
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    raw = {"online": {}, "offline": {}, "dataset": None}
    raw.update(discrete_raw())
    raw["runs"] = [{"command": command, "started": started}]
    online: dict[str, list[dict]] = raw["online"]
    offline: dict[str, list[dict]] = raw["offline"]
    work = Path(tempfile.mkdtemp(prefix="rldata-bench-"))

    def keep(kind: dict, name: str, seed: int, result: dict) -> None:
        kind.setdefault(name, []).append({**result, "seed": seed})
        print(name, seed, result["curve"], flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(raw))

    ls = args.learning_starts
    for seed in seeds:  # interleaved: each seed runs every contender under the same load
        if "sac" in only:
            keep(online, "sac (rldata)", seed, rldata_online("sac", args.sac_frames, seed, ls))
        if "sb3" in only:
            keep(online, "sac (SB3)", seed, sb3_online(args.sac_frames, seed, ls))
        for algo, frames in (
            ("redq", args.redq_frames),
            ("td3", args.td3_frames),
            ("ddpg", args.td3_frames),
        ):
            if algo in only:
                keep(online, algo, seed, rldata_online(algo, frames, seed, ls))
    if "offline" in only:
        if args.dataset is not None:
            path = Path(args.dataset)
        else:
            path = Path(tempfile.mkdtemp(prefix="rldata-bench-")) / "pendulum-sac"
            rec = record_dataset(path, args.dataset_frames, args.seed0, ls)
            print("dataset", path, rec["curve"], flush=True)
        with rldata.open(path) as store:
            episodes = store.episodes()
            raw["dataset"] = {
                "path": str(path),
                "rows": len(store),
                "mean_return": float(episodes["return"].double().mean()),
                "seed": args.seed0 if args.dataset is None else None,
            }
        for seed in seeds:
            for algo in args.offline_algos.split(","):
                steps = args.cql_steps if algo == "cql" and args.cql_steps else args.offline_steps
                r = rldata_offline(algo, path, steps, seed, args.offline_eval_every)
                keep(offline, algo, seed, {**r, "steps": steps})
    discrete(args, seeds, raw, keep, work)
    if only <= DISCRETE_CONTENDERS:  # a discrete-only run rewrites just its section
        write_discrete(Path(args.out) if args.out else None, raw, command)
        return raw
    text = render(raw, command)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return raw


def discrete(args: argparse.Namespace, seeds: list[int], raw: dict, keep, work: Path) -> None:
    """CartPole-v1: DQN (rldata and SB3, seeds interleaved), then offline from its data."""
    only = set(args.only.split(","))
    online = raw["discrete_online"]
    for seed in seeds:
        if "dqn" in only:
            run = rldata_dqn(args.dqn_frames, seed, work / f"dqn-{seed}")
            keep(online, "dqn (rldata)", seed, run)
        if "dqnmax" in only:  # SB3's target exactly: max_a Q'(s', a), no double DQN
            run = rldata_dqn(args.dqn_frames, seed, work / f"dqnmax-{seed}", double_dqn=False)
            keep(online, "dqn (rldata, max target as SB3)", seed, run)
        if "sb3dqn" in only:
            keep(online, "dqn (SB3)", seed, sb3_dqn(args.dqn_frames, seed))
    if "dcql" in only:
        expert_offline(args, seeds, raw, keep, work)
    if "dcqlreplay" in only:
        if args.discrete_replay_dataset is not None:
            path = Path(args.discrete_replay_dataset)
            raw["discrete_replay_dataset"] = store_returns(path)
        else:
            path = work / "cartpole-dqn-replay"
            raw["discrete_replay_dataset"] = record_discrete_replay(
                path, args.discrete_dataset_frames, seeds[0], work / "dqn-replay"
            )
        print("discrete replay dataset", raw["discrete_replay_dataset"], flush=True)
        for seed in seeds:
            for name, result in discrete_offline_runs(args, path, seed):
                keep(raw["discrete_offline_replay"], name, seed, result)


def expert_offline(args: argparse.Namespace, seeds: list[int], raw: dict, keep, work: Path) -> None:
    """Discrete CQL and BC from the trained DQN's greedy transitions (every return 500)."""
    online, offline = raw["discrete_online"], raw["discrete_offline"]
    if args.discrete_dataset is not None:
        path = Path(args.discrete_dataset)
        raw["discrete_dataset"] = store_returns(path)
    else:
        runs = online.get("dqn (rldata)") or [
            {**rldata_dqn(args.dqn_frames, seeds[0], work / "dqn-data"), "seed": seeds[0]}
        ]
        chosen = runs[0]  # the first seed's trained DQN
        path = work / "cartpole-dqn"
        raw["discrete_dataset"] = record_discrete_dataset(
            path, chosen["run"], args.discrete_dataset_frames, chosen["seed"]
        )
        print("discrete dataset", raw["discrete_dataset"], flush=True)
    for seed in seeds:
        for name, result in discrete_offline_runs(args, path, seed):
            keep(offline, name, seed, result)


if __name__ == "__main__":
    main()
