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
import math
from dataclasses import dataclass, field
from typing import Any

from rldata import _untrusted as untrusted
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
    """Uniformly random actions for the first frames (fills the replay); 0 by default when
    training offline to online (the dataset fills the batches from the first step)."""
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
    target_update_interval: int | None = None
    """DQN, discrete CQL: updates between hard copies of the Q-network into its target
    (unset: Polyak averaging with ``tau``)."""
    double_dqn: bool | None = None
    """DQN, discrete CQL: the online network picks the next action, the target values it."""

    # exploration
    sigma_init: float | None = None
    """Initial std of the Gaussian exploration noise (deterministic actors)."""
    sigma_end: float | None = None
    """Final std, reached after ``frames`` (linear annealing)."""
    eps_init: float | None = None
    """Initial probability of a random action (epsilon-greedy, discrete actions)."""
    eps_end: float | None = None
    """Final probability of a random action."""
    exploration_fraction: float | None = None
    """Share of ``frames`` over which epsilon decays linearly from ``eps_init`` to ``eps_end``."""

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
        merged = {**GENERAL_DEFAULTS, **defaults}
        if self.dataset is not None and self.env is not None:
            # offline to online: the dataset fills the batches from the first step, so no
            # uniformly random warm-up (it stays the default of pure online training)
            merged["init_random_frames"] = 0
        for name, default in merged.items():
            if getattr(out, name) is None:
                setattr(out, name, default)
        if out.learning_starts is None:
            out.learning_starts = out.init_random_frames
        if out.eval_every is None:
            out.eval_every = 1000
        out.check()
        return out

    def __post_init__(self) -> None:
        # every construction (CLI, Python API, ``from_dict`` on --resume) is checked here
        self.check()

    def check(self) -> None:
        """Raise :class:`ConfigError` for a value out of its range (names the field).

        Every field has a rule in :data:`FIELD_RULES`: its type, whether it may be unset,
        and its range; numbers must be finite. Sizes that allocate (``batch_size``,
        ``buffer_size``, ``hidden``) also have caps that keep them within memory.
        """
        for name, rule in FIELD_RULES.items():
            rule.check(name, getattr(self, name))
        _check_hidden(self.hidden)

    # --- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown fields are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"config: unknown fields {unknown}; valid: {sorted(names)}")
        return cls(**data)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Each field's docstring (the line under it), for CLI ``--help`` texts."""
        return dict(_FIELD_DOCS)

    @classmethod
    def field_groups(cls) -> dict[str, str]:
        """Each field's group: the comment above it in the class body (``"schedule"``,
        ``"replay"``, ...), for the sections of ``rldata train --help``."""
        return dict(_FIELD_GROUPS)


@dataclass(frozen=True)
class Rule:
    """The allowed values of one field: ``kind`` (``"int"``, ``"float"``, ``"bool"``,
    ``"str"`` or ``"list"``), whether ``None`` (unset) is allowed, and a range
    ``low``..``high`` whose ends are open when ``open_low`` / ``open_high``."""

    kind: str
    optional: bool = True
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def allowed(self) -> str:
        what = {"int": "an integer", "float": "a finite number", "bool": "true or false"}.get(
            self.kind, "a string" if self.kind == "str" else "a list of integers"
        )
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else _num(self.low)
            hi = "inf" if self.high is None else _num(self.high)
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            what += f" in {left}{lo}, {hi}{right}"
        return what + (" or unset" if self.optional else "")

    def check(self, name: str, value: Any) -> None:
        if value is None:
            if self.optional:
                return
            self.refuse(name, value)
        if self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            )
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "str":
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, list)
        if ok and self.low is not None:
            ok = value > self.low if self.open_low else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.open_high else value <= self.high
        if not ok:
            self.refuse(name, value)

    def refuse(self, name: str, value: Any) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{name} must be {self.allowed()}, got {shown}")


def _num(x: float) -> str:
    if float(x).is_integer() and abs(x) >= 2**20 and (int(abs(x)) & (int(abs(x)) - 1)) == 0:
        return f"{'-' if x < 0 else ''}2**{int(abs(x)).bit_length() - 1}"  # 2**62, not 4.6e+18
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e18 else f"{x:g}"


_INT = 2**62  # counts of steps and seeds: any machine integer
#: The largest batch (rows per update) and replay (rows) a config may ask for: beyond them the
#: allocator, not this check, would fail (a row of a few floats times 2**24 / 2**32 rows).
MAX_BATCH_SIZE = 2**24
MAX_BUFFER_SIZE = 2**32
#: Hidden layers: each at most this wide, and their weights (all networks, optimizer state and
#: target copies, about 16 copies of float32) within rldata's memory budget.
MAX_HIDDEN = 2**16
MAX_LAYERS = 64

