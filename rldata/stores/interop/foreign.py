"""Datasets written by other tools, read as TED rows: D4RL's flat HDF5 and TorchRL's memmap storages.

Both are read from plain arrays and JSON: nothing is unpickled.

* ``d4rl:FILE.hdf5``: flat ``observations, actions, rewards, terminals, timeouts`` (and
  ``next_observations`` when present). An episode ends at a terminal or a timeout. Without
  ``next_observations`` the next observation of a row is the next row's observation, so
  the last row of each episode (whose next observation was never stored) is dropped, as
  D4RL's own ``qlearning_dataset`` does.
* A TorchRL ``LazyMemmapStorage`` directory (``storage_metadata.json`` from ``dumps`` and
  tensordict's ``meta.json`` files beside ``.memmap`` files): the first ``len`` rows, in
  storage order, keys as stored (``("collector", "traj_ids")`` must be there: ids are never
  rebuilt from flags).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tensordict import TensorDict

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError, TedFormatError
from rldata.stores.backend import _columns as col
from rldata.stores.format import schema as sch

D4RL_PREFIX = "d4rl:"
TORCHRL_META = "storage_metadata.json"


class D4RLSource:
    """A D4RL-style HDF5 file as TED rows."""

    def __init__(self, path: Path) -> None:
        from rldata.stores.backend import _hdf5

        self.path = path
        if not path.is_file():
            raise CorruptStoreError(f"{path}: no such D4RL file")
        self.data = _hdf5.read_flat(path)
        d = self.data
        ends = d["terminals"].astype(bool) | d["timeouts"].astype(bool)
        self.has_next = "next_observations" in d
        keep = np.ones(len(ends), dtype=bool)
        if not self.has_next:
            # the next observation of an episode's last row was never stored
            keep[ends] = False
            if len(keep):
                keep[-1] = False
        self.keep = np.flatnonzero(keep)
        self.ends = ends
        episode = (
            np.concatenate([[0], np.cumsum(ends)[:-1]]) if len(ends) else ends.astype(np.int64)
        )
        self.traj = episode.astype(np.int64)
        self.rows = len(self.keep)
        self.provenance = {"source": "d4rl", "file": path.name}
        self.env: tuple[str | None, dict] = (None, {})

    def specs(self) -> None:
        return None

    def batches(self, block_rows: int = 1 << 16) -> Iterator[TensorDict]:
        d, n = self.data, len(self.data["rewards"])
        for lo in range(0, self.rows, block_rows):
            idx = self.keep[lo : lo + block_rows]
            t = len(idx)
            obs = d["observations"][idx]
            nxt = (
                d["next_observations"][idx]
                if self.has_next
                else d["observations"][np.minimum(idx + 1, n - 1)]
            )
            term = d["terminals"][idx].astype(bool).reshape(t, 1)
            trunc = d["timeouts"][idx].astype(bool).reshape(t, 1) & ~term
            if not self.has_next:
                # the row before a dropped last row ends its (shortened) episode
                cut = self.ends[np.minimum(idx + 1, n - 1)] & ~self.ends[idx]
                trunc = trunc | cut.reshape(t, 1)
            flat = {
                "observation": torch.from_numpy(np.ascontiguousarray(obs)),
                "next.observation": torch.from_numpy(np.ascontiguousarray(nxt)),
                "action": torch.from_numpy(np.ascontiguousarray(d["actions"][idx])),
                "next.reward": torch.from_numpy(d["rewards"][idx].astype(np.float32).reshape(t, 1)),
                "next.terminated": torch.from_numpy(term),
                "next.truncated": torch.from_numpy(trunc),
                "next.done": torch.from_numpy(term | trunc),
                "done": torch.zeros(t, 1, dtype=torch.bool),
                "terminated": torch.zeros(t, 1, dtype=torch.bool),
                "truncated": torch.zeros(t, 1, dtype=torch.bool),
                "collector.traj_ids": torch.from_numpy(self.traj[idx]),
            }
            yield col.tree(flat, t)


class TorchRLSource:
    """A TorchRL memmap storage directory as TED rows (JSON metadata and raw files only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        meta = path / TORCHRL_META
        self.rows = -1
        if meta.is_file():
            try:
                self.rows = int(
                    untrusted.read_json(meta, "TorchRL metadata", error=CorruptStoreError)["len"]
                )
            except CorruptStoreError:
                raise
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptStoreError(
                    f"{meta}: expected JSON with an integer 'len' ({exc})"
                ) from None
        self.leaves = _memmap_leaves(path, ())
        if not self.leaves:
            raise CorruptStoreError(f"{path}: no tensordict memmap files (meta.json) found")
        size = min(shape[0] for _, shape, _ in self.leaves.values())
        self.rows = size if self.rows < 0 else min(self.rows, size)
        if "collector.traj_ids" not in self.leaves:
            raise TedFormatError(
                f"{path}: key ('collector', 'traj_ids') is missing; rldata never rebuilds "
                f"trajectory ids from done flags"
            )
        self.provenance = {"source": "torchrl", "dir": path.name}
        self.env: tuple[str | None, dict] = (None, {})

    def specs(self) -> None:
        return None

    def batches(self, block_rows: int = 1 << 16) -> Iterator[TensorDict]:
        arrays = {
            name: np.memmap(file, dtype=col.np_dtype(dtype), mode="r", shape=tuple(shape))
            for name, (file, shape, dtype) in self.leaves.items()
        }
        for lo in range(0, self.rows, block_rows):
            hi = min(self.rows, lo + block_rows)
            flat = {
                name: col.to_torch(np.array(a[lo:hi]), self.leaves[name][2])
                for name, a in arrays.items()
            }
            yield col.tree(flat, hi - lo)


def is_torchrl_dir(path: Path) -> bool:
    """Whether ``path`` looks like a TorchRL memmap storage (and is not an rldata store)."""
    return (
        path.is_dir()
        and not (path / "rldata.json").exists()
        and ((path / TORCHRL_META).is_file() or (path / "meta.json").is_file())
    )


def _memmap_leaves(root: Path, prefix: tuple[str, ...]) -> dict[str, tuple[Path, list[int], str]]:
    """Dotted key -> (file, shape, dtype) from tensordict's ``meta.json`` files."""
    path = root.joinpath(*prefix) / "meta.json"
    try:
        meta = untrusted.read_json(path, "tensordict metadata", error=CorruptStoreError)
    except FileNotFoundError:
        return {}
    out: dict[str, tuple[Path, list[int], str]] = {}
    for key, entry in meta.items():
        if not isinstance(entry, dict) or key.startswith("_"):
            continue
        if entry.get("type") == "TensorDict" or entry.get("_type", "").endswith("TensorDict'>"):
            out.update(_memmap_leaves(root, (*prefix, key)))
        elif "dtype" in entry and "shape" in entry:
            if "/" in key or key in ("", ".", ".."):
                raise CorruptStoreError(f"{path}: key {key!r} is not a plain file name")
            dtype = str(entry["dtype"]).removeprefix("torch.")
            sch.dtype_of(dtype)  # storable, or a one-line error naming it
            file = root.joinpath(*prefix) / f"{key}.memmap"
            if not file.is_file():
                raise CorruptStoreError(f"{file}: memmap file named by {path} is missing")
            out[".".join((*prefix, key))] = (file, [int(d) for d in entry["shape"]], dtype)
    # nested TensorDicts saved by newer tensordict list sub-directories only by their own meta.json
    for sub in sorted(p for p in root.joinpath(*prefix).iterdir() if p.is_dir()):
        name = ".".join((*prefix, sub.name))
        if not any(k == name or k.startswith(name + ".") for k in out):
            out.update(_memmap_leaves(root, (*prefix, sub.name)))
    return out
