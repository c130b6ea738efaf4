"""Everything a run needs, checked before anything is written.

:func:`check_inputs` opens the dataset, builds the evaluation env and compares their
specs, resolves the device and the run directory, and raises one clear
:class:`~rldata.errors.RldataError` for the first bad input. Only then does the trainer
create a directory, a store or a model, so a mistake leaves nothing behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rldata import _untrusted as untrusted
from rldata import stores
from rldata.env_ids import trusted_env_id
from rldata.envs import GymEnv
from rldata.errors import ConfigError, DestinationOverlapError, SpecError, StoreExistsError
from rldata.specs import Bounded, Categorical, Composite, OneHot
from rldata.stores.location.destination import (
    check_destination,
    inspect_destination,
    refuse_overlap,
)
from rldata.stores.location.places import is_url
from rldata.stores.location.provable import RUN_MARKER
from rldata.trainers.algorithms import Algorithm, get_algorithm
from rldata.trainers.checkpoint import CHECKPOINT_DIR
from rldata.trainers.config import TrainConfig
from rldata.trainers.device import resolve_device
from rldata.trainers.networks import EnvSpecs
from rldata.trainers.observations import ObsLeaf, observation_leaves


@dataclass
class Inputs:
    """The checked inputs of a run (open handles: close with :meth:`close`)."""

    algo: Algorithm
    device: torch.device
    specs: EnvSpecs
    eval_env_id: str
    eval_env: Any
    dataset: Any | None  # an open read-only store

    def close(self) -> None:
        self.eval_env.close()
        if self.dataset is not None:
            self.dataset.close()


def env_specs(env: Any, env_id: str, algo: str) -> EnvSpecs:
    """The specs the networks need, or a :class:`ConfigError` naming what does not fit.

    An env observing one flat ``"observation"`` needs it 1-D float; any other observation
    (a Dict or Tuple space) is read as its leaves concatenated in sorted key order
    (:func:`~rldata.trainers.observations.observation_leaves`).
    """
    keys = list(env.observation_spec.keys(True, True))
    leaves: tuple[ObsLeaf, ...] = ()
    if keys == ["observation"]:
        obs = env.observation_spec["observation"]
        if len(obs.shape) != 1 or not obs.dtype.is_floating_point:
            raise ConfigError(
                f"env {env_id!r}: expected a 1-D float observation, got shape "
                f"{tuple(obs.shape)} {obs.dtype}"
            )
        obs_dim = int(obs.shape[-1])
    else:
        leaves = observation_leaves(env.observation_spec, f"env {env_id!r}")
        obs_dim = sum(leaf.size for leaf in leaves)
    act = env.action_spec
    if get_algorithm(algo).discrete:
        if not isinstance(act, (OneHot, Categorical)) or len(act.shape) > 1 or act.n < 2:
            raise ConfigError(
                f"algorithm {algo!r} needs a Discrete action space (n >= 2); env {env_id!r} has "
                f"{type(act).__name__} actions of shape {tuple(act.shape)} {act.dtype}"
            )
        return EnvSpecs(obs_dim=obs_dim, action_spec=act, obs_leaves=leaves)
    if not isinstance(act, Bounded) or not act.dtype.is_floating_point or len(act.shape) != 1:
        raise ConfigError(
            f"algorithm {algo!r} needs a continuous (Box) action space; env {env_id!r} has "
            f"{type(act).__name__} actions of shape {tuple(act.shape)} {act.dtype}"
        )
    return EnvSpecs(obs_dim=obs_dim, action_spec=act, obs_leaves=leaves)


def record_specs(env: Any) -> Composite:
    """The env's specs in the form a store records (observation, action, next reward)."""
    out = Composite({})
    for key in env.observation_spec.keys(True, True):
        out[key] = env.observation_spec[key]
    out["action"] = env.action_spec
    out[("next", "reward")] = env.reward_spec
    return out


