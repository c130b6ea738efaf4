"""The algorithm registry, each entry with defaults known to work.

Continuous actions: ``ddpg, sac, redq, td3`` (online), ``td3bc, iql, cql`` (offline).
Discrete actions: ``dqn`` (online), ``discrete_cql, bc`` (offline).

An :class:`Algorithm` names its policy kind, its defaults (merged into
:class:`~rldata.trainers.TrainConfig` for every field the user left unset) and a
``build`` that returns an :class:`Agent`: the acting policy, the loss, one optimizer
with a parameter group per role, and the target updater. An unknown name lists the
valid ones.

Every default below is the one its source uses, changed only where a source is tuned
for a different budget (noted inline); the learning benchmark
(``benchmarks/bench_learning.py``) checks them on Pendulum-v1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase, TensorDictSequential
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import AdditiveGaussianModule, EGreedyModule
from rldata.objectives import (
    CQLLoss,
    DDPGLoss,
    DiscreteBCLoss,
    DiscreteCQLLoss,
    DQNLoss,
    HardUpdate,
    IQLLoss,
    LossModule,
    REDQLoss,
    SACLoss,
    SoftUpdate,
    TD3BCLoss,
    TD3Loss,
)
from rldata.trainers import networks as nets
from rldata.trainers.config import TrainConfig
from rldata.trainers.networks import EnvSpecs


@dataclass
class Agent:
    """What a training loop needs of an algorithm, built for one environment's specs."""

    actor: TensorDictModuleBase
    """The policy; run under ``ExplorationType.DETERMINISTIC`` it gives the evaluated action."""
    explore: nn.Module
    """The policy the collector runs (``actor`` plus noise, or the stochastic actor)."""
    loss: LossModule
    optimizer: torch.optim.Optimizer
    updater: SoftUpdate | HardUpdate | NoTargets
    noise: AdditiveGaussianModule | EGreedyModule | None = None
    """Exploration noise (Gaussian, or epsilon-greedy) whose scale anneals with the frames."""

    def targets_due(self) -> bool:
        """Whether this update should move the targets (TD3: only with the delayed actor)."""
        return bool(getattr(self.loss, "actor_updated", True))

    def exploration(self) -> dict[str, float]:
        """The exploration scale now, for the metrics: ``{"sigma": ...}`` or ``{"eps": ...}``."""
        if isinstance(self.noise, EGreedyModule):
            return {"eps": self.noise.eps}
        if isinstance(self.noise, AdditiveGaussianModule):
            return {"sigma": self.noise.sigma}
        return {}


class NoTargets:
    """The updater of a loss without target networks (behaviour cloning): nothing to move."""

    def step(self) -> None:
        pass


@dataclass(frozen=True)
class Algorithm:
    """One registry entry."""

    name: str
    stochastic: bool
    """Tanh-Gaussian actor (explores by sampling) rather than a deterministic one plus noise."""
    offline: bool
    """Designed to learn from a fixed dataset."""
    build: Callable[[EnvSpecs, TrainConfig], Agent]
    defaults: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    discrete: bool = False
    """Acts in a discrete (``Discrete`` / one-hot) action space rather than a Box."""


