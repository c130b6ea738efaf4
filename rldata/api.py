"""The public facade the CLI calls: a few lines per entry point over the module that works.

Recording (a collector joined to a store) is :mod:`rldata.recording`; the dataset card is
:mod:`rldata.sharing.card`; sharing, training and conversion are :mod:`rldata.sharing`,
:mod:`rldata.trainers` and :mod:`rldata.stores.interop.convert`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rldata import sharing as _sharing
from rldata import stores as _stores
from rldata.collectors.policy_checkpoint import load_policy
from rldata.recording import (
    DEFAULT_COMMIT_EVERY,
    EnvFactory,
    RecordStats,
    RecordSummary,
    collect,
    provenance_for,
    record,
    record_sharded,
    writable_backends,
)
from rldata.sharing.card import actions_outside_spec, dataset_card
from rldata.stores.backend.verify import env_id_finding

if TYPE_CHECKING:  # training is imported when it is called: loading a store needs none of it
    from rldata import trainers as _trainers

__all__ = [
    "DEFAULT_COMMIT_EVERY",
    "EnvFactory",
    "RecordStats",
    "RecordSummary",
    "actions_outside_spec",
    "collect",
    "content_digest",
    "convert",
    "dataset_card",
    "diff",
    "evaluate",
    "load",
    "load_policy",
    "merge",
    "open",
    "plot",
    "provenance_for",
    "pull",
    "push",
    "record",
    "record_sharded",
    "report",
    "train",
    "verify",
    "verify_warnings",
    "writable_backends",
]


# --- inspecting ----------------------------------------------------------------------------------


def verify(path: str) -> list[str]:
    """Every fault of the store at ``path`` (checksums, schema, TED invariants); [] when sound."""
    with _stores.open(_local(path), verify=False) as store:
        return _stores.verify(store)


def verify_warnings(path: str) -> list[str]:
    """What ``rldata verify`` reports without failing: an env id that gymnasium does not
    know in this process (an id naming a module is a fault of :func:`verify`)."""
    with _stores.open(_local(path), verify=False) as store:
        finding = env_id_finding(store)
    return [finding[1]] if finding is not None and finding[0] == "warning" else []


def content_digest(store: Any) -> str:
    """The store's content digest (sharded stores hash their shards' digests)."""
    return _stores.content_digest(store)


# --- sharing: stores at URLs, push / pull, diff, merge, report ---------------------------------


def _local(path: str | os.PathLike) -> str | os.PathLike:
    """A local path for ``path``: a store at a URL is pulled into the verified cache first."""
    return _sharing.open_url(os.fspath(path)) if _sharing.is_url(path) else path


def load(
    path: str | os.PathLike,
    device: Any = None,
    sampler: Any = None,
    batch_size: int | None = None,
    *,
    verify: bool = True,
    cache_bytes: int | None = None,
    stream: bool = True,
) -> Any:
    """``rldata.load``: a read-only ReplayBuffer over a store at a path or an fsspec URL.

    Args:
        path: a store directory, or a URL: a pushed memmap store streams (the first batch
            downloads only the units it needs, through a chunk cache); any other store is
            pulled whole into the verified local cache (docs/FORMAT.md, "Streaming").
        device: where samples land (default CPU).
        sampler: which rows batches read (default uniform with replacement).
        batch_size: the default for ``sample()``.
        verify: check every committed row, the episode index and the statistics files
            against their checksums before serving a row (the default); ``False`` opts out.
            A streamed store checks each unit when it is first read, whatever ``verify``.
        cache_bytes: the chunk cache's size for a streamed store (default
            ``$RLDATA_CHUNK_CACHE_BYTES``, else 2 GiB).
        stream: ``False`` pulls a URL whole into the verified cache, as ``rldata pull`` does.

    Raises:
        StoreNotFoundError: no store at ``path``.
        CorruptStoreError: ``verify`` and a committed byte fails its check.
        FormatVersionError: the store was written by a newer, incompatible rldata.
    """
    from rldata.data import load as _load

    if _sharing.is_url(path) and stream:
        from rldata.sharing.cache import open_stream

        store = open_stream(os.fspath(path), cache_bytes=cache_bytes, verify=verify)
        return _load(store, device, sampler, batch_size, verify=verify)
    return _load(_local(path), device, sampler, batch_size, verify=verify)


def open(  # noqa: A001
    path: str | os.PathLike,
    *,
    mode: str = "r",
    durable: bool = True,
    verify: bool = True,
    cache_bytes: int | None = None,
    stream: bool = True,
) -> Any:
    """``rldata.open``: a store at a path, or at a URL (``mode="r"``: streamed or pulled into
    the verified local cache, as :func:`load`; ``mode="a"`` resumes a store written by
    numbered manifests, docs/FORMAT.md section 15).

    Args:
        path: a store directory or a URL.
        mode: ``"r"`` reads committed rows; ``"a"`` resumes writing.
        durable: fsync each commit (``mode="a"`` only).
        verify: check every committed row and the episode index against their checksums
            before the store is handed out (the default); ``False`` opts out.
        cache_bytes: the chunk cache's size for a streamed store (see :func:`load`).
        stream: ``False`` pulls a URL whole into the verified cache (see :func:`load`).

    Raises:
        StoreNotFoundError, CorruptStoreError, FormatVersionError, StoreLockedError,
        ConfigError: see :func:`rldata.stores.open`.
    """
    if _sharing.is_url(path) and mode != "r":
        return _stores.open(path, mode=mode, durable=durable, verify=verify)
    if _sharing.is_url(path) and stream:
        from rldata.sharing.cache import open_stream

        return open_stream(os.fspath(path), cache_bytes=cache_bytes, verify=verify)
    return _stores.open(_local(path), mode=mode, durable=durable, verify=verify)


def push(src: str, url: str, *, progress: bool = False, force: bool = False) -> Any:
    """Publish the store at ``src`` to ``url`` (see :func:`rldata.sharing.push`)."""
    return _sharing.push(src, url, progress=progress, force=force)


def pull(url: str, dst: str, *, progress: bool = False, force: bool = False) -> Any:
    """Fetch the store at ``url`` into ``dst`` (see :func:`rldata.sharing.pull`)."""
    return _sharing.pull(url, dst, progress=progress, force=force)


def diff(a: str, b: str) -> Any:
    """Schema, spec and episode differences of two stores (see :func:`rldata.sharing.diff`)."""
    return _sharing.diff(a, b)


def merge(
    sources: list[str],
    out: str,
    *,
    backend: str = "memmap",
    force: bool = False,
    allow_mixed_envs: bool = False,
) -> Any:
    """Merge stores into a new one at ``out`` (see :func:`rldata.sharing.merge`); stores of
    different env ids only with ``allow_mixed_envs``."""
    return _sharing.merge(
        sources, out, backend=backend, force=force, allow_mixed_envs=allow_mixed_envs
    )


def report(path: str, out: str = "report.html", *, force: bool = False) -> str:
    """Write the dataset's self-contained HTML report page (see :func:`rldata.sharing.report`)."""
    return _sharing.report(path, out, force=force)