def _check_match(store: Any, specs: EnvSpecs, env_id: str, path: str) -> None:
    recorded = store.specs
    if recorded is None:
        return
    act = recorded.get("action", None)
    for leaf in specs.obs_leaves:  # a Dict observation: each leaf as the env observes it
        got = recorded.get(leaf.key, None)
        if got is None or tuple(got.shape) != leaf.shape:
            raise SpecError(
                f"dataset {path!r} has observation key {leaf.name!r} of shape "
                f"{None if got is None else tuple(got.shape)} but eval env {env_id!r} observes "
                f"{leaf.shape}"
            )
    obs = recorded.get("observation", None)
    if not specs.obs_leaves and (obs is None or tuple(obs.shape) != (specs.obs_dim,)):
        got = None if obs is None else tuple(obs.shape)
        raise SpecError(
            f"dataset {path!r} has observation shape {got} but eval env {env_id!r} observes "
            f"({specs.obs_dim},)"
        )
    want = specs.action_spec
    if specs.discrete:
        # one-hot or index encoding alike (the losses read both): the number of actions decides
        if not isinstance(act, (OneHot, Categorical)) or act.n != specs.n_actions:
            raise SpecError(
                f"dataset {path!r} has action spec {act!r} but eval env {env_id!r} has "
                f"{specs.n_actions} discrete actions"
            )
        return
    want = specs.box
    if (
        act is None
        or tuple(act.shape) != tuple(want.shape)
        or not isinstance(act, Bounded)
        or not torch.allclose(act.low.float(), want.low.float())
        or not torch.allclose(act.high.float(), want.high.float())
    ):
        raise SpecError(
            f"dataset {path!r} has action spec {act!r} but eval env {env_id!r} acts in {want!r}"
        )


RUN_FILES = frozenset(
    {"config.json", "metrics.csv", "summary.json", CHECKPOINT_DIR, "policy.pt", "tensorboard"}
    | {RUN_MARKER}
)
"""Every name a run directory may hold: ``--force`` replaces only such a directory."""


def check_run_dir(
    out: Path, resume: bool, force: bool = False, sources: tuple[str, ...] = ()
) -> None:
    """A new run needs a fresh (or empty) directory; a resumed one needs its checkpoint.

    ``force`` allows a non-empty ``out`` only if it is provably a run directory rldata made
    (:func:`rldata.stores.location.destination.inspect_destination` with ``kind="run"``: its marker,
    and nothing but what a run writes, under ``checkpoint/`` too). ``out`` may not
    overlap ``sources`` (the dataset).
    """
    if resume and force:
        raise ConfigError("--resume and --force exclude each other: continue, or replace?")
    refuse_overlap(out, sources, what="train --out")
    if resume:
        if not (out / CHECKPOINT_DIR).is_dir():
            raise ConfigError(f"--resume: no checkpoint in {str(out)!r} to resume from")
        return
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        inspect_destination(out, kind="run", sources=sources, force=force, what="train --out")
        return
    if not force:
        raise StoreExistsError(
            f"run directory {str(out)!r} exists and is not empty; give a new --out, --resume "
            f"or --force"
        )
    # only a run rldata made, holding only what a run writes (checkpoint/ included)
    inspect_destination(out, kind="run", sources=sources, force=force, what="train --out")


def _check_apart(store: Path, out: Path) -> None:
    """The store --store records into and the run directory --out may not be one folder or
    one inside the other: the run writes config.json before the store is made, and each
    would hold the other's files (a failed run left its run files behind)."""
    a, b = Path(os.path.realpath(store)), Path(os.path.realpath(out))
    if a == b or a in b.parents or b in a.parents:
        raise DestinationOverlapError(
            f"--store {str(store)!r} and --out {str(out)!r} overlap (one is, or lies inside, "
            "the other); give them separate paths (nothing was written)"
        )


