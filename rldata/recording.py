"""The compositions the CLI calls: record a collector into a store, collect a dataset from an env id.

Collectors never touch the disk and stores never run environments; this module joins
them. :func:`record` pulls TED batches from a collector (or an environment it wraps in
one), appends them to a store and commits every ``commit_every`` frames and on exit, so a
crash loses at most the frames since the last commit. :func:`collect` builds everything
from plain values (env id, backend name, policy path) after checking all of them, so a
bad input fails before anything is written.

Examples:
    >>> import rldata
    >>> from rldata.envs import GymEnv
    >>> summary = rldata.record(GymEnv("Pendulum-v1"), "datasets/pendulum", frames=10_000)  # doctest: +SKIP
    >>> summary.episodes                                                                     # doctest: +SKIP
    50
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tensordict import TensorDictBase

from rldata import __version__
from rldata import sharing as _sharing
from rldata import stores as _stores
from rldata.collectors import MultiSyncDataCollector, RayCollector, SyncDataCollector
from rldata.collectors.inputs import as_env, as_policy, describe_policy
from rldata.collectors.policies import load_policy
from rldata.errors import ConfigError, UnknownBackendError
from rldata.stores.backend import _sharded as _shards
from rldata.stores.format import manifest as _manifest
from rldata.stores.format.lock import WriterLock
from rldata.stores.format.schema import check_key
from rldata.stores.interop.described import described as _described
from rldata.stores.interop.minari_spaces import gym_spaces
from rldata.stores.location.destination import (
    check_destination,
    check_local,
    recording_store,
    shown,
    staged_replacement,
)
from rldata.ted import TED_KEYS

DEFAULT_COMMIT_EVERY = 10_000
DEFAULT_FRAMES_PER_BATCH = 1000
MANIFEST = "rldata.json"


# --- progress -------------------------------------------------------------------------------


@dataclass
class RecordStats:
    """Running figures of a recording, handed to the progress callback after each batch."""

    frames: int = 0
    target: int = 0
    episodes: int = 0
    returns_sum: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    commits: int = 0
    _open: dict[int, float] = field(default_factory=dict, repr=False)

    @property
    def mean_return(self) -> float | None:
        """Mean return of the episodes finished so far (None before the first one)."""
        return self.returns_sum / self.episodes if self.episodes else None

    @property
    def fps(self) -> float:
        return self.frames / max(time.perf_counter() - self.started, 1e-9)

    def update(self, rows: TensorDictBase) -> None:
        """Account for flat TED rows ``[N]`` (rows of one trajectory in time order)."""
        self.frames += rows.numel()
        ids = rows.get(TED_KEYS.traj_ids)
        reward = rows.get(TED_KEYS.nxt(TED_KEYS.reward)).reshape(len(ids), -1).sum(-1)
        done = rows.get(TED_KEYS.nxt(TED_KEYS.done)).reshape(-1)
        uniq, inverse = torch.unique(ids, return_inverse=True)
        sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, reward.double())
        for i, s in zip(uniq.tolist(), sums.tolist()):
            self._open[i] = self._open.get(i, 0.0) + s
        for i in ids[done].tolist():
            self.returns_sum += self._open.pop(i, 0.0)
            self.episodes += 1


@dataclass(frozen=True)
class RecordSummary:
    """What a recording did: where, how many frames and episodes, and the store's size."""

    path: str
    backend: str
    frames: int
    episodes: int
    mean_return: float | None
    store_rows: int
    first_traj_id: int
    seconds: float
    shards: tuple[str, ...] = ()
    commits: int = 0


Progress = Callable[[RecordStats], None]


# --- record -----------------------------------------------------------------------------------


def _is_collector(obj: Any) -> bool:
    return (
        hasattr(obj, "__iter__") and hasattr(obj, "frames_per_batch") and not hasattr(obj, "step")
    )


MAX_FRAMES = 2**48
"""The most transitions one recording asks for: 2**48 rows of even one byte are 256 TiB, so
a larger count is a typo (``--frames 2**70`` would otherwise record until the disk fills)."""


def _frames(frames: int) -> int:
    return _frames_named("frames", frames)


