"""Minari datasets: where they live, their spaces, and reading one back as TED rows.

A Minari dataset ``NAMESPACE/NAME-vN`` lives at ``$MINARI_DATASETS_PATH/NAMESPACE/NAME-vN``
(default ``~/.minari/datasets``), with ``data/metadata.json`` and ``data/main_data.hdf5``
(episode groups, see :mod:`rldata.stores.backend._hdf5`). Minari keeps each observation once:
``observations`` has ``T + 1`` rows, the last one the final observation of the episode
(after a termination or truncation). So a TED row ``t`` of an episode is
``observation = observations[t]`` and ``("next", "observation") = observations[t + 1]``,
exactly, both ways.

What Minari has no place for (trajectory ids, the root flags, extras such as
``log_prob``, the env's specs and rldata's provenance) goes beside it: flat arrays in
``data/rldata_extras.hdf5`` (rows in export order) and an ``rldata`` entry in
``metadata.json``, so a round trip through Minari is lossless and Minari ignores both.

Spaces are read from their JSON (as Minari serializes them) into gymnasium space objects;
no environment is ever built from stored metadata.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata import ted
from rldata.errors import ConfigError, CorruptStoreError, StoreNotFoundError
from rldata.specs import Composite, Unbounded, spec_from_json
from rldata.stores.backend import _columns as col
from rldata.stores.format import schema as sch
from rldata.stores.interop.env_spec import ENTRY_POINT
from rldata.stores.interop.minari_spaces import (
    at,
    card_from_minari,
    data_spec,
    role_leaves,
    space_from_json,
    space_to_json,
    to_stored,
)

__all__ = ["MinariSource", "dataset_dir", "dataset_id", "datasets_root", "space_from_json"]

K = ted.TED_KEYS
PREFIX = "minari:"
DATASET_ID = re.compile(r"^(?:[\w.-]+/)*[\w.-]+-v\d+$")
EXTRAS_FILE = "rldata_extras.hdf5"
METADATA = "metadata.json"
DEFAULT_MINARI_VERSION = "0.5.4"
# keys a Minari episode holds itself (the rest are rldata extras)
_FLAGS = ("next.terminated", "next.truncated")
_DERIVED = ("next.done",)


# --- where datasets live ---------------------------------------------------------------------
def datasets_root() -> Path:
    """Minari's local datasets directory: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def dataset_id(text: str) -> str:
    """``"minari:NS/NAME-v0"`` -> ``"NS/NAME-v0"``, refusing ids Minari would not accept."""
    name = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    if not DATASET_ID.match(name) or ".." in name.split("/"):
        raise ConfigError(
            f"Minari dataset id {name!r}: expected NAMESPACE/NAME-vN (e.g. minari:rldata/pendulum-v0)"
        )
    return name


def dataset_dir(text: str) -> Path:
    """The directory of a Minari dataset id (resolved as Minari does)."""
    return datasets_root() / dataset_id(text)