def check_inputs(cfg: TrainConfig, out: Path | None, resume: bool, force: bool = False) -> Inputs:
    """Check every input of ``cfg``; open the dataset and the evaluation env.

    Raises:
        ConfigError, SpecError, StoreNotFoundError, EnvNotFoundError, StoreExistsError:
            the first bad input, in one line.
    """
    algo = get_algorithm(cfg.algo)
    if cfg.env is None and cfg.dataset is None:
        raise ConfigError("give --env ENV_ID (online), --dataset PATH (offline), or both")
    if cfg.env is not None and cfg.frames is None:
        raise ConfigError("online training needs --frames N (environment steps)")
    if cfg.env is None and cfg.steps is None:
        raise ConfigError("offline training needs --steps N (gradient updates)")
    device = resolve_device(cfg.device)
    if cfg.replay_device not in (None, "cpu"):
        resolve_device(cfg.replay_device)
    data = tuple(str(p) for p in (cfg.dataset,) if p is not None and not is_url(str(p)))
    if out is not None:
        check_run_dir(out, resume, force, sources=data)
    if out is not None and cfg.store is not None and not is_url(str(cfg.store)):
        _check_apart(Path(cfg.store), out)
    if cfg.store is not None and not resume:
        if not force and os.path.exists(cfg.store):
            raise StoreExistsError(
                f"--store {cfg.store!r} exists; give a new path, --resume or --force"
            )
        # only a provable store is replaced (--force), and only when the run succeeds
        check_destination(cfg.store, resume=False, force=force, backend=cfg.backend, sources=data)
    dataset = stores.open(cfg.dataset) if cfg.dataset is not None else None
    try:
        if dataset is not None and len(dataset) == 0:  # nothing to learn from or normalize by
            raise ConfigError(
                f"--dataset {cfg.dataset!r} holds 0 rows; offline training needs recorded "
                f"transitions (rldata collect ENV_ID --out DIR), or train online with --env alone"
            )
        recorded = getattr(dataset, "env_id", None) if dataset is not None else None
        # an empty --env or --eval-env is a malformed id (GymEnv says so), not an absent one
        given = next((e for e in (cfg.eval_env, cfg.env) if e is not None), None)
        env_id = given if given is not None else recorded
        if env_id is None:
            raise ConfigError(f"dataset {cfg.dataset!r} records no env id: give --eval-env ENV_ID")
        if given is None:  # read from the store: data, never code to import
            env_id = trusted_env_id(
                recorded,
                source=f"the manifest of {cfg.dataset}",
                option="--eval-env",
                keyword="eval_env",
            )
        env = GymEnv(env_id)
        try:
            specs = env_specs(env, env_id, cfg.algo)
            if dataset is not None:
                _check_match(dataset, specs, env_id, str(cfg.dataset))
            if cfg.env is not None and cfg.env != env_id:
                probe = GymEnv(cfg.env)
                try:
                    other = env_specs(probe, cfg.env, cfg.algo)
                finally:
                    probe.close()
                if other != specs and (
                    other.obs_dim != specs.obs_dim
                    or other.obs_leaves != specs.obs_leaves
                    or other.action_spec.shape != specs.action_spec.shape
                ):
                    raise SpecError(
                        f"--env {cfg.env!r} and --eval-env {env_id!r} have different specs"
                    )
        except BaseException:
            env.close()
            raise
    except BaseException:
        if dataset is not None:
            dataset.close()
        raise
    try:
        check_memory(cfg, specs)
    except ConfigError:
        env.close()
        if dataset is not None:
            dataset.close()
        raise
    return Inputs(algo, device, specs, env_id, env, dataset)


def check_memory(cfg: TrainConfig, specs: EnvSpecs) -> None:
    """Refuse a batch or an in-memory replay whose rows would exceed the memory budget
    (``rldata._untrusted.MEMORY_BUDGET``), before anything is allocated."""
    act = int(torch.Size(specs.action_spec.shape).numel())
    row = 4 * (2 * specs.obs_dim + act + 1) + 16  # obs, next obs, action, reward; flags, ids
    sizes = {"batch_size": cfg.batch_size}
    if cfg.env is not None and cfg.store is None:
        sizes["buffer_size"] = cfg.buffer_size
    budget = untrusted.ram_budget()
    for name, rows in sizes.items():
        if rows is not None and rows * row > budget:
            raise ConfigError(
                f"{name} {rows:,}: {rows:,} rows of {row} bytes need "
                f"{rows * row / 2**30:.1f} GiB, over the {budget / 2**30:.1f} GiB memory "
                "budget (this machine's RAM, or RLDATA_MEMORY_BUDGET); lower it or record "
                "into --store"
            )