def record(
    collector_or_env: Any,
    store_or_path: Any,
    *,
    frames: int,
    policy: Any = None,
    commit_every: int | None = DEFAULT_COMMIT_EVERY,
    backend: str = "memmap",
    resume: bool = False,
    force: bool = False,
    frames_per_batch: int | None = None,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    provenance: dict | None = None,
    progress: Progress | None = None,
    specs: Any = None,
    seed: int | None = None,
    author: str | list[str] | None = None,
    description: str | None = None,
    license: str | None = None,
    code_link: str | None = None,
) -> RecordSummary:
    """Record ``frames`` transitions from a collector (or env) into a store.

    Trajectory ids are shifted by the store's ``next_traj_id()`` so they continue the
    ids already stored (0 for a new store). The store is committed every
    ``commit_every`` frames and when recording ends, also on an exception.

    Args:
        collector_or_env: a collector, or an environment to wrap in a
            :class:`SyncDataCollector` running ``policy``: a gymnasium env
            (``gym.make(...)``), an env id (``"Pendulum-v1"``) or an rldata env (``GymEnv``).
        store_or_path: an open writable store, or a path to create (or resume).
        frames: transitions to record (exactly; the last batch may cut episodes short).
        policy: the policy for an environment: None / ``"random"`` (random actions), a
            callable ``observation -> action``, a TensorDict policy (``TensorDictModule``),
            or a policy checkpoint / training run directory (as ``collect --policy RUN``).
        commit_every: frames between commits (None: only at the end).
        backend: store backend when creating from a path.
        resume: append to an existing store at the path.
        force: replace an existing store at the path.
        frames_per_batch: collector batch size when wrapping an env.
        env_id / env_kwargs / provenance: recorded in a new store's manifest (default:
            the env's id and kwargs; the provenance always holds env id, policy and seed).
        progress: called with :class:`RecordStats` after each batch.
        specs: the env's specs for a new store's manifest (default: the env's, or the
            collector's env's; a multi-process collector has none in this process).
        seed: seeds the collector (default: the seed it was given, else a fresh one, so
            the envs' resets are reproducible from the recorded provenance).
        author / description / license / code_link: the dataset's descriptive metadata,
            kept in a new store's provenance under Minari's names (``author`` a sorted
            list, ``code_permalink``), shown by ``rldata info`` and the report and written
            into a Minari export.

    Raises:
        ConfigError: bad ``frames`` / ``commit_every``, or metadata over its bound
            (:mod:`rldata.stores.interop.described`).
        InputTypeError: an env or policy of a type none of the forms above.
        StoreExistsError: the path holds a store and neither ``resume`` nor ``force``.
    """
    frames = _frames(frames)
    if commit_every is not None:
        _frames_named("commit_every", commit_every)
    meta = _described(author=author, description=description, license=license, code_link=code_link)
    owns_store = isinstance(store_or_path, (str, os.PathLike))
    if meta and (resume or not owns_store):
        raise ConfigError(
            "author/description/license/code_link describe a new store: give a new path "
            "(not an open store, nor resume=True)"
        )
    if owns_store:  # fail before building anything
        check_destination(os.fspath(store_or_path), resume=resume, force=force, backend=backend)
    owns_collector = not _is_collector(collector_or_env)
    if not owns_collector and policy is not None:
        raise ConfigError(
            "policy= is for recording an env; a collector already runs its own policy"
        )
    if owns_collector:
        env, found_id, found_kwargs = as_env(collector_or_env)
        net = as_policy(policy, env)
        fpb = frames_per_batch or _batch_size_for(frames, int(torch.Size(env.batch_size).numel()))
        collector = SyncDataCollector(env, net, frames_per_batch=fpb)
    else:
        collector = collector_or_env
        env = getattr(collector, "env", None)
        policy = getattr(collector, "_source_policy", getattr(collector, "policy", None))
        found_id = getattr(env, "env_id", None)
        found_kwargs = dict(getattr(env, "gym_kwargs", None) or {})
    specs = specs if specs is not None else _env_specs(env)
    if owns_store and specs is not None:  # a key no store can name fails before one is made
        for key in specs.keys(include_nested=True, leaves_only=True):
            check_key(key)
    env_id = env_id or found_id
    env_kwargs = env_kwargs if env_kwargs is not None else dict(found_kwargs or {})
    seed = _seed_collector(collector, seed, draw=owns_store)
    if owns_store:
        provenance = {**_provenance(provenance, env_id, env_kwargs, policy, seed), **meta}
    try:
        if not owns_store:
            return _record_into(collector, store_or_path, frames, commit_every, progress)
        with recording_store(
            os.fspath(store_or_path),
            backend=backend,
            resume=resume,
            force=force,
            specs=specs,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=provenance,
        ) as store:
            summary = _record_into(collector, store, frames, commit_every, progress)
        return dataclasses.replace(summary, path=shown(store_or_path))
    finally:
        if owns_collector:
            collector.shutdown()