# --- import ----------------------------------------------------------------------------------
class MinariSource:
    """A Minari dataset directory read as TED rows, episode after episode.

    Args:
        root: the dataset directory (``.../NAME-vN``, with ``data/`` inside).
    """

    def __init__(self, root: Path) -> None:
        from rldata.stores.backend import _hdf5  # h5py (the hdf5 extra): only for Minari's files

        self.root = root
        data = root / "data"
        try:
            self.meta = untrusted.read_json(
                data / METADATA, "Minari metadata", error=CorruptStoreError
            )
        except FileNotFoundError:
            raise StoreNotFoundError(
                f"no Minari dataset at {root} (missing data/{METADATA})"
            ) from None
        if not isinstance(self.meta, dict):
            raise CorruptStoreError(f"{data / METADATA}: expected a JSON object")
        if self.meta.get("data_format", "hdf5") != "hdf5":
            raise ConfigError(
                f"{root}: Minari data_format {self.meta.get('data_format')!r}; rldata reads 'hdf5'"
            )
        if self.meta.get("jpeg_encoding", True) and _has_images(self.meta):
            raise ConfigError(
                f"{root}: JPEG-encoded image observations are lossy; rldata imports raw arrays only"
            )
        for field in ("env_spec", "eval_env_spec"):
            _check_entry_point(self.meta.get(field), root / "data" / METADATA, field)
        self.file = data / _hdf5.MAIN_FILE
        self.episodes = int(self.meta.get("total_episodes", 0))
        self.rows = int(self.meta.get("total_steps", 0))
        self.ours: dict = self.meta.get("rldata") or {}
        self.obs_space = space_from_json(self.meta["observation_space"])
        self.act_space = space_from_json(self.meta["action_space"])
        # (TED key, HDF5 path, space) of every leaf: the one mapping specs and rows follow
        self.leaves = {
            role: role_leaves(space, role)
            for role, space in (("observation", self.obs_space), ("action", self.act_space))
        }
        self._specs: Any = None

    @property
    def env(self) -> tuple[str | None, dict]:
        if "env" in self.ours:
            return self.ours["env"]["id"], dict(self.ours["env"]["kwargs"])
        spec = self.meta.get("env_spec")
        if isinstance(spec, str):
            try:
                d = untrusted.loads_json(spec, "Minari metadata", "env_spec")
                return d.get("id"), dict(d.get("kwargs") or {})
            except ValueError:
                pass
        return None, {}

    @property
    def provenance(self) -> dict:
        """The dataset's provenance: rldata's own when it wrote the dataset, plus Minari's
        descriptive fields (author, algorithm_name, description, code_permalink, ...), its
        ``env_spec`` and the gymnasium spaces the data came from (``gym_spaces``), so an
        export writes them back."""
        prov = dict(self.ours.get("provenance") or {})
        prov.setdefault("minari_dataset_id", self.meta.get("dataset_id"))
        prov.setdefault("minari_version", self.meta.get("minari_version"))
        for field, value in card_from_minari(self.meta).items():
            prov.setdefault(field, value)
        if isinstance(self.meta.get("env_spec"), str):  # checked on open (_check_entry_point)
            prov.setdefault("env_spec", self.meta["env_spec"])  # exported again as it came
        prov.setdefault(
            "gym_spaces",
            {  # Minari's JSON strings (a Box's bounds may be infinite: not in strict JSON)
                "observation": json.dumps(space_to_json(self.obs_space)),
                "action": json.dumps(space_to_json(self.act_space)),
            },
        )
        return prov

    def specs(self) -> Any:
        """rldata's specs when it wrote the dataset; else each leaf's :func:`data_spec`, the
        spec of its values as Minari holds them (a Discrete, also inside a Dict or Tuple,
        is an int64 index)."""
        if "specs" in self.ours:
            return None if self.ours["specs"] is None else spec_from_json(self.ours["specs"])
        out = Composite({})
        for role in ("observation", "action"):
            for key, _, space in self.leaves[role]:
                out[key] = data_spec(space)
        out[("next", "reward")] = Unbounded((1,), dtype=torch.float32)
        return out

    def _spec(self, key: str) -> Any:
        if self._specs is None:
            self._specs = self.specs() or Composite({})
        return self._specs.get(tuple(key.split(".")))

    def batches(self, block_rows: int = 1 << 16) -> Iterator[TensorDict]:
        """TED rows, whole episodes per batch, in episode order."""
        from rldata.stores.backend import _hdf5

        with _hdf5.h5py.File(self.file, "r") as f:
            extras = self._extras()
            pending: list[TensorDict] = []
            count, offset = 0, 0
            for i in range(self.episodes):
                try:
                    group = _hdf5.checked(f, f"episode_{i}")
                except KeyError:
                    raise CorruptStoreError(
                        f"{self.file}: episode_{i} is missing ({self.episodes} listed)"
                    ) from None
                left = max(self.rows - offset, 0) if "total_steps" in self.meta else None
                ep = _hdf5.read_episode(group, max_rows=left)
                t = len(ep["rewards"])
                td = self._rows(ep, i, {k: v[offset : offset + t] for k, v in extras.items()})
                offset += t
                pending.append(td)
                count += t
                if count >= block_rows:
                    yield TensorDict.cat(pending)  # type: ignore[misc]
                    pending, count = [], 0
            if pending:
                yield TensorDict.cat(pending)  # type: ignore[misc]

    def _extras(self) -> dict[str, np.ndarray]:
        name = self.ours.get("extras_file")
        if not name:
            return {}
        path = self.root / "data" / Path(name).name
        from rldata.stores.backend import _hdf5

        with _hdf5.h5py.File(path, "r") as fx:
            return {k: _hdf5.checked(fx, k)[()] for k in fx if k != "episode_rows"}

    def _rows(self, ep: dict, i: int, extras: dict[str, np.ndarray]) -> TensorDict:
        t = len(ep["rewards"])
        schema = self.ours.get("schema") or {}
        where = f"{self.file}:episode_{i}"
        flat: dict[str, torch.Tensor] = {}

        def leaf(tree: Any, found: tuple) -> tuple[str, np.ndarray]:
            parts, path, space = found
            k = ".".join(parts)
            a = to_stored(at(tree, path, where), schema.get(k), self._spec(k), space)
            return k, a

        for found in self.leaves["observation"]:
            k, a = leaf(ep["observations"], found)
            name = schema.get(k, {}).get("dtype") or _dtype_name(a.dtype)
            flat[k] = col.to_torch(np.ascontiguousarray(a[:t]), name)
            flat[f"next.{k}"] = col.to_torch(np.ascontiguousarray(a[1 : t + 1]), name)
        for found in self.leaves["action"]:
            k, a = leaf(ep["actions"], found)
            name = schema.get(k, {}).get("dtype") or _dtype_name(a.dtype)
            flat[k] = col.to_torch(np.ascontiguousarray(a), name)
        reward = schema.get("next.reward", {"shape": [1], "dtype": "float32"})
        flat["next.reward"] = torch.from_numpy(
            np.ascontiguousarray(ep["rewards"])
            .astype(col.np_dtype(reward["dtype"]))
            .reshape(t, *reward["shape"])
        )
        term = torch.from_numpy(ep["terminations"].astype(bool).reshape(t, 1))
        truncations = ep["truncations"].astype(bool).reshape(t, 1)
        if t and i in set(self.ours.get("truncated_on_export") or ()):
            truncations[-1] = False  # the export ended the episode the store left open
        trunc = torch.from_numpy(truncations)
        flat["next.terminated"], flat["next.truncated"], flat["next.done"] = (
            term,
            trunc,
            term | trunc,
        )
        for k in ("done", "terminated", "truncated"):
            flat[k] = torch.zeros(t, 1, dtype=torch.bool)
        flat["collector.traj_ids"] = torch.full((t,), i, dtype=torch.int64)
        for k, a in extras.items():
            flat[k] = col.to_torch(
                np.ascontiguousarray(a), schema[k]["dtype"] if k in schema else _dtype_name(a.dtype)
            )
        return col.tree(flat, t)