def _optimizer(loss: LossModule, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with one group per role: actor, critics (and value net), temperature.

    One Adam with per-group learning rates equals one Adam per network (Adam's state is
    per parameter), and steps every tensor at once.
    """
    groups: dict[str, list[nn.Parameter]] = {"actor": [], "critic": [], "alpha": []}
    for name, p in loss.named_parameters():
        if name.startswith("actor_network"):
            groups["actor"].append(p)
        elif name == "log_alpha":
            groups["alpha"].append(p)
        else:
            groups["critic"].append(p)
    lrs = {"actor": cfg.actor_lr, "critic": cfg.critic_lr, "alpha": cfg.alpha_lr}
    return torch.optim.Adam(
        [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps],
        fused=True,  # one kernel for every tensor: 10-15% faster updates on CPU (bench_losses)
    )


def _noise(specs: EnvSpecs, cfg: TrainConfig) -> AdditiveGaussianModule:
    return AdditiveGaussianModule(
        specs.action_spec,
        sigma_init=float(cfg.sigma_init),  # type: ignore[arg-type]
        sigma_end=float(cfg.sigma_end),  # type: ignore[arg-type]
        annealing_num_steps=max(int(cfg.frames or 1), 1),
    )


def _finish(
    actor: TensorDictModuleBase, loss: LossModule, cfg: TrainConfig, noise: Any = None
) -> Agent:
    explore = actor if noise is None else TensorDictSequential(actor, noise)
    updater = SoftUpdate(loss, tau=float(cfg.tau))  # type: ignore[arg-type]
    return Agent(actor, explore, loss, _optimizer(loss, cfg), updater, noise)


# --- builders -----------------------------------------------------------------------------


def _ddpg(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.deterministic_actor(specs, cfg.hidden)
    loss = DDPGLoss(actor, nets.qvalue(specs, cfg.hidden), gamma=cfg.gamma)
    return _finish(actor, loss, cfg, _noise(specs, cfg))


def _td3(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.deterministic_actor(specs, cfg.hidden)
    scale = specs.high  # the sources give the smoothing noise in units of max_action
    loss = TD3Loss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        num_qvalue_nets=int(cfg.num_qvalue_nets),  # type: ignore[arg-type]
        policy_noise=float(cfg.policy_noise) * scale,  # type: ignore[arg-type]
        noise_clip=float(cfg.noise_clip) * scale,  # type: ignore[arg-type]
        policy_delay=int(cfg.policy_delay),  # type: ignore[arg-type]
        gamma=cfg.gamma,
    )
    return _finish(actor, loss, cfg, _noise(specs, cfg))


def _td3bc(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.deterministic_actor(specs, cfg.hidden)
    scale = specs.high
    loss = TD3BCLoss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        alpha=float(cfg.bc_alpha),  # type: ignore[arg-type]
        policy_noise=float(cfg.policy_noise) * scale,  # type: ignore[arg-type]
        noise_clip=float(cfg.noise_clip) * scale,  # type: ignore[arg-type]
        policy_delay=int(cfg.policy_delay),  # type: ignore[arg-type]
        gamma=cfg.gamma,
    )
    return _finish(actor, loss, cfg, _noise(specs, cfg))


def _sac(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    # Stable-Baselines3's SAC as its policy acts in the unit box: clamped log-std head,
    # the target entropy and the critics' action input in that box, critics stepped first
    actor = nets.gaussian_actor(specs, cfg.hidden, log_std_head=True)
    loss = SACLoss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        num_qvalue_nets=int(cfg.num_qvalue_nets),  # type: ignore[arg-type]
        target_entropy=nets.unit_box_target_entropy(specs),
        gamma=cfg.gamma,
        critic_first=True,
        unit_box_critic=True,
    )
    return _finish(actor, loss, cfg)


def _redq(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.gaussian_actor(specs, cfg.hidden)
    loss = REDQLoss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        num_qvalue_nets=int(cfg.num_qvalue_nets),  # type: ignore[arg-type]
        sub_sample_len=int(cfg.sub_sample_len),  # type: ignore[arg-type]
        gamma=cfg.gamma,
    )
    return _finish(actor, loss, cfg)


def _iql(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.gaussian_actor(specs, cfg.hidden)
    loss = IQLLoss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        nets.state_value(specs, cfg.hidden),
        num_qvalue_nets=int(cfg.num_qvalue_nets),  # type: ignore[arg-type]
        expectile=float(cfg.expectile),  # type: ignore[arg-type]
        temperature=float(cfg.temperature),  # type: ignore[arg-type]
        gamma=cfg.gamma,
    )
    return _finish(actor, loss, cfg)


def _cql(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    actor = nets.gaussian_actor(specs, cfg.hidden)
    loss = CQLLoss(
        actor,
        nets.qvalue(specs, cfg.hidden),
        num_qvalue_nets=int(cfg.num_qvalue_nets),  # type: ignore[arg-type]
        min_q_weight=float(cfg.min_q_weight),  # type: ignore[arg-type]
        num_random=int(cfg.num_random),  # type: ignore[arg-type]
        temperature=float(cfg.temperature),  # type: ignore[arg-type]
        bc_steps=int(cfg.bc_steps),  # type: ignore[arg-type]
        gamma=cfg.gamma,
    )
    return _finish(actor, loss, cfg)


def _egreedy(specs: EnvSpecs, cfg: TrainConfig) -> EGreedyModule:
    """Epsilon decays linearly over ``exploration_fraction`` of the frames, then stays (SB3)."""
    frames = max(int(cfg.frames or 1), 1)
    return EGreedyModule(
        specs.action_spec,
        eps_init=float(cfg.eps_init),  # type: ignore[arg-type]
        eps_end=float(cfg.eps_end),  # type: ignore[arg-type]
        annealing_num_steps=max(int(float(cfg.exploration_fraction) * frames), 1),  # type: ignore[arg-type]
    )


def _target_updater(loss: LossModule, cfg: TrainConfig) -> SoftUpdate | HardUpdate:
    """A hard copy every ``target_update_interval`` updates, else Polyak averaging with ``tau``."""
    if cfg.target_update_interval is not None:
        return HardUpdate(loss, value_network_update_interval=int(cfg.target_update_interval))
    return SoftUpdate(loss, tau=float(cfg.tau))  # type: ignore[arg-type]


def _discrete_agent(
    values: TensorDictModuleBase, loss: LossModule, specs: EnvSpecs, cfg: TrainConfig
) -> Agent:
    actor = nets.greedy_actor(values, specs)  # type: ignore[arg-type]
    noise = _egreedy(specs, cfg) if cfg.env is not None else None
    explore = actor if noise is None else TensorDictSequential(actor, noise)
    has_targets = bool(loss.target_pairs()[0])
    updater = _target_updater(loss, cfg) if has_targets else NoTargets()
    return Agent(actor, explore, loss, _optimizer(loss, cfg), updater, noise)


def _dqn(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    values = nets.action_values(specs, cfg.hidden)
    loss = DQNLoss(values, double_dqn=bool(cfg.double_dqn), gamma=cfg.gamma)
    return _discrete_agent(values, loss, specs, cfg)


def _discrete_cql(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    values = nets.action_values(specs, cfg.hidden)
    loss = DiscreteCQLLoss(
        values,
        alpha=float(cfg.min_q_weight),  # type: ignore[arg-type]
        double_dqn=bool(cfg.double_dqn),
        gamma=cfg.gamma,
    )
    return _discrete_agent(values, loss, specs, cfg)


def _bc(specs: EnvSpecs, cfg: TrainConfig) -> Agent:
    logits = nets.action_values(specs, cfg.hidden)
    return _discrete_agent(logits, DiscreteBCLoss(logits), specs, cfg)


# --- the registry ---------------------------------------------------------------------------

_TD3_NOISE = {"policy_noise": 0.2, "noise_clip": 0.5, "policy_delay": 2}
# offline discrete algorithms fine-tuned online (--dataset and --env): SB3 DQN's final epsilon
_FINE_TUNE_EPS = {"eps_init": 0.05, "eps_end": 0.05, "exploration_fraction": 1.0}

ALGORITHMS: dict[str, Algorithm] = {
    "ddpg": Algorithm(
        "ddpg",
        stochastic=False,
        offline=False,
        build=_ddpg,
        # lr 1e-3 for both nets and tau 0.005 as in Fujimoto et al.'s "OurDDPG" re-tuning;
        # Gaussian noise annealed 0.5 -> 0.05 as in the TorchRL overview's DDPG script
        defaults={"actor_lr": 1e-3, "critic_lr": 1e-3, "sigma_init": 0.5, "sigma_end": 0.05},
        source="Lillicrap et al. 2016 (arXiv:1509.02971); Fujimoto et al. 2018 (OurDDPG.py)",
    ),
    "td3": Algorithm(
        "td3",
        stochastic=False,
        offline=False,
        build=_td3,
        # author code: lr 3e-4, exploration noise 0.1 * max_action (here sigma in action units)
        defaults={**_TD3_NOISE, "sigma_init": 0.2, "sigma_end": 0.2},
        source="Fujimoto et al. 2018 (arXiv:1802.09477), github.com/sfujim/TD3",
    ),
    "sac": Algorithm(
        "sac",
        stochastic=True,
        offline=False,
        build=_sac,
        defaults={},  # lr 3e-4 everywhere, batch 256, tau 0.005, auto temperature
        source="Haarnoja et al. 2018 (arXiv:1812.05905); Stable-Baselines3 SAC defaults",
    ),
    "redq": Algorithm(
        "redq",
        stochastic=True,
        offline=False,
        build=_redq,
        # N=10, M=2 as in the paper; UTD 20 in the paper, 10 here to fit a CPU budget
        defaults={"num_qvalue_nets": 10, "sub_sample_len": 2, "utd": 10.0},
        source="Chen et al. 2021 (arXiv:2101.05982), github.com/watchernyu/REDQ",
    ),
    "td3bc": Algorithm(
        "td3bc",
        stochastic=False,
        offline=True,
        build=_td3bc,
        defaults={
            **_TD3_NOISE,
            "bc_alpha": 2.5,
            "normalize_observations": True,
            "sigma_init": 0.1,
            "sigma_end": 0.1,
        },
        source="Fujimoto & Gu 2021 (arXiv:2106.06860), github.com/sfujim/TD3_BC",
    ),
    "iql": Algorithm(
        "iql",
        stochastic=True,
        offline=True,
        build=_iql,
        defaults={"expectile": 0.7, "temperature": 3.0, "normalize_observations": True},
        source="Kostrikov et al. 2021 (arXiv:2110.06169), github.com/ikostrikov/implicit_q_learning",
    ),
    "cql": Algorithm(
        "cql",
        stochastic=True,
        offline=True,
        build=_cql,
        # authors' code: policy lr 1e-4, critic lr 3e-4, 10 sampled actions per proposal,
        # deterministic backup (the loss's default); states normalized with the dataset's
        # statistics as in CORL (normalize=True). min_q_weight 1 as TorchRL's CQLLoss and its
        # CQL configs: the authors' 5 (tuned on D4RL) over-penalizes this mixed replay data
        # (Pendulum, bench_learning: -815 vs -127 after 3k updates)
        defaults={
            "min_q_weight": 1.0,
            "num_random": 10,
            "temperature": 1.0,
            "bc_steps": 0,
            "actor_lr": 1e-4,
            "normalize_observations": True,
        },
        source="Kumar et al. 2020 (arXiv:2006.04779), github.com/aviralkumar2907/CQL; "
        "CORL (github.com/tinkoff-ai/CORL); TorchRL CQLLoss (sota-implementations/cql)",
    ),
    "dqn": Algorithm(
        "dqn",
        stochastic=False,
        offline=False,
        discrete=True,
        build=_dqn,
        # rl-zoo's hyperparams/dqn.yml for CartPole-v1 (SB3 DQN): lr 2.3e-3, batch 64, replay
        # 1e5, learning_starts 1000, train_freq 256 with 128 gradient steps (utd 0.5), eps
        # 1 -> 0.04 over 16% of the run, [256, 256], gradient norm clipped at 10 (SB3's
        # max_grad_norm). SB3 copies the target every 10 env steps, but only between rounds of
        # updates does that change it: the same as a copy every 128 updates.
        defaults={
            "critic_lr": 2.3e-3,
            "batch_size": 64,
            "buffer_size": 100_000,
            "init_random_frames": 1000,
            "frames_per_batch": 256,
            "utd": 0.5,
            "target_update_interval": 128,
            "eps_init": 1.0,
            "eps_end": 0.04,
            "exploration_fraction": 0.16,
            "grad_clip": 10.0,
            "double_dqn": True,
        },
        source="Mnih et al. 2015; van Hasselt et al. 2016 (arXiv:1509.06461); rl-baselines3-zoo "
        "hyperparams/dqn.yml (CartPole-v1)",
    ),
    "discrete_cql": Algorithm(
        "discrete_cql",
        stochastic=False,
        offline=True,
        discrete=True,
        build=_discrete_cql,
        # d3rlpy's DiscreteCQL: alpha 1.0 on a double-DQN loss with a hard target copy; lr and
        # batch as the DQN above (d3rlpy's 6.25e-5 is tuned for Atari)
        defaults={
            "min_q_weight": 1.0,
            "critic_lr": 1e-3,
            "batch_size": 64,
            "target_update_interval": 1000,
            "grad_clip": 10.0,
            "double_dqn": True,
            **_FINE_TUNE_EPS,
        },
        source="Kumar et al. 2020 (arXiv:2006.04779), d3rlpy DiscreteCQL",
    ),
    "bc": Algorithm(
        "bc",
        stochastic=False,
        offline=True,
        discrete=True,
        build=_bc,
        defaults={"actor_lr": 1e-3, "batch_size": 64, **_FINE_TUNE_EPS},
        source="behaviour cloning: cross-entropy on the dataset's action (Pomerleau 1991)",
    ),
}


def get_algorithm(name: str) -> Algorithm:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    algo = ALGORITHMS.get(name)
    if algo is None:
        raise ConfigError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    return algo


def resolve(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with every unset field taken from its algorithm's defaults (checked)."""
    return cfg.with_defaults(get_algorithm(cfg.algo).defaults)