def _seed_collector(collector: Any, seed: int | None, draw: bool) -> int | None:
    """Seed ``collector`` with ``seed``, else keep its own seed, else (``draw``: a new
    store's provenance names one) draw one; return the seed in use."""
    if seed is None:
        seed = getattr(collector, "seed", None)
        if seed is not None or not draw or not hasattr(collector, "set_seed"):
            return seed
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    collector.set_seed(int(seed))
    return int(seed)


def _provenance(
    given: dict | None, env_id: str | None, env_kwargs: dict, policy: Any, seed: int | None
) -> dict[str, Any]:
    """``given`` with env id, kwargs, policy, seed, versions and the env's gymnasium spec
    (for a Minari export) filled where it has none."""
    import gymnasium

    found = {
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "policy": describe_policy(policy),
        "seed": seed,
        "gymnasium_version": gymnasium.__version__,
        "rldata_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "created_by": "rldata.record",
        "env_spec": _env_spec(env_id, env_kwargs) if env_id else None,
    }
    out = dict(given or {})
    for key, value in found.items():
        if out.get(key) is None:
            out[key] = value
    return out


MAX_NUM_ENVS = 4096
MAX_WORKERS = 256
"""Upper bounds that catch a typo before it forks thousands of processes or envs."""


def _frames_named(name: str, value: int, limit: int = MAX_FRAMES) -> int:
    """``value`` if it is an integer in ``[1, limit]``, else one line naming ``name``, the
    range and the value given."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        top = f"2**{limit.bit_length() - 1}" if limit == MAX_FRAMES else str(limit)
        raise ConfigError(f"{name} must be an integer in [1, {top}], got {shown}")
    return value


def _batch_size_for(frames: int, rows: int) -> int:
    """A collector batch: at most ``DEFAULT_FRAMES_PER_BATCH``, a multiple of ``rows`` envs."""
    steps = max(1, min(DEFAULT_FRAMES_PER_BATCH, frames) // rows)
    return steps * rows


class _StoreWriter:
    """Appends and commits in the collecting thread, in pieces that end on ``commit_every``.

    Writing inline is faster than a background writer thread here: the store's own work
    is small, and a second Python thread pays for every hand-over of the GIL (measured:
    1.11x the time of collecting alone inline, 1.41x-1.47x with a writer thread).
    """

    def __init__(self, store: Any, commit_every: int | None) -> None:
        self.store = store
        self.commit_every = commit_every
        self.commits = 0
        self._since_commit = 0

    def put(self, rows: TensorDictBase) -> None:
        offset, n, every = 0, rows.numel(), self.commit_every
        while offset < n:
            room = n - offset if every is None else min(n - offset, every - self._since_commit)
            self.store.append(rows[offset : offset + room])
            offset += room
            self._since_commit += room
            if every is not None and self._since_commit >= every:
                self.store.commit()
                self.commits += 1
                self._since_commit = 0

    def finish(self) -> None:
        """Commit what is not committed yet."""
        if self._since_commit:
            self.store.commit()
            self.commits += 1


def _record_into(
    collector: Any,
    store: Any,
    frames: int,
    commit_every: int | None,
    progress: Progress | None,
    base: int | None = None,
) -> RecordSummary:
    """The recording loop; ``base`` (default ``store.next_traj_id()``) shifts the collector's ids."""
    base = int(store.next_traj_id()) if base is None else int(base)
    stats = RecordStats(target=frames)
    start = time.perf_counter()
    writer = _StoreWriter(store, commit_every)
    try:
        iterator = iter(collector)
        while stats.frames < frames:
            rows = next(iterator).reshape(-1)  # env-major: each trajectory stays in time order
            rows = rows[: frames - stats.frames]  # the last batch may cut trajectories short
            if base:
                rows.set(TED_KEYS.traj_ids, rows.get(TED_KEYS.traj_ids) + base)
            writer.put(rows)
            stats.update(rows)
            if progress is not None:
                progress(stats)
    finally:
        writer.finish()  # also on an exception or Ctrl-C: what was collected is committed
    stats.commits = writer.commits
    if progress is not None:
        progress(stats)
    return RecordSummary(
        path=str(store.path),
        backend=str(store.backend),
        frames=stats.frames,
        episodes=stats.episodes,
        mean_return=stats.mean_return,
        store_rows=len(store),
        first_traj_id=base,
        seconds=time.perf_counter() - start,
        commits=stats.commits,
    )