FIELD_RULES: dict[str, Rule] = {
    "algo": Rule("str", optional=False),
    "env": Rule("str"),
    "dataset": Rule("str"),
    "eval_env": Rule("str"),
    "seed": Rule("int", optional=False, low=0, high=_INT),
    "device": Rule("str", optional=False),
    "threads": Rule("int", low=1, high=4096),
    "frames": Rule("int", low=1, high=_INT),
    "steps": Rule("int", low=1, high=_INT),
    "init_random_frames": Rule("int", low=0, high=_INT),
    "learning_starts": Rule("int", low=0, high=_INT),
    "frames_per_batch": Rule("int", low=1, high=MAX_BATCH_SIZE),
    "utd": Rule("float", low=0, high=1e6, open_low=True),
    "collect_async": Rule("bool", optional=False),
    "batch_size": Rule("int", low=1, high=MAX_BATCH_SIZE),
    "buffer_size": Rule("int", low=1, high=MAX_BUFFER_SIZE),
    "store": Rule("str"),
    "backend": Rule("str", optional=False),
    "replay_device": Rule("str"),
    "offline_ratio": Rule("float", optional=False, low=0.0, high=1.0),
    "prefetch": Rule("int", optional=False, low=0, high=64),
    "gamma": Rule("float", low=0, high=1, open_low=True),
    "tau": Rule("float", low=0, high=1, open_low=True),
    "num_qvalue_nets": Rule("int", low=1, high=1024),
    "sub_sample_len": Rule("int", low=1, high=1024),
    "policy_noise": Rule("float", low=0, high=1e6),
    "noise_clip": Rule("float", low=0, high=1e6),
    "policy_delay": Rule("int", low=1, high=_INT),
    "bc_alpha": Rule("float", low=0, high=1e12),
    "expectile": Rule("float", low=0, high=1, open_low=True, open_high=True),
    "temperature": Rule("float", low=0, high=1e12, open_low=True),
    "min_q_weight": Rule("float", low=0, high=1e12),
    "num_random": Rule("int", low=1, high=4096),
    "bc_steps": Rule("int", low=0, high=_INT),
    "normalize_observations": Rule("bool"),
    "target_update_interval": Rule("int", low=1, high=_INT),
    "double_dqn": Rule("bool"),
    "sigma_init": Rule("float", low=0, high=1e6),
    "sigma_end": Rule("float", low=0, high=1e6),
    "eps_init": Rule("float", low=0.0, high=1.0),
    "eps_end": Rule("float", low=0.0, high=1.0),
    "exploration_fraction": Rule("float", low=0, high=1, open_low=True),
    "hidden": Rule("list", optional=False),
    "actor_lr": Rule("float", low=0, high=1e3, open_low=True),
    "critic_lr": Rule("float", low=0, high=1e3, open_low=True),
    "alpha_lr": Rule("float", low=0, high=1e3, open_low=True),
    "grad_clip": Rule("float", low=0, high=1e12, open_low=True),
    "eval_every": Rule("int", low=1, high=_INT),
    "eval_episodes": Rule("int", optional=False, low=1, high=100_000),
    "log_every": Rule("int", optional=False, low=1, high=_INT),
    "checkpoint_every": Rule("int", low=1, high=_INT),
    "tensorboard": Rule("bool", optional=False),
}


def _check_hidden(hidden: list[Any]) -> None:
    if not 1 <= len(hidden) <= MAX_LAYERS:
        raise ConfigError(f"hidden must list 1 to {MAX_LAYERS} layer sizes, got {len(hidden)}")
    for i, h in enumerate(hidden):
        if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_HIDDEN:
            raise ConfigError(f"hidden[{i}] must be an integer in [1, {MAX_HIDDEN}], got {h!r:.40}")
    weights = sum(a * b for a, b in zip(hidden, hidden[1:])) + 2 * max(hidden)
    need = 16 * 4 * weights
    budget = untrusted.ram_budget()
    if need > budget:
        raise ConfigError(
            f"hidden {str(hidden)[:60]}: the networks would need about {need / 2**30:.1f} GiB, "
            f"over the {budget / 2**30:.1f} GiB memory budget (this machine's RAM, or "
            "RLDATA_MEMORY_BUDGET)"
        )


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


def _read_field_groups() -> dict[str, str]:
    """The ``# group`` comment each field sits under in the class body."""
    import inspect
    import re

    groups: dict[str, str] = {}
    group = "general"
    for line in inspect.getsource(TrainConfig).splitlines():
        comment = re.fullmatch(r"    # (.+)", line)
        field_line = re.match(r"    (\w+): ", line)
        if comment:
            group = comment.group(1).strip()
        elif field_line:
            groups[field_line.group(1)] = group
    return groups


_FIELD_DOCS = _read_field_docs()
_FIELD_GROUPS = _read_field_groups()
