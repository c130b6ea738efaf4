"""``TrainConfig``: every knob of a training run, one typed field each, grouped by role.

The groups follow the examples' comments (schedule, replay, loss, optimizer, evaluation,
logging). Algorithm-specific fields default to ``None``, meaning "the algorithm's
default" (:mod:`rldata.trainers.algorithms` lists them with their sources);
:meth:`TrainConfig.with_defaults` fills them in. A config round-trips through JSON
(``config.json`` of a run), so a run directory says exactly how it was trained.

Examples:
    >>> cfg = TrainConfig(algo="ddpg", env="Pendulum-v1", frames=5000)
    >>> cfg.with_defaults({"actor_lr": 1e-3}).actor_lr, cfg.with_defaults({}).batch_size
    (0.001, 256)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rldata.errors import ConfigError


@dataclass
class TrainConfig:
    """A training run: what to learn from, for how long, and with which hyperparameters."""

    # algorithm and data
    algo: str = "sac"
    """One of ``rldata.trainers.algorithms.ALGORITHMS``."""
    env: str | None = None
    """Gymnasium id to collect from (online); with ``dataset``: offline-to-online."""
    dataset: str | None = None
    """Store path to learn from (offline)."""
    eval_env: str | None = None
    """Env id for evaluation (default: ``env``, else the dataset's env id)."""
    seed: int = 0
    """Seeds torch, the collector's env and the evaluation episodes."""
    device: str = "cpu"
    """Where models, losses and batches live (``cpu``, ``cuda``, ``cuda:1``)."""
    threads: int | None = None
    """CPU threads torch uses during the run (restored after it). Default: 1 when training on
    the CPU, where these small networks gain little from more and extra threads stall badly
    on shared cores (a 2-core VM at load 8 ran SAC 20x slower with 2); torch's choice on GPU."""

    # schedule
    frames: int | None = None
    """Environment steps in total (online)."""
    steps: int | None = None
    """Gradient updates in total (offline; online: a cap on updates)."""
    init_random_frames: int | None = None
    """Uniformly random actions for the first frames (fills the replay)."""
    learning_starts: int | None = None
    """Frames collected before the first update (default: ``init_random_frames``)."""
    frames_per_batch: int | None = None
    """Env steps collected between rounds of updates."""
    utd: float | None = None
    """Updates per collected frame (the update-to-data ratio)."""
    collect_async: bool = False
    """Collect in a background thread, holding ``utd`` with a sample-to-insert rate limiter."""

    # replay
    batch_size: int | None = None
    """Rows per update."""
    buffer_size: int | None = None
    """Capacity of the online replay (rows); ``None`` keeps every row."""
    store: str | None = None
    """Record the online replay into an rldata store at this path (a dataset afterwards)."""
    backend: str = "memmap"
    """Backend of ``store``."""
    replay_device: str | None = None
    """Where the online replay lives (default ``cpu``; ``cuda`` keeps it on the GPU)."""
    offline_ratio: float = 0.5
    """Share of each batch drawn from the dataset when training offline-to-online."""
    prefetch: int = 2
    """Batches prepared ahead in a background thread (offline and store-backed replay)."""

    # loss
    gamma: float | None = None
    """Discount."""
    tau: float | None = None
    """Polyak step of the target networks."""
    num_qvalue_nets: int | None = None
    """Critics (REDQ's ensemble size N)."""
    sub_sample_len: int | None = None
    """REDQ: critics in the target's random subset (M)."""
    policy_noise: float | None = None
    """TD3: std of the target smoothing noise."""
    noise_clip: float | None = None
    """TD3: clip of the target smoothing noise."""
    policy_delay: int | None = None
    """TD3: critic updates per actor update."""
    bc_alpha: float | None = None
    """TD3+BC: weight of the Q term (alpha)."""
    expectile: float | None = None
    """IQL: expectile of the value regression."""
    temperature: float | None = None
    """IQL: inverse temperature beta; CQL: temperature of the logsumexp."""
    min_q_weight: float | None = None
    """CQL: weight of the conservative term."""
    num_random: int | None = None
    """CQL: actions sampled per state from each proposal (uniform, policy at s, policy at s')."""
    bc_steps: int | None = None
    """CQL: first updates that train the actor by behaviour cloning (policy_eval_start)."""
    normalize_observations: bool | None = None
    """Normalize observations with the dataset's statistics (TD3+BC, IQL, CQL)."""

    # exploration
    sigma_init: float | None = None
    """Initial std of the Gaussian exploration noise (deterministic actors)."""
    sigma_end: float | None = None
    """Final std, reached after ``frames`` (linear annealing)."""

    # networks and optimizer
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden layer sizes of every network."""
    actor_lr: float | None = None
    """Learning rate of the actor."""
    critic_lr: float | None = None
    """Learning rate of the critics (and value network)."""
    alpha_lr: float | None = None
    """Learning rate of SAC's temperature."""
    grad_clip: float | None = None
    """Clip the gradient norm of every update to this value (None: no clipping)."""

    # evaluation
    eval_every: int | None = None
    """Env steps (online) or updates (offline) between evaluations."""
    eval_episodes: int = 5
    """Episodes per evaluation (deterministic policy, seeds ``seed + 10_000 + i``)."""

    # logging and checkpoints
    log_every: int = 1000
    """Updates between metric rows (``metrics.csv``)."""
    checkpoint_every: int | None = None
    """Env steps (online) or updates (offline) between checkpoints (default: each evaluation)."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed."""

    def with_defaults(self, defaults: dict[str, Any]) -> TrainConfig:
        """A checked copy with every unset (``None``) field taken from ``defaults``.

        ``defaults`` is an algorithm's (see :func:`rldata.trainers.algorithms.resolve`)
        laid over :data:`GENERAL_DEFAULTS`.
        """
        out = dataclasses.replace(self)
        for name, default in {**GENERAL_DEFAULTS, **defaults}.items():
            if getattr(out, name) is None:
                setattr(out, name, default)
        if out.learning_starts is None:
            out.learning_starts = out.init_random_frames
        if out.eval_every is None:
            out.eval_every = 1000
        out.check()
        return out

    def check(self) -> None:
        """Raise :class:`ConfigError` for a value out of its range (names the field)."""
        positive = [
            "batch_size",
            "frames_per_batch",
            "eval_every",
            "log_every",
            "eval_episodes",
            "threads",
        ]
        for name in positive:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name in ("frames", "steps", "buffer_size", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer or unset, got {v!r}")
        if self.utd is not None and self.utd <= 0:
            raise ConfigError(f"utd must be > 0, got {self.utd}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be > 0, got {self.grad_clip}")
        if not 0.0 <= self.offline_ratio <= 1.0:
            raise ConfigError(f"offline_ratio must lie in [0, 1], got {self.offline_ratio}")
        if self.prefetch < 0:
            raise ConfigError(f"prefetch must be >= 0, got {self.prefetch}")

    # --- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown fields are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"config: unknown fields {unknown}; valid: {sorted(names)}")
        return cls(**data)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's docstring (the line under it), for CLI ``--help`` texts."""
        return dict(_FIELD_DOCS)


GENERAL_DEFAULTS: dict[str, Any] = {
    "init_random_frames": 1000,
    "frames_per_batch": 1,
    "utd": 1.0,
    "batch_size": 256,
    "buffer_size": 1_000_000,
    "replay_device": "cpu",
    "gamma": 0.99,
    "tau": 0.005,
    "num_qvalue_nets": 2,
    "actor_lr": 3e-4,
    "critic_lr": 3e-4,
    "alpha_lr": 3e-4,
    "normalize_observations": False,
}


def _read_field_docs() -> dict[str, str]:
    """Attribute docstrings (the string literal under each field) from this file's source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value
    return docs


_FIELD_DOCS = _read_field_docs()
