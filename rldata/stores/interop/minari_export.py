"""Minari export: a store written into Minari's layout, with what Minari has no place for beside it.

The layout and the round trip are described in :mod:`rldata.stores.interop.minari_io`
(which reads a dataset back as TED rows); this module writes ``data/main_data.hdf5``,
``data/rldata_extras.hdf5`` and ``data/metadata.json``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rldata import ted
from rldata.env_ids import env_id_problem
from rldata.errors import ConfigError, CorruptStoreError
from rldata.stores.backend import _columns as col
from rldata.stores.format import schema as sch
from rldata.stores.interop.env_spec import env_spec_json
from rldata.stores.interop.minari_io import (
    _DERIVED,
    _FLAGS,
    DEFAULT_MINARI_VERSION,
    EXTRAS_FILE,
    METADATA,
    K,
    _check_entry_point,
    dataset_id,
    datasets_root,
)
from rldata.stores.interop.minari_spaces import (
    card_to_minari,
    native_spaces,
    space_to_json,
    tree_of,
)


# --- export ----------------------------------------------------------------------------------
def obs_keys(schema: dict[str, dict]) -> list[str]:
    """Observation keys: root keys stored again under ``next`` (not flags, action, reward)."""
    reserved = {*(ted.key_name(k) for k in K.flags), ted.key_name(K.action)}
    return [
        k
        for k in schema
        if not k.startswith(("next.", "collector.")) and k not in reserved and f"next.{k}" in schema
    ]


def episode_order(store: Any) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the store's rows grouped by episode (time order) and each episode's length."""
    seg = store.segments()
    if seg.batch_size[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ids = seg["traj_id"].numpy()
    start, length = seg["start"].numpy(), seg["length"].numpy()
    # episodes in order of their first segment; segments of one episode stay in write order
    rank_of: dict[int, int] = {}
    for t in ids.tolist():
        rank_of.setdefault(t, len(rank_of))
    rank = np.array([rank_of[t] for t in ids.tolist()], dtype=np.int64)
    segs = np.argsort(rank, kind="stable")
    cap = store.capacity
    pieces = [
        (np.arange(start[s], start[s] + length[s]) % cap)
        if cap
        else np.arange(start[s], start[s] + length[s])
        for s in segs
    ]
    lengths = np.bincount(rank, weights=length, minlength=len(rank_of)).astype(np.int64)
    return np.concatenate(pieces).astype(np.int64), lengths


def export(
    store: Any,
    data_dir: Path,
    name: str,
    *,
    progress: Callable[[int], None] | None = None,
    block_rows: int = 1 << 16,
    provenance: dict | None = None,
) -> int:
    """Write ``store``'s committed rows as the Minari dataset ``name`` into ``data_dir``.

    Returns the number of episodes written. ``data_dir`` (Minari's ``.../NAME-vN/data``)
    must not exist. ``provenance`` replaces the store's in the metadata (a conversion adds
    itself there).
    """
    from rldata.stores.backend import _hdf5  # h5py (the hdf5 extra): only for Minari's files

    schema = store.schema
    if schema is None:
        raise ConfigError(f"store {store.path} holds no rows; nothing to export to Minari")
    obs = obs_keys(schema)
    act = ted.key_name(K.action)
    acts = [k for k in schema if k == act or k.startswith(act + ".")]
    if not obs or not acts:
        raise ConfigError(
            f"store {store.path}: Minari needs an observation key and 'action'; the schema has {sorted(schema)}"
        )
    prov = store.provenance if provenance is None else provenance
    spaces, paths, encoders = native_spaces(
        schema, store.specs, {"observation": obs, "action": acts}, (prov or {}).get("gym_spaces")
    )
    minari_keys = {*obs, *(f"next.{k}" for k in obs), *acts, "next.reward", *_FLAGS, *_DERIVED}
    extras = [k for k in schema if k not in minari_keys]
    order, lengths = episode_order(store)
    data_dir.mkdir(parents=True)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    # each episode's final next observation (Minari's T + 1st row): one gather of E rows
    finals = store.get(torch.from_numpy(order[bounds[1:] - 1])) if len(lengths) else None
    last = {
        k: col.to_numpy(finals.get(sch.key_tuple(f"next.{k}")), schema[k]["dtype"])
        for k in obs
        if finals is not None
    }
    direct = _direct_columns(store, [*obs, *acts, "next.reward", *_FLAGS, *extras], order)
    cut: list[int] = []  # episodes the store leaves unfinished: truncated, as Minari ends them
    with (
        _hdf5.h5py.File(data_dir / _hdf5.MAIN_FILE, "w") as f,
        _hdf5.h5py.File(data_dir / EXTRAS_FILE, "w") as fx,
    ):
        writer = _hdf5.EpisodeWriter(f)
        sinks = {
            k: fx.create_dataset(
                k, shape=(len(order), *schema[k]["shape"]), dtype=col.np_dtype(schema[k]["dtype"])
            )
            for k in extras
        }
        fx.create_dataset("episode_rows", data=lengths)
        episode, done_rows = 0, 0
        for lo in range(0, len(order), block_rows):
            hi = min(len(order), lo + block_rows)
            # extend the block to whole episodes
            e_hi = int(np.searchsorted(bounds, hi, side="left"))
            hi = int(bounds[e_hi]) if hi < len(order) else hi
            if hi <= done_rows:
                continue
            lo = done_rows
            if direct is not None:
                flat = {k: a[lo:hi] for k, a in direct.items()}
            else:
                rows = store.get(_rows_index(order[lo:hi]))
                flat = {k: col.to_numpy(v, schema[k]["dtype"]) for k, v in sch.leaves(rows).items()}
            for k in extras:  # one low-level write a key and block (h5py's slicing costs more)
                _hdf5.write_rows(sinks[k], lo, flat[k])
            while episode < len(lengths) and bounds[episode + 1] <= hi:
                a, b = int(bounds[episode]) - lo, int(bounds[episode + 1]) - lo
                o = {
                    k: encoders[k](np.concatenate([flat[k][a:b], last[k][episode : episode + 1]]))
                    for k in obs
                }
                rew = flat["next.reward"][a:b]
                term = flat["next.terminated"][a:b].reshape(b - a)
                trunc = flat["next.truncated"][a:b].reshape(b - a)
                if not (term[-1] or trunc[-1]):  # cut short by the recording's end
                    trunc = trunc.copy()
                    trunc[-1] = True
                    cut.append(episode)
                writer.episode(
                    episode,
                    tree_of(o, paths),
                    tree_of({k: encoders[k](flat[k][a:b]) for k in acts}, paths),
                    rew.reshape(b - a) if list(schema["next.reward"]["shape"]) == [1] else rew,
                    term,
                    trunc,
                )
                episode += 1
            done_rows = hi
            if progress is not None:
                progress(hi - lo)
    meta = {
        "observation_space": json.dumps(space_to_json(spaces["observation"])),
        "action_space": json.dumps(space_to_json(spaces["action"])),
        **card_to_minari(prov or {}),
    }
    _write_metadata(store, data_dir, name, obs, meta, len(lengths), len(order), prov, cut)
    return len(lengths)


def _direct_columns(store: Any, keys: list[str], order: np.ndarray) -> dict[str, np.ndarray] | None:
    """The ``keys`` of an append-only store whose rows are already in episode order, as the
    store's own columns (memmap: zero-copy views of its files, so nothing is read twice);
    None when the rows must be gathered."""
    if store.capacity is not None or not isinstance(_rows_index(order), slice) or order[0] != 0:
        return None
    out = {}
    for k in keys:
        column = store.column(k)
        if column is None or column.shape[0] < len(order):
            return None
        out[k] = col.to_numpy(column[: len(order)], store.schema[k]["dtype"])
    return out


def _rows_index(positions: np.ndarray) -> slice | torch.Tensor:
    """A slice when ``positions`` are consecutive (episodes written one after another: the
    store copies ranges instead of gathering rows), else the positions."""
    n = len(positions)
    if n and positions[-1] - positions[0] == n - 1 and bool((np.diff(positions) == 1).all()):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return torch.from_numpy(positions)


def _write_metadata(
    store: Any,
    data_dir: Path,
    name: str,
    obs: list[str],
    described: dict[str, Any],
    episodes: int,
    steps: int,
    provenance: dict | None,
    cut: list[int],
) -> None:
    """``metadata.json``: Minari's fields (``described``: the spaces and the descriptive
    fields), and rldata's section, which lists the episodes truncated only by the export."""
    meta: dict[str, Any] = {
        "dataset_id": name,
        "total_episodes": episodes,
        "total_steps": steps,
        "data_format": "hdf5",
        "jpeg_encoding": False,  # observations are stored as they are, losslessly
        **described,
        "minari_version": _minari_version(),
        "rldata": {
            "schema": store.schema,
            "specs": store.manifest_field("specs"),
            "env": {"id": store.env_id, "kwargs": store.env_kwargs},
            "provenance": provenance,
            "observation_keys": obs,
            "extras_file": EXTRAS_FILE,
            "truncated_on_export": cut,
        },
    }
    env_spec = _env_spec_json(store.env_id, store.env_kwargs, (provenance or {}).get("env_spec"))
    if env_spec is not None:
        meta["env_spec"] = env_spec
    size = sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6
    meta["dataset_size"] = round(size, 1)
    (data_dir / METADATA).write_text(json.dumps(meta))


def _env_spec_json(env_id: str | None, kwargs: dict, recorded: Any = None) -> str | None:
    """Gymnasium's EnvSpec JSON of a registered id (a registry lookup, no env is built), else
    the spec the recording kept (``recorded``: provenance ``env_spec``), for an env whose
    module is not imported here.

    The id comes from the store, so it is data, and Minari's ``recover_environment``
    makes whatever the exported spec names: only an id already registered here, without a
    module part (:func:`rldata.env_ids.env_id_problem`), is exported from the registry; a
    recorded spec only when it names this env and an environment class (``module:Class``,
    as :func:`rldata.stores.interop.minari_io._check_entry_point` admits on import). The
    id itself still travels in the ``rldata`` section.
    """
    if env_id and env_id_problem(env_id) is None:
        found = env_spec_json(env_id, kwargs)
        if found is not None:
            return found
    return _recorded_spec(recorded, env_id)


def _recorded_spec(recorded: Any, env_id: str | None) -> str | None:
    """``recorded`` when it is an EnvSpec JSON object of ``env_id`` (less a ``module:``
    part) whose entry point is an environment class; else None."""
    if not isinstance(recorded, str) or not env_id or len(recorded) > 64_000:
        return None
    try:
        spec = json.loads(recorded)
        _check_entry_point(recorded, Path("provenance"), "env_spec")
    except (ValueError, CorruptStoreError):
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("entry_point"), str):
        return None
    return recorded if spec.get("id") == env_id.rpartition(":")[2] else None


@functools.cache  # importlib.metadata scans every installed distribution
def _minari_version() -> str:
    try:
        from importlib import metadata

        return metadata.version("minari")
    except Exception:
        return DEFAULT_MINARI_VERSION


def write_namespaces(name: str) -> None:
    """Minari's ``namespace_metadata.json`` in each namespace directory above dataset ``name``
    (as ``minari.create_namespace`` leaves them), where missing."""
    parts = dataset_id(name).split("/")[:-1]
    for i in range(1, len(parts) + 1):
        path = datasets_root().joinpath(*parts[:i], "namespace_metadata.json")
        if not path.exists():
            path.write_text("{}")
