"""Training from stores: the offline and online loops, their configs, algorithms and runs.

``Trainer(TrainConfig(...), out=RUN).fit()`` is what ``rldata train`` runs; the registry
(:data:`ALGORITHMS`) builds the networks, loss and optimizer of each algorithm with
defaults known to work.
"""

from __future__ import annotations

from rldata.trainers.algorithms import ALGORITHMS, Agent, Algorithm, get_algorithm, resolve
from rldata.trainers.checkpoint import read_json
from rldata.trainers.config import TrainConfig
from rldata.trainers.device import BatchStream, resolve_device
from rldata.trainers.evaluation import EvalResult, evaluate_policy
from rldata.trainers.normalize import ObservationNorm, store_stats
from rldata.trainers.plots import plot_runs
from rldata.trainers.run import TrainProgress, TrainSummary
from rldata.trainers.run_eval import evaluate_run
from rldata.trainers.trainer import Trainer, check_resume_flags

__all__ = [
    "check_resume_flags",
    "ALGORITHMS",
    "Agent",
    "Algorithm",
    "BatchStream",
    "EvalResult",
    "ObservationNorm",
    "TrainConfig",
    "TrainProgress",
    "TrainSummary",
    "Trainer",
    "evaluate_policy",
    "evaluate_run",
    "get_algorithm",
    "plot_runs",
    "read_json",
    "resolve",
    "resolve_device",
    "store_stats",
]
