"""One training run's state: the agent, the replay, counters, loggers, checkpoints.

:class:`Run` owns every resource of a run; :mod:`rldata.trainers.loops` holds the order of
work (offline, online, online with collection in a thread) and :class:`~rldata.trainers.
trainer.Trainer` picks the loop and hands it to :meth:`Run.run`, so the run and the loops
import in one direction only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rldata import __version__, stores
from rldata.collectors.policy_checkpoint import RUN_POLICY
from rldata.data import (
    LazyTensorStorage,
    MixingBuffer,
    ReplayBuffer,
    StoreStorage,
)
from rldata.errors import ConfigError
from rldata.stores.location.destination import recording_store
from rldata.stores.location.provable import RUN_MARKER
from rldata.trainers import files
from rldata.trainers.algorithms import Agent
from rldata.trainers.checkpoint import load_checkpoint, save_checkpoint
from rldata.trainers.config import TrainConfig
from rldata.trainers.device import BatchStream
from rldata.trainers.evaluation import EvalResult, evaluate_policy
from rldata.trainers.export import export_policy
from rldata.trainers.loggers import Loggers
from rldata.trainers.normalize import NormalizedPolicy, ObservationNorm, store_stats
from rldata.trainers.observations import FlatObservation, leaves_from_stats
from rldata.trainers.setup import Inputs, record_specs

STORE_COMMIT_EVERY = 10_000


@dataclass
class TrainProgress:
    """Handed to the progress callback: where the run is and how it goes."""

    unit: str  # "frames" (online) or "updates" (offline)
    done: int
    total: int
    env_steps: int
    updates: int
    per_s: float
    last_eval: float | None
    losses: dict[str, float]


@dataclass
class TrainSummary:
    """What ``summary.json`` holds."""

    algo: str
    mode: str
    env_steps: int
    updates: int
    eval_return_mean: float
    eval_return_std: float
    eval_returns: list[float]
    wall_s: float
    run_dir: str | None
    eval_env: str
    store: str | None
    device: str
    seed: int
    evaluations: list[dict[str, float]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions() -> dict[str, str]:
    """Versions of the libraries that shaped the run (``summary.json``)."""
    import gymnasium
    import tensordict

    return {
        "rldata": __version__,
        "torch": torch.__version__,
        "tensordict": str(tensordict.__version__),
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
    }


class Run:
    """One run's state: the agent, the replay, counters, loggers."""

    def __init__(
        self,
        cfg: TrainConfig,
        inputs: Inputs,
        out: Path | None,
        resume: bool,
        progress: Callable[[TrainProgress], None] | None,
        force: bool = False,
    ) -> None:
        self.cfg, self.inputs, self.out, self.resume = cfg, inputs, out, resume
        self.run_dir = out  # what the summary names (``out`` may be a staging sibling)
        self.force = force
        self.progress = progress
        self.device = inputs.device
        self.online = cfg.env is not None
        self.env_steps = 0
        self.updates = 0
        self.wall_before = 0.0
        self.evaluations: list[dict[str, float]] = []
        self.last_out: TensorDictBase | None = None
        self.norm: ObservationNorm | None = None
        self.flat: FlatObservation | None = None
        self.blocked = {"insert_blocked_s": 0.0, "sample_blocked_s": 0.0}
        self.store: Any = None
        self.logged_at = -1  # updates at the last train row

    # --- building -------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, inputs = self.cfg, self.inputs
        threads = (
            cfg.threads if cfg.threads is not None else (1 if self.device.type == "cpu" else None)
        )
        if threads is not None:
            torch.set_num_threads(threads)
        torch.manual_seed(cfg.seed)
        self.agent: Agent = inputs.algo.build(inputs.specs, cfg)
        self.agent.loss.to(self.device)
        if self.agent.noise is not None:
            self.agent.noise.to(self.device)
        leaves = inputs.specs.obs_leaves
        self.flat = FlatObservation(leaves).to(self.device) if leaves else None
        if cfg.normalize_observations and inputs.dataset is not None:
            stats = store_stats(inputs.dataset)
            if leaves:  # per key, laid out as the concatenation
                mean, std = leaves_from_stats(stats, leaves, f"dataset {cfg.dataset!r}")
                self.norm = ObservationNorm(mean, std).to(self.device)
            else:
                self.norm = ObservationNorm.from_stats(stats).to(self.device)
        self.acting: Any = self.agent.actor
        self.exploring: Any = self.agent.explore
        if self.norm is not None or self.flat is not None:
            self.acting = NormalizedPolicy(self.agent.actor, self.norm, self.flat)
            self.exploring = NormalizedPolicy(self.agent.explore, self.norm, self.flat)
        self.params = [p for g in self.agent.optimizer.param_groups for p in g["params"]]

    def _offline_buffer(self) -> ReplayBuffer:
        return ReplayBuffer(
            storage=StoreStorage(self.inputs.dataset), batch_size=self.cfg.batch_size
        )

    def _online_buffer(self) -> ReplayBuffer:
        cfg = self.cfg
        capacity = cfg.buffer_size
        if cfg.store is not None:
            if self.resume and Path(cfg.store).exists():
                self.store = stores.open(cfg.store, mode="a")
            else:
                ring = cfg.buffer_size is not None and cfg.buffer_size < int(cfg.frames or 0)
                # --force builds the replacement beside the old store, swapped in at the end
                recording = recording_store(
                    cfg.store,
                    backend=cfg.backend,
                    force=self.force,
                    capacity=cfg.buffer_size if ring else None,
                    specs=record_specs(self.inputs.eval_env),
                    env_id=cfg.env,
                    provenance={
                        "policy": f"rldata train --algo {cfg.algo}",
                        "seed": cfg.seed,
                        "created_by": "rldata.trainers",
                        "rldata_version": __version__,
                    },
                    commit_every=STORE_COMMIT_EVERY,
                )
                self.store = self.stack.enter_context(recording)
            storage: Any = StoreStorage(self.store)
        else:
            storage = LazyTensorStorage(capacity, device=cfg.replay_device or "cpu")
        return ReplayBuffer(storage=storage, batch_size=cfg.batch_size)

    def _replay(self) -> None:
        cfg = self.cfg
        offline = self._offline_buffer() if self.inputs.dataset is not None else None
        if not self.online:
            self.replay: Any = offline
            self.writable: Any = None
        else:
            online = self._online_buffer()
            self.writable = online
            self.replay = (
                online
                if offline is None
                else MixingBuffer(offline, online, cfg.offline_ratio, cfg.batch_size)
            )
        on_gpu = str(cfg.replay_device).startswith("cuda") and self.inputs.dataset is None
        self.stream: BatchStream | None = None
        # to the GPU through pinned memory; offline on the CPU, sampling ahead in a thread
        to_gpu = self.device.type == "cuda" and not on_gpu
        if cfg.prefetch > 0 and (to_gpu or not self.online):
            self.stream = BatchStream(self.replay.sample, self.device, cfg.prefetch)

    def _batch(self) -> TensorDictBase:
        batch = self.stream.next() if self.stream is not None else self.replay.sample()
        if batch.device != self.device:
            batch = batch.to(self.device, non_blocking=True)
        if self.flat is not None:
            batch = self.flat.batch(batch)
        if self.norm is not None:
            batch = self.norm.batch(batch)
        return batch

    # --- one update -------------------------------------------------------------------------
    def update(self) -> None:
        agent, cfg = self.agent, self.cfg
        out = TensorDict({}, batch_size=[])
        # a step per stage: parameters without a gradient in a stage are left as they are
        for stage in agent.loss.stages(self._batch()):
            losses = [v for k, v in stage.items() if k.startswith("loss_")]
            total = functools.reduce(operator.add, losses)
            agent.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                stage.set("grad_norm", norm)
            agent.optimizer.step()
            out.update(stage)
        if agent.targets_due():
            agent.updater.step()
        self.updates += 1
        self.last_out = out

    def losses(self) -> dict[str, float]:
        if self.last_out is None:
            return {}
        return {
            k: float(v.detach())
            for k, v in self.last_out.items()
            if isinstance(v, torch.Tensor) and v.numel() == 1
        }

    # --- evaluation, logging, checkpoints ---------------------------------------------------
    def evaluate(self) -> EvalResult:
        result = evaluate_policy(
            self.acting, self.inputs.eval_env, self.cfg.eval_episodes, self.cfg.seed, self.device
        )
        self.evaluations.append(
            {
                "env_steps": self.env_steps,
                "updates": self.updates,
                "mean": result.mean,
                "std": result.std,
                "wall_s": round(self.wall(), 3),
            }
        )
        self.log("eval", eval_return_mean=result.mean, eval_return_std=result.std)
        return result

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def log(self, kind: str, **extra: float) -> None:
        row: dict[str, Any] = {
            "kind": kind,
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_s": round(self.wall(), 3),
        }
        if kind == "train":
            self.logged_at = self.updates
            row.update(self.losses())
            row.update(self.agent.exploration())
            if self.cfg.collect_async:
                row.update(self.blocked)
        row.update(extra)
        if self.loggers is not None:
            self.loggers.log(row)

    def checkpoint(self) -> None:
        if self.out is None:
            return
        if self.store is not None:
            self.store.commit()
        state = {
            "loss": self.agent.loss.state_dict(),
            "optimizer": self.agent.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.agent.noise is not None:
            state["noise"] = self.agent.noise.state_dict()
        meta = {
            "env_steps": self.env_steps,
            "updates": self.updates,
            "wall_s": self.wall(),
            "evaluations": self.evaluations,
            "loss_calls": int(getattr(self.agent.loss, "num_calls", 0)),
        }
        save_checkpoint(self.out, state, meta)
        self.export_policy()

    def export_policy(self) -> None:
        """``policy.pt``: the deterministic policy as an rldata policy checkpoint."""
        assert self.out is not None
        norm = None
        if self.norm is not None:
            norm = {
                "mean": self.norm.get_buffer("mean").tolist(),
                "std": self.norm.get_buffer("std").tolist(),
            }
        export_policy(
            self.agent.actor, self.inputs.specs, self.cfg.hidden, norm, self.out / RUN_POLICY
        )

    def _restore(self) -> None:
        assert self.out is not None
        state, meta = load_checkpoint(self.out)
        try:
            self._restore_from(state, meta)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            if isinstance(exc, ConfigError):
                raise
            what = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise ConfigError(
                f"checkpoint in {str(self.out)!r} does not fit this run "
                f"({type(exc).__name__}: {what}); it was altered or written by another config"
            ) from None

    def _restore_from(self, state: dict[str, Any], meta: dict[str, Any]) -> None:
        self.agent.loss.load_state_dict(state["loss"])
        self.agent.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if self.agent.noise is not None and "noise" in state:
            self.agent.noise.load_state_dict(state["noise"])
        if hasattr(self.agent.loss, "num_calls"):
            setattr(self.agent.loss, "num_calls", int(meta.get("loss_calls", 0)))  # noqa: B010
        self.env_steps = int(meta["env_steps"])
        self.updates = int(meta["updates"])
        self.wall_before = float(meta["wall_s"])
        self.evaluations = list(meta["evaluations"])

    def report(self, done: int, total: int, per_s: float) -> None:
        if self.progress is None:
            return
        last = self.evaluations[-1]["mean"] if self.evaluations else None
        self.progress(
            TrainProgress(
                unit="frames" if self.online else "updates",
                done=done,
                total=total,
                env_steps=self.env_steps,
                updates=self.updates,
                per_s=per_s,
                last_eval=last,
                losses={k: v for k, v in self.losses().items() if k.startswith("loss_")},
            )
        )

    # --- the run ------------------------------------------------------------------------------
    def run(self, loop: Callable[[Run], None]) -> TrainSummary:
        """Drive ``loop`` (one of :mod:`rldata.trainers.loops`) to the end; return the summary."""
        # holds the recording into --store (a --force replacement is swapped in only if the
        # run ends well)
        threads = torch.get_num_threads()
        try:
            with contextlib.ExitStack() as self.stack:
                return self._run(loop)
        finally:
            torch.set_num_threads(threads)

    def _run(self, loop: Callable[[Run], None]) -> TrainSummary:
        cfg = self.cfg
        self._build()
        self.loggers: Loggers | None = None
        if self.out is not None:
            with files.refusing_full_disk(self.out):
                self.out.mkdir(parents=True, exist_ok=True)
            marker = self.out / RUN_MARKER  # what lets a later --force prove it is a run
            if not marker.exists():
                files.write_text(marker, json.dumps({"format": "rldata-run", "version": 1}) + "\n")
            if self.resume:
                self._restore()
            else:
                files.write_text(self.out / "config.json", json.dumps(cfg.to_dict(), indent=1))
            self.loggers = Loggers(self.out, cfg.tensorboard)
        self._replay()
        self.started = time.perf_counter()
        try:
            loop(self)
            if not self.evaluations or self.evaluations[-1]["updates"] != self.updates:
                self.evaluate()
            if self.logged_at != self.updates:
                self.log("train")
            self.checkpoint()
        finally:
            if self.stream is not None:
                self.stream.close()
            if self.store is not None:
                self.store.close()
            if self.loggers is not None:
                self.loggers.close()
        return self._summary()

    def _summary(self) -> TrainSummary:
        cfg, last = self.cfg, self.evaluations[-1]
        mode = "offline" if not self.online else ("offline-to-online" if cfg.dataset else "online")
        summary = TrainSummary(
            algo=cfg.algo,
            mode=mode,
            env_steps=self.env_steps,
            updates=self.updates,
            eval_return_mean=float(last["mean"]),
            eval_return_std=float(last["std"]),
            eval_returns=[float(e["mean"]) for e in self.evaluations],
            wall_s=round(self.wall(), 3),
            run_dir=str(self.run_dir) if self.run_dir is not None else None,
            eval_env=self.inputs.eval_env_id,
            store=cfg.store,
            device=str(self.device),
            seed=cfg.seed,
            evaluations=self.evaluations,
            versions=versions(),
        )
        if self.out is not None:
            files.write_text(self.out / "summary.json", json.dumps(summary.to_dict(), indent=1))
        return summary