# --- stores: create, resume, force ---------------------------------------------------------


def writable_backends() -> list[str]:
    """Backends a recording can write (the registry's names, minus the sharded view)."""
    return [b for b in _stores.backends() if b != _shards.BACKEND]


def _check_backend(backend: str) -> None:
    names = writable_backends()
    if backend not in names:
        raise UnknownBackendError(f"unknown backend {backend!r}; choose one of {names}")


def _env_specs(env: Any) -> Any:
    """The env's per-env specs as one Composite (observation, action, reward, done), or None."""
    if env is None or not hasattr(env, "observation_spec"):
        return None
    from rldata.collectors.policies import _unbatched
    from rldata.specs import Composite

    nb = len(env.batch_size)
    out = Composite({})
    for key in env.observation_spec.keys(True, True):
        out[key] = _unbatched(env.observation_spec[key], nb)
    out["action"] = _unbatched(env.action_spec, nb)
    out[("next", "reward")] = _unbatched(env.reward_spec, nb)
    return out


# --- collect: the CLI's composition ----------------------------------------------------------


@dataclass(frozen=True)
class EnvFactory:
    """A picklable ``() -> GymEnv`` for worker processes and Ray actors (``from_pixels``:
    a :class:`~rldata.envs.pixels.PixelEnv` observing rendered frames)."""

    env_id: str
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    num_envs: int | None = None
    from_pixels: bool = False
    pixels_only: bool = True
    one_hot_actions: bool = False  # Discrete actions as one-hot vectors instead of indices

    def __call__(self) -> Any:
        index = not self.one_hot_actions
        if self.from_pixels:
            from rldata.envs.pixels import PixelEnv

            return PixelEnv(
                self.env_id,
                pixels_only=self.pixels_only,
                num_envs=self.num_envs,
                categorical_action_encoding=index,
                **dict(self.env_kwargs),
            )
        from rldata.envs import GymEnv

        return GymEnv(
            self.env_id,
            num_envs=self.num_envs,
            categorical_action_encoding=index,
            **dict(self.env_kwargs),
        )


def _env_spec(env_id: str, env_kwargs: dict) -> str | None:
    """Gymnasium's spec JSON of the env just made (Minari's ``env_spec``), kept so a Minari
    export names the env even where its module is not imported (it is not registered
    there); the id is the user's, and its module (``mod:Id``) was imported making it."""
    from rldata.stores.interop.env_spec import env_spec_json  # no h5py: every recording

    return env_spec_json(env_id.rpartition(":")[2], env_kwargs)


def provenance_for(
    env_id: str,
    env_kwargs: dict,
    policy: str,
    seed: int | None,
    num_envs: int,
    workers: int,
    ray: bool,
) -> dict[str, Any]:
    """What a dataset records about how it was made."""
    import gymnasium

    return {
        "policy": policy,
        "seed": seed,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "num_envs": num_envs,
        "workers": workers,
        "ray": ray,
        "gymnasium_version": gymnasium.__version__,
        "rldata_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "created_by": "rldata.collect",
    }


def _versioned(env_id: str) -> str:
    """The id gymnasium runs for ``env_id``: an unregistered id without ``-vN`` makes the
    latest version, so the store records that one (``Pendulum`` was recorded as is, and a
    later release's ``Pendulum-v2`` is what a re-evaluation of the store would have built)."""
    if not isinstance(env_id, str) or ":" in env_id:
        return env_id
    import gymnasium
    from gymnasium.envs.registration import find_highest_version, parse_env_id

    if env_id in gymnasium.registry:
        return env_id
    try:
        ns, name, version = parse_env_id(env_id)
    except gymnasium.error.Error:
        return env_id  # malformed: the env's own check says so in one line
    highest = None if version is not None else find_highest_version(ns, name)
    return env_id if highest is None else f"{env_id}-v{highest}"


