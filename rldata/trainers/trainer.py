"""``Trainer``: the offline loop (store -> learn) and the online loop (collect -> store -> learn).

The loops it runs::

    # offline: --dataset PATH --steps N
    for update in range(N):
        loss = agent.loss(next(batches))          # batches: store -> sampler (-> GPU)
        step(loss); updater.step()
        every eval_every updates: evaluate; checkpoint

    # online: --env ID --frames N   (offline-to-online: both, batches mix dataset and fresh rows)
    for rows in collector:                        # random actions for init_random_frames
        replay.extend(rows); noise.step(len(rows))
        for _ in range(utd * len(rows)):  step(agent.loss(replay.sample())); updater.step()
        collector.update_policy_weights_()
        every eval_every env steps: evaluate; checkpoint

A run directory gets ``config.json``, ``metrics.csv`` (and TensorBoard events when
installed), ``checkpoint/`` (resume), ``policy.pt`` (act with it) and ``summary.json``.

Examples:
    >>> cfg = TrainConfig(algo="sac", env="Pendulum-v1", frames=5_000)   # doctest: +SKIP
    >>> summary = Trainer(cfg, out="runs/sac").fit()                      # doctest: +SKIP
    >>> summary.eval_return_mean                                          # doctest: +SKIP
    -160.3
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rldata.env_ids import trusted_env_id
from rldata.errors import ConfigError
from rldata.stores.location.destination import plan_destination
from rldata.trainers import loops
from rldata.trainers.algorithms import resolve
from rldata.trainers.checkpoint import read_json
from rldata.trainers.config import TrainConfig
from rldata.trainers.run import Run, TrainProgress, TrainSummary
from rldata.trainers.setup import check_inputs


class Trainer:
    """Train one algorithm offline, online or offline-to-online, as ``config`` says.

    Args:
        config: the run (unset fields take the algorithm's defaults).
        out: the run directory (created; must be new or empty unless ``resume``);
            ``None`` trains without writing anything (no store either).
        resume: continue the interrupted run in ``out`` from its last checkpoint.
        progress: called with a :class:`TrainProgress` as the run goes.

    The constructor only stores its arguments; :meth:`fit` checks every input before
    it writes anything.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None = None,
        *,
        resume: bool = False,
        force: bool = False,
        progress: Callable[[TrainProgress], None] | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out) if out is not None else None
        self.resume = resume
        self.force = force
        self.progress = progress

    # --- entry point ------------------------------------------------------------------
    def fit(self) -> TrainSummary:
        """Run the loop to the end; return (and write) the summary."""
        cfg = self.config
        # lexists: a FIFO, device or link named config.json is refused by read_json, not skipped
        if self.resume and self.out is not None and os.path.lexists(self.out / "config.json"):
            saved = read_json(self.out / "config.json")
            _check_saved_env_ids(saved, cfg, self.out / "config.json")
            check_resume_given(saved, _set_fields(cfg), self.out)
            cfg = TrainConfig.from_dict({**saved, **_overrides(cfg)})
        cfg = resolve(cfg)
        inputs = check_inputs(cfg, self.out, self.resume, self.force)
        try:
            with _run_directory(self.out, self.force) as write_to:
                run = Run(cfg, inputs, write_to, self.resume, self.progress, self.force)
                run.run_dir = self.out
                return run.run(_loop_for(cfg))
        finally:
            inputs.close()


@contextlib.contextmanager
def _run_directory(out: Path | None, force: bool) -> Iterator[Path | None]:
    """Where the run writes: ``out``, or with ``force`` on an existing run, a sibling that
    replaces it (atomically) only when the run finishes."""
    if not (force and out is not None and out.exists() and any(out.iterdir())):
        yield out
        return
    # only a run rldata made is replaced (checkpoint/ holding only what a run writes)
    with plan_destination(out, kind="run", force=True, what="train --out") as stage:
        yield stage


def _check_saved_env_ids(saved: Any, given: TrainConfig, path: Path) -> None:
    """The env ids a run's ``config.json`` names are data: each must be registered with
    gymnasium (no module part), unless the user gives the same id again (``--env``)."""
    if not isinstance(saved, dict):
        return  # TrainConfig.from_dict names the problem
    for key, option in (("env", "--env"), ("eval_env", "--eval-env")):
        value = saved.get(key)
        if value is not None and value != getattr(given, key):
            trusted_env_id(value, source=str(path), option=option, keyword=key)


FREE_ON_RESUME = ("frames", "steps")  # a resumed run may only get a longer schedule


def check_resume_given(saved: Any, given: Mapping[str, Any], run: str | os.PathLike) -> None:
    """Refuse a field given on resume that contradicts the run's ``config.json``.

    ``given`` holds the fields the caller set (the CLI: the flags typed; the Python API:
    the fields that differ from :class:`TrainConfig`'s defaults). A value equal to the run's
    is fine; ``frames`` and ``steps`` may change (a longer schedule).

    Raises:
        ConfigError: one line naming the flag, the run's value and the given one.
    """
    if not isinstance(saved, dict):
        return  # TrainConfig.from_dict names the problem
    for key, value in given.items():
        if key in FREE_ON_RESUME or key not in saved or saved[key] == value:
            continue
        flag = "--" + key.replace("_", "-")
        raise ConfigError(
            f"{flag}: the run in {os.fspath(run)} was trained with {saved[key]!r}, given "
            f"{value!r}; --resume continues a run as it was (only --frames and --steps may "
            f"change): leave {flag} out, or train a new run"
        )


def check_resume_flags(run: str | os.PathLike, given: Mapping[str, Any]) -> None:
    """:func:`check_resume_given` against the ``config.json`` of the run directory ``run``
    (nothing to check when it has none: the run then starts afresh)."""
    path = Path(run) / "config.json"
    if os.path.lexists(path):
        check_resume_given(read_json(path), given, run)


def _set_fields(cfg: TrainConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that differ from :class:`TrainConfig`'s defaults."""
    default = TrainConfig().to_dict()
    return {k: v for k, v in cfg.to_dict().items() if v != default.get(k)}


def _overrides(cfg: TrainConfig) -> dict[str, Any]:
    """On resume, only a longer schedule may change (``--frames`` / ``--steps``)."""
    return {k: getattr(cfg, k) for k in ("frames", "steps") if getattr(cfg, k) is not None}


def _loop_for(cfg: TrainConfig) -> Callable[[Run], None]:
    """The loop a run takes: offline, online, or online with collection in a thread."""
    if cfg.env is None:
        return loops.offline
    return loops.online_async if cfg.collect_async else loops.online