# --- training: rldata train | eval | plot ----------------------------------------------------


def train(
    config: _trainers.TrainConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Callable[[_trainers.TrainProgress], None] | None = None,
    **fields: Any,
) -> _trainers.TrainSummary:
    """Train an agent as ``rldata train`` does: offline from a store, online, or both.

    Args:
        config: the run; or give its fields as keywords (``algo="sac", env="Pendulum-v1",
            frames=5000``).
        out: the run directory (``metrics.csv``, ``summary.json``, ``config.json``,
            ``checkpoint/``, ``policy.pt``); None writes nothing.
        resume: continue the interrupted run in ``out``.
        force: replace the run in ``out`` and the store at ``config.store`` if they exist
            (only a provable run directory and store; swapped in when the run succeeds).
        progress: called with :class:`~rldata.trainers.TrainProgress` as the run goes.

    Every input (algorithm, env, dataset, specs, device, run directory) is checked before
    anything is written.
    """
    from rldata import trainers as _trainers

    cfg = config if config is not None else _trainers.TrainConfig(**fields)
    run_dir = os.fspath(out) if out is not None else None
    return _trainers.Trainer(cfg, run_dir, resume=resume, force=force, progress=progress).fit()


def evaluate(
    run: str | os.PathLike,
    *,
    env: str | None = None,
    episodes: int = 5,
    seed: int | None = None,
) -> dict[str, Any]:
    """Evaluate a training run's policy (``RUN/policy.pt``): deterministic, fixed seeds.

    See :func:`rldata.trainers.evaluate_run` for the arguments and the returned fields.
    """
    from rldata import trainers as _trainers

    return _trainers.evaluate_run(os.fspath(run), env=env, episodes=episodes, seed=seed)


def plot(runs: list[str], out: str | os.PathLike, *, force: bool = False) -> str:
    """Draw the runs' learning curves (evaluation return) into one image; return its path."""
    from rldata import trainers as _trainers

    return _trainers.plot_runs([os.fspath(r) for r in runs], os.fspath(out), force=force)


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    backend: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    author: str | list[str] | None = None,
    description: str | None = None,
    license: str | None = None,
    code_link: str | None = None,
) -> Any:
    """Copy a dataset between rldata backends, Minari, D4RL and TorchRL (``rldata convert``).

    See :func:`rldata.stores.interop.convert.convert` for the accepted forms of ``src`` and ``dst``.
    ``author`` / ``description`` / ``license`` / ``code_link`` replace the source's
    descriptive metadata in ``dst`` (as :func:`rldata.record` sets them).
    """
    from rldata.stores.interop.convert import convert as _convert  # h5py only when converting
    from rldata.stores.interop.described import described

    meta = described(author=author, description=description, license=license, code_link=code_link)
    return _convert(src, dst, backend=backend, progress=progress, force=force, metadata=meta)
