"""``merge([A, B, ...], out)``: one store holding every source's rows, ids renumbered.

Sources must agree on schema and specs (else one line names the first difference, before
anything is written). Rows are appended source by source, each in its stored order, through
``rldata.stores.create``, so the output's episode index, checksums (and any statistics the
store records at commit) are computed by the store itself. Trajectory ids are renumbered
``0, 1, ...`` in order of first appearance, source after source, so no two sources' ids
collide. Sources recording different env ids are refused (one line naming each source's
env id) unless ``allow_mixed_envs``. The output's provenance lists every source (URLs
without credentials) with its content digest, env id, env kwargs, policy and seed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rldata import stores
from rldata.errors import ConfigError, SchemaMismatchError
from rldata.sharing.compare import schema_differences, spec_differences
from rldata.sharing.digest import digest_of
from rldata.sharing.source import open_source
from rldata.sharing.transfer import push
from rldata.sharing.urls import is_url, location, redact
from rldata.stores.backend.blocks import row_blocks
from rldata.stores.format import schema as sch
from rldata.stores.location.destination import inspect_destination, plan_destination

TRAJ = ("collector", "traj_ids")
COMMIT_BYTES = 64 << 20
"""Decoded bytes of rows the output takes between commits."""


@dataclass(frozen=True)
class MergeSummary:
    """What a merge wrote."""

    out: str
    sources: int
    transitions: int
    episodes: int
    content_digest: str


def merge(
    sources: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    backend: str = "memmap",
    force: bool = False,
    allow_mixed_envs: bool = False,
) -> MergeSummary:
    """Write the rows of every store in ``sources`` into a new store at ``out``.

    ``out`` may be a URL: the merge is written locally, then pushed. A local ``out`` goes
    through the destination policy (:func:`rldata.stores.location.destination.plan_destination`):
    it may not overlap a source, an existing one is replaced only with ``force`` and only
    if it is provably a store, and the merge is built in a staging sibling and renamed into
    place once it verified, so a killed merge leaves no store at ``out``.

    The merged store keeps the sources' env id (and env kwargs, policy and seed where they
    all agree); with ``allow_mixed_envs`` and sources of different envs, its env id is None
    and ``provenance["env_ids"]`` lists each source's, as does every ``merged_from`` entry.

    Raises:
        ConfigError: fewer than two sources; sources of different env ids without
            ``allow_mixed_envs`` (the message names each source's env id).
        SchemaMismatchError: the sources' schemas or specs differ (the first difference).
        StoreExistsError: ``out`` exists (without ``force``, or not provably a store).
        ConfigError: ``out`` is, lies inside, or contains a source.
        StoreNotFoundError: a source holds no store.
    """
    if len(sources) < 2:
        raise ConfigError(f"merge: expected at least two source stores, got {len(sources)}")
    if is_url(out):
        location(out)  # an unknown or refused scheme fails before any work
        with tempfile.TemporaryDirectory(prefix="rldata-merge-") as tmp:
            summary = merge(
                sources, Path(tmp) / "merged", backend=backend, allow_mixed_envs=allow_mixed_envs
            )
            push(Path(tmp) / "merged", os.fspath(out), force=force)
            return MergeSummary(redact(os.fspath(out)), *_rest(summary))
    inspect_destination(out, kind="store", sources=sources, force=force, what="merge")
    with (
        plan_destination(out, kind="store", sources=sources, force=force, what="merge") as stage,
        ExitStack() as stack,
    ):
        opened = [stack.enter_context(open_source(s)) for s in sources]
        origins = [_origin(path, s) for path, s in zip(sources, opened)]
        env_ids = [o["env_id"] for o in origins]
        if len(set(env_ids)) > 1 and not allow_mixed_envs:
            named = ", ".join(f"{o['source']} ({o['env_id']})" for o in origins)
            raise ConfigError(
                f"merge: the sources record different envs: {named}; "
                "pass allow_mixed_envs=True (--allow-mixed-envs) to merge them anyway"
            )
        _check_compatible(sources, opened)
        first = opened[0]
        provenance = {
            "env_id": _common(origins, "env_id"),
            "policy": _common(origins, "policy"),
            "seed": _common(origins, "seed"),
            "created_by": "rldata.merge",
            "merged_from": [
                dict(o, content_digest=digest_of(s), transitions=len(s), episodes=_episodes(s))
                for o, s in zip(origins, opened)
            ],
        }
        if len(set(env_ids)) > 1:
            provenance["env_ids"] = env_ids
        writer = stores.create(
            stage,
            backend=backend,
            capacity=None,
            specs=first.specs,
            env_id=_common(origins, "env_id"),
            env_kwargs=_common(origins, "env_kwargs"),
            provenance=provenance,
            allow_nonfinite=any(bool(s.manifest.get("allow_nonfinite")) for s in opened),
        )
        with writer:
            next_id = 0
            for s in opened:
                next_id = _copy_rows(s, writer, next_id)
        with stores.open(stage, verify="full") as merged:  # every row checked first
            summary = MergeSummary(
                out=os.fspath(out),
                sources=len(sources),
                transitions=len(merged),
                episodes=_episodes(merged),
                content_digest=digest_of(merged),
            )
    return summary


def _origin(path: Any, store: Any) -> dict[str, Any]:
    """Where a source's rows came from: its place, env id and kwargs, policy and seed."""
    env = store.manifest.get("env") or {}
    prov = store.manifest.get("provenance") or {}
    kwargs = env.get("kwargs")
    return {
        "source": redact(os.fspath(path)),
        "env_id": env.get("id") or prov.get("env_id"),
        "env_kwargs": kwargs if kwargs is not None else prov.get("env_kwargs"),
        "policy": prov.get("policy"),
        "seed": prov.get("seed"),
    }


def _common(origins: list[dict[str, Any]], key: str) -> Any:
    """The value every source agrees on, else None."""
    values = [o[key] for o in origins]
    return values[0] if all(v == values[0] for v in values) else None


def _rest(s: MergeSummary) -> tuple[int, int, int, str]:
    return s.sources, s.transitions, s.episodes, s.content_digest


def _episodes(store: Any) -> int:
    eps = store.episodes()
    return int(eps.batch_size[0]) if eps.batch_dims else 0


def _check_compatible(paths: Sequence[Any], opened: list[Any]) -> None:
    a = opened[0]
    for path, b in zip(paths[1:], opened[1:]):
        lines = schema_differences(a.schema, b.schema) or spec_differences(
            a.manifest.get("specs"), b.manifest.get("specs")
        )
        if lines:
            raise SchemaMismatchError(
                f"cannot merge {redact(os.fspath(path))} into {redact(os.fspath(paths[0]))}: "
                f"{lines[0]} (A: the first source, B: this one)"
            )


def _copy_rows(src: Any, writer: Any, next_id: int) -> int:
    """Append every readable row of ``src`` with renumbered ids; return the next free id.

    One pass, block by block (:func:`~rldata.stores.backend.blocks.row_blocks`): ids are
    numbered in order of first appearance as the blocks stream by, so memory is one block and
    one entry per trajectory, never a tensor of every position or a whole id column. The
    writer commits every :data:`COMMIT_BYTES` of rows, since a commit reads back the rows
    it adds."""
    renumber: dict[int, int] = {}
    width = sum(sch.row_bytes(e) for e in (src.schema or {}).values())
    every, since = max(1, COMMIT_BYTES // max(1, width)), 0
    for block in row_blocks(src):
        ids = block.rows.get(TRAJ).reshape(-1)
        uniq, first, inverse = np.unique(ids.numpy(), return_index=True, return_inverse=True)
        for j in np.argsort(first, kind="stable").tolist():  # new ids in order of appearance
            renumber.setdefault(int(uniq[j]), next_id + len(renumber))
        new = np.array([renumber[int(t)] for t in uniq.tolist()], dtype=np.int64)[inverse]
        rows = block.rows.clone(recurse=False)  # the new ids replace the entry, not its bytes
        rows.set(TRAJ, torch.from_numpy(new).to(ids.dtype).reshape(ids.shape))
        if since and since + block.n > every:  # a commit reads back the rows it adds
            writer.commit()
            since = 0
        writer.append(rows)
        since += block.n
    if since:
        writer.commit()
    return next_id + len(renumber)