def collect(
    env_id: str,
    *,
    frames: int,
    out: str,
    backend: str = "memmap",
    policy: str = "random",
    num_envs: int = 1,
    workers: int = 1,
    ray: bool = False,
    seed: int | None = None,
    commit_every: int | None = DEFAULT_COMMIT_EVERY,
    resume: bool = False,
    force: bool = False,
    env_kwargs: dict | None = None,
    progress: Progress | None = None,
    from_pixels: bool = False,
    pixels_only: bool = True,
    one_hot: bool = False,
    author: str | list[str] | None = None,
    description: str | None = None,
    license: str | None = None,
    code_link: str | None = None,
) -> RecordSummary:
    """Record a dataset from a gymnasium env id: what ``rldata collect`` runs.

    Every input is checked before the store is touched (frames, backend, destination,
    env id, policy checkpoint and its specs), so a mistake writes nothing.

    Args:
        env_id: a registered gymnasium id.
        frames: transitions to record.
        out: the store path.
        backend: a name from ``rldata.stores.backends()``.
        policy: ``"random"`` or the path of a checkpoint saved by
            :func:`rldata.collectors.policies.save_policy`.
        num_envs: envs per worker (a gymnasium vector env when > 1).
        workers: worker processes (or Ray actors with ``ray``).
        ray: collect with Ray actors, each recording its own shard.
        seed: seed for envs and random actions.
        commit_every: frames between commits.
        resume: append to the store at ``out`` (trajectory ids continue).
        force: replace the store at ``out``.
        env_kwargs: passed to ``gymnasium.make``.
        progress: called with :class:`RecordStats` after each batch.
        from_pixels: observe rendered rgb frames under ``"pixels"`` (uint8 ``[H, W, 3]``,
            as TorchRL's ``GymEnv(from_pixels=True)``).
        pixels_only: with ``from_pixels``, drop the state; ``False`` keeps it under
            ``"observation"`` beside the pixels.
        one_hot: store Discrete (and MultiDiscrete) actions as one-hot vectors (TorchRL's
            ``GymEnv`` default) instead of their integer indices (int64, what Minari, d3rlpy
            and SB3 datasets hold).
        author / description / license / code_link: as :func:`record` (a new store only).
    """
    frames = _frames(frames)
    meta = _described(author=author, description=description, license=license, code_link=code_link)
    if meta and resume:
        raise ConfigError(
            "--author/--description/--license/--code-link describe a new store; --resume "
            "keeps the store's own"
        )
    if not pixels_only and not from_pixels:
        raise ConfigError("pixels_only=False (--no-pixels-only) needs from_pixels=True")
    num_envs = _frames_named("num_envs", num_envs, MAX_NUM_ENVS)
    workers = _frames_named("workers", workers, MAX_WORKERS)
    if commit_every is not None:
        _frames_named("commit_every", commit_every)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32
    ):
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    env_kwargs = dict(env_kwargs or {})
    env_id = _versioned(env_id)
    if not resume:
        _check_backend(backend)
    read = (policy,) if policy != "random" and not _sharing.is_url(policy) else ()
    check_destination(out, resume=resume, force=force, backend=backend, sources=read)
    factory = EnvFactory(
        env_id,
        tuple(sorted(env_kwargs.items())),
        num_envs if num_envs > 1 else None,
        from_pixels=bool(from_pixels),
        pixels_only=bool(pixels_only),
        one_hot_actions=bool(one_hot),
    )
    probe = factory()  # raises EnvNotFoundError for an unknown id
    try:
        net = None if policy == "random" else load_policy(policy, env=probe)
        specs = _env_specs(probe)
        spaces = gym_spaces(probe)  # the env's own structure, for a native Minari export
    finally:
        probe.close()
    prov = provenance_for(env_id, env_kwargs, policy, seed, num_envs, workers, ray)
    if spaces is not None:
        prov["gym_spaces"] = spaces
    env_spec = _env_spec(env_id, env_kwargs)
    if env_spec is not None:
        prov["env_spec"] = env_spec
    if from_pixels:
        prov.update(from_pixels=True, pixels_only=bool(pixels_only))
    prov.update(meta)
    if ray:
        return record_sharded(
            factory,
            net,
            out,
            frames=frames,
            workers=workers,
            num_envs=num_envs,
            backend=backend,
            seed=seed,
            commit_every=commit_every,
            resume=resume,
            force=force,
            specs=specs,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=prov,
            progress=progress,
        )
    rows = num_envs * workers
    fpb = _batch_size_for(frames, rows)
    if workers > 1:
        collector: Any = MultiSyncDataCollector(
            factory, net, frames_per_batch=fpb, num_workers=workers
        )
    else:
        collector = SyncDataCollector(factory, net, frames_per_batch=fpb)
    try:
        if seed is not None:
            collector.set_seed(seed)
        return record(
            collector,
            out,
            frames=frames,
            commit_every=commit_every,
            backend=backend,
            resume=resume,
            force=force,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=prov,
            progress=progress,
            specs=specs,
        )
    finally:
        collector.shutdown()


# --- sharded recording with Ray ----------------------------------------------------------------