_NOT_ENVS = {
    "os",
    "sys",
    "subprocess",
    "builtins",
    "shutil",
    "posix",
    "pickle",
    "marshal",
    "runpy",
    "importlib",
    "code",
    "ctypes",
    "socket",
    "pty",
    "io",
}


def _check_entry_point(spec: Any, where: Path, field: str) -> None:
    """Refuse metadata whose env entry point is not an environment class.

    rldata never makes an env from stored metadata, but it copies the spec into the
    datasets it writes, where a later tool might: ``os:system`` stops here.
    """
    if not isinstance(spec, str):
        return
    try:
        entry = json.loads(spec).get("entry_point")
    except (ValueError, AttributeError):
        raise CorruptStoreError(f"{where}: field {field!r} is not a JSON object") from None
    if entry is None or callable(entry):
        return
    module = str(entry).split(":")[0].split(".")[0]
    if not isinstance(entry, str) or not ENTRY_POINT.match(entry) or module in _NOT_ENVS:
        raise CorruptStoreError(
            f"{where}: field {field!r} names entry point {entry!r}, which is not an "
            f"environment class (module:ClassName); refused"
        )


def _dtype_name(dtype: np.dtype) -> str:
    return sch.dtype_name(torch.from_numpy(np.zeros((), dtype=dtype)).dtype)


def _has_images(meta: dict) -> bool:
    """Whether a space is one Minari JPEG-encodes (uint8 Box of at least 32x32, 0..255)."""

    def image(d: Any) -> bool:
        if not isinstance(d, dict):
            return False
        if d.get("type") in ("Dict", "Tuple"):
            subs = d.get("subspaces") or {}
            return any(image(v) for v in (subs.values() if isinstance(subs, dict) else subs))
        shape = d.get("shape") or []
        return bool(
            d.get("type") == "Box"
            and d.get("dtype") == "uint8"
            and len(shape) in (2, 3)
            and shape[0] >= 32
            and shape[1] >= 32
            and np.all(np.asarray(d.get("low")) == 0)
            and np.all(np.asarray(d.get("high")) == 255)
        )

    spaces = (meta.get("observation_space"), meta.get("action_space"))
    return any(bool(image(json.loads(s) if isinstance(s, str) else s)) for s in spaces)
