"""Evaluating a finished run: its ``policy.pt`` on its env, as ``rldata eval`` does.

The env id comes from the user (``env=``) or from the run's files; an id read from a file
is data and passes :func:`rldata.env_ids.trusted_env_id` before any env is made.
"""

from __future__ import annotations

import os
from typing import Any

from rldata.collectors.policies import load_policy
from rldata.env_ids import trusted_env_id
from rldata.envs import GymEnv
from rldata.errors import ConfigError
from rldata.trainers.checkpoint import read_json
from rldata.trainers.config import FIELD_RULES, TrainConfig
from rldata.trainers.evaluation import evaluate_policy


def evaluate_run(
    run: str,
    *,
    env: str | None = None,
    episodes: int = 5,
    seed: int | None = None,
) -> dict[str, Any]:
    """Evaluate a training run's policy (``RUN/policy.pt``): deterministic, fixed seeds.

    Args:
        run: a run directory written by :func:`train`.
        env: env id (default: the one the run evaluated on).
        episodes: episodes to run.
        seed: base seed (default: the run's); episode ``i`` uses ``seed + 10_000 + i``.

    Returns:
        ``{"run", "env", "episodes", "returns", "mean", "std"}``, plus the run's ``algo``,
        ``mode``, ``env_steps``, ``updates`` and ``wall_s`` from its ``summary.json``.
    """
    FIELD_RULES["eval_episodes"].check("episodes", episodes)  # the range a run's config has
    if seed is not None:
        FIELD_RULES["seed"].check("seed", seed)
    path = run
    summary_path = os.path.join(path, "summary.json")
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise ConfigError(f"no training run at {path!r} (expected {config_path})")
    config = read_json(config_path)
    TrainConfig.from_dict(config)  # a tampered config.json: one line naming the field
    trained: dict[str, Any] = {}
    if os.path.lexists(summary_path):  # a FIFO or device is refused by read_json, not skipped
        trained = read_json(summary_path)
    env_id = env
    recorded = ((trained, "eval_env", summary_path), (config, "eval_env", config_path))
    for data, key, file in (*recorded, (config, "env", config_path)) if not env else ():
        if data.get(key):  # read from the run's files: data, never a module to import
            env_id = trusted_env_id(data[key], source=file)
            break
    if env_id is None:
        raise ConfigError(f"run {path!r} names no env: give --env ENV_ID")
    gym_env = GymEnv(env_id)
    try:
        policy = load_policy(path, env=gym_env)
        result = evaluate_policy(
            policy, gym_env, episodes, int(config.get("seed", 0) if seed is None else seed)
        )
    finally:
        gym_env.close()
    return {
        "run": path,
        "env": env_id,
        "episodes": episodes,
        "returns": list(result.returns),
        "mean": result.mean,
        "std": result.std,
        "algo": trained.get("algo", config.get("algo")),
        **{k: trained.get(k) for k in ("mode", "env_steps", "updates", "wall_s")},
    }