def _record_shard(
    collector: Any, *, path: str, frames: int, base: int, commit_every: int | None
) -> dict[str, Any]:
    """Runs inside a Ray actor: record this actor's frames into its own (existing) shard."""
    store = _stores.open(path, mode="a")
    try:
        summary = _record_into(collector, store, frames, commit_every, None, base=base)
    finally:
        store.close()
    return {
        "frames": summary.frames,
        "episodes": summary.episodes,
        "mean_return": summary.mean_return,
    }


def record_sharded(
    create_env_fn: Any,
    policy: Any,
    out: str,
    *,
    frames: int,
    workers: int,
    num_envs: int = 1,
    backend: str = "memmap",
    seed: int | None = None,
    commit_every: int | None = DEFAULT_COMMIT_EVERY,
    resume: bool = False,
    force: bool = False,
    specs: Any = None,
    env_id: str | None = None,
    env_kwargs: dict | None = None,
    provenance: dict | None = None,
    progress: Progress | None = None,
    ray_init_config: dict | None = None,
) -> RecordSummary:
    """Record with ``workers`` Ray actors, each into its own shard of the store at ``out``.

    The parent manifest lists the shards (``rldata.stores.open(out)`` reads them as one).
    Trajectory ids continue the ids already in the store and never collide between
    actors. With ``resume``, actor ``w`` appends to shard ``w`` (creating it if new).
    """
    frames = _frames(frames)
    root = check_local(out, resume=resume, force=force)
    if force and (root / MANIFEST).exists():  # record beside, swap in only when done
        with staged_replacement(root) as stage:
            summary = record_sharded(
                create_env_fn,
                policy,
                str(stage),
                frames=frames,
                workers=workers,
                num_envs=num_envs,
                backend=backend,
                seed=seed,
                commit_every=commit_every,
                specs=specs,
                env_id=env_id,
                env_kwargs=env_kwargs,
                provenance=provenance,
                progress=progress,
                ray_init_config=ray_init_config,
            )
        return dataclasses.replace(summary, path=str(root))
    root.mkdir(parents=True, exist_ok=True)
    lock = WriterLock(root)
    lock.acquire()
    start = time.perf_counter()
    try:
        names = [_shards.shard_name(w) for w in range(workers)]
        base = 0
        if resume:
            m = _manifest.read(root)
            if m.get("backend") != _shards.BACKEND:
                raise ConfigError(
                    f"--ray --resume: {out!r} was not recorded with --ray (backend {m.get('backend')!r})"
                )
            old = list(m.get("shards") or [])
            for name in old:
                with _stores.open(root / name) as shard:
                    base = max(base, shard.next_traj_id())
            names = old + [n for n in names if n not in old]
        _shards.write_parent(
            root, names, specs=specs, env_id=env_id, env_kwargs=env_kwargs, provenance=provenance
        )
        for name in names:  # every shard exists before any actor starts: the parent always opens
            if not (root / name / MANIFEST).exists():
                _stores.create(
                    root / name,
                    backend=backend,
                    specs=specs,
                    env_id=env_id,
                    env_kwargs=env_kwargs,
                    provenance=provenance,
                ).close()
        shares = [frames // workers + (1 if w < frames % workers else 0) for w in range(workers)]
        fpb = _batch_size_for(max(shares), num_envs) * workers
        collector = RayCollector(
            create_env_fn,
            policy,
            frames_per_batch=fpb,
            num_workers=workers,
            ray_init_config=ray_init_config,
        )
        try:
            if seed is not None:
                collector.set_seed(seed)
            common = dict(commit_every=commit_every, base=base)
            results = collector.run_on_workers(
                _record_shard,
                per_worker=[
                    dict(common, path=str(root / names[w]), frames=shares[w])
                    for w in range(workers)
                ],
            )
        finally:
            collector.shutdown()
    finally:
        lock.release()
    stats = RecordStats(target=frames)
    stats.frames = sum(r["frames"] for r in results)
    stats.episodes = sum(r["episodes"] for r in results)
    stats.returns_sum = sum((r["mean_return"] or 0.0) * r["episodes"] for r in results)
    if progress is not None:
        progress(stats)
    with _stores.open(root) as store:
        rows = len(store)
    return RecordSummary(
        path=str(root),
        backend=backend,
        frames=stats.frames,
        episodes=stats.episodes,
        mean_return=stats.mean_return,
        store_rows=rows,
        first_traj_id=base,
        seconds=time.perf_counter() - start,
        shards=tuple(names),
    )
