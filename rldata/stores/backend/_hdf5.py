"""HDF5 files in Minari's episode layout and D4RL's flat layout: the bytes, not the metadata.

Minari keeps one group per episode in ``main_data.hdf5``::

    episode_<i>/observations    [T + 1, *obs]  (a group of such datasets for Dict spaces,
                                               nested; a Tuple's entries are _index_<i>)
    episode_<i>/actions         [T, *act]      (a group likewise for Dict / Tuple spaces)
    episode_<i>/rewards         [T]
    episode_<i>/terminations    [T]   bool
    episode_<i>/truncations     [T]   bool
    episode_<i>/infos           (optional group)

Writing many small episodes is dominated by h5py's per-dataset Python overhead, so the
writer creates datasets through h5py's low-level API with cached types and dataspaces,
and names the memory type of each write (about 4x faster than h5py's high-level calls;
what remains, ~0.35 ms an episode of 5 datasets and 2 attributes, is HDF5's own). :func:`read_flat` reads D4RL's flat arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError, MissingDependencyError

try:
    import h5py
    from h5py import h5a, h5d, h5g, h5s, h5t
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "HDF5 files (Minari, D4RL) need 'h5py'; install it with pip install 'rldata[hdf5]'"
    ) from exc

MAIN_FILE = "main_data.hdf5"
Tree = np.ndarray | dict[str, "Tree"]
"""An episode's observations or actions: an array, or (nested) groups of arrays."""
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


class EpisodeWriter:
    """Writes ``episode_<i>`` groups into an open HDF5 file, fast."""

    def __init__(self, file: h5py.File) -> None:
        self.file = file
        self._types: dict[tuple, tuple] = {}

    def _put(self, gid, name: str, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        key = (a.shape, a.dtype.str)
        made = self._types.get(key)
        if made is None:
            made = self._types[key] = (
                h5t.py_create(a.dtype, logical=True),
                h5s.create_simple(a.shape),
            )
        dset = h5d.create(gid, name.encode(), made[0], made[1])
        if a.size:  # the memory type given: h5py would build it again per write (~35% of it)
            dset.write(h5s.ALL, h5s.ALL, a, made[0])

    def _tree(self, gid, name: str, value: Tree) -> None:
        """An array, or a group of (nested) arrays for a Dict or Tuple space."""
        if isinstance(value, dict):
            sub = h5g.create(gid, name.encode())
            for key, a in value.items():
                self._tree(sub, key, a)
        else:
            self._put(gid, name, value)

    def episode(
        self,
        i: int,
        observations: Tree,
        actions: Tree,
        rewards: np.ndarray,
        terminations: np.ndarray,
        truncations: np.ndarray,
    ) -> None:
        """One episode; ``observations`` has ``T + 1`` rows (nested dicts for Dict and Tuple
        spaces, a Tuple's entries named ``_index_<i>`` as Minari names them)."""
        gid = h5g.create(self.file.id, f"episode_{i}".encode())
        self._tree(gid, "observations", observations)
        self._tree(gid, "actions", actions)
        self._put(gid, "rewards", rewards)
        self._put(gid, "terminations", terminations)
        self._put(gid, "truncations", truncations)
        self._attr(gid, "id", i)
        self._attr(gid, "total_steps", len(rewards))

    def _attr(self, gid, name: str, value: int) -> None:
        """An int64 scalar attribute (as Minari writes ``id`` and ``total_steps``), low-level."""
        a = np.asarray(value, dtype=np.int64)
        made = self._types.get(("attr", a.dtype.str))
        if made is None:
            made = self._types[("attr", a.dtype.str)] = (
                h5t.py_create(a.dtype),
                h5s.create(h5s.SCALAR),
            )
        h5a.create(gid, name.encode(), made[0], made[1]).write(a, made[0])


def write_rows(dset: h5py.Dataset, start: int, rows: np.ndarray) -> None:
    """Write ``rows`` at rows ``[start, start + len(rows))`` of ``dset`` through the low-level
    API, naming the memory type."""
    rows = np.ascontiguousarray(rows)
    if not len(rows):
        return
    space = dset.id.get_space()
    count = (len(rows), *dset.shape[1:])
    space.select_hyperslab((start, *[0] * (len(count) - 1)), count)
    mtype = h5t.py_create(rows.dtype, logical=True)
    dset.id.write(h5s.create_simple(count), space, rows, mtype)


def checked(parent: h5py.Group, name: str):
    """``parent[name]``, refused unless it is this file's own data: HDF5 can make a name an
    external link, a dataset stored in another file, or a virtual view of other files, and
    a shared dataset must never read whatever lies on the machine that opens it.

    Raises:
        KeyError: no such member.
        CorruptStoreError: a link to another file, external storage, a virtual dataset, or
            a non-numeric dtype (object, string, reference).
    """
    where = f"{parent.file.filename}:{parent.name.rstrip('/')}/{name}"
    link = parent.get(name, getlink=True)
    if link is None:
        raise KeyError(name)
    if not isinstance(link, h5py.HardLink):
        kind = "an external link" if isinstance(link, h5py.ExternalLink) else "a soft link"
        raise CorruptStoreError(f"{where} is {kind} to other data; refused")
    node = parent[name]
    if isinstance(node, h5py.Dataset):
        if node.is_virtual:
            raise CorruptStoreError(f"{where} is a virtual dataset mapping other files; refused")
        if node.external:
            raise CorruptStoreError(f"{where} uses external storage in other files; refused")
        if node.dtype.kind not in "biuf":
            raise CorruptStoreError(f"{where}: dtype {node.dtype} is not numeric; refused")
    elif isinstance(node, h5py.Group):
        for child in node:
            checked(node, child)
    return node


def _check_declared(group: h5py.Group, max_rows: int | None) -> None:
    """Refuse an episode whose datasets declare more rows or bytes than allowed, before any
    of them is read: a small file can declare (and compress) billions of rows."""
    where = f"{group.file.filename}:{group.name}"
    rewards = checked(group, "rewards")
    t = int(rewards.shape[0]) if rewards.shape else 0
    if max_rows is not None and t > max_rows:
        raise CorruptStoreError(
            f"{where}/rewards declares {t} steps; the metadata leaves {max_rows}; refused"
        )
    total = 0
    datasets: list[tuple[str, h5py.Dataset]] = []
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        datasets += _datasets(checked(group, name), name)
    for name, d in datasets:
        rows = int(d.shape[0]) if d.shape else 0
        want = t + 1 if name.startswith("observations") else t
        if rows != want:
            raise CorruptStoreError(f"{where}/{name}: expected {want} rows, declares {rows}")
        total += int(d.size) * d.dtype.itemsize
    untrusted.check_budget(total, where, "this episode", error=CorruptStoreError)


def _datasets(node, name: str) -> list[tuple[str, h5py.Dataset]]:
    """Every dataset under ``node`` (itself when it is one), with its path."""
    if isinstance(node, h5py.Dataset):
        return [(name, node)]
    if not isinstance(node, h5py.Group):
        return []
    return [pair for k, v in node.items() for pair in _datasets(v, f"{name}/{k}")]


def _read_tree(node) -> Tree:
    """A dataset's values, or a group's (nested) as a dict of them."""
    if isinstance(node, h5py.Group):
        return {k: _read_tree(v) for k, v in node.items()}
    return node[()]


def read_episode(group: h5py.Group, max_rows: int | None = None) -> dict:
    """One ``episode_<i>`` group as numpy arrays (observations as an array or a dict).

    Declared row counts (at most ``max_rows`` steps) and sizes are checked before reading.
    """
    try:
        _check_declared(group, max_rows)
        observations = _read_tree(checked(group, "observations"))
        out = {
            "observations": observations,
            "actions": _read_tree(checked(group, "actions")),
            "rewards": checked(group, "rewards")[()],
            "terminations": checked(group, "terminations")[()],
            "truncations": checked(group, "truncations")[()],
        }
    except KeyError as exc:
        raise CorruptStoreError(f"{group.file.filename}:{group.name}: missing {exc}") from None
    return out


def read_flat(path: Path) -> dict[str, np.ndarray]:
    """D4RL's flat arrays (``observations, actions, rewards, terminals, timeouts`` and,
    when present, ``next_observations``) from one HDF5 file."""
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise CorruptStoreError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        missing = [k for k in D4RL_KEYS if k not in f]
        if missing:
            raise CorruptStoreError(
                f"{path}: a D4RL file needs datasets {list(D4RL_KEYS)}; missing {missing}"
            )
        out = {k: checked(f, k)[()] for k in D4RL_KEYS}
        if "next_observations" in f:
            out["next_observations"] = checked(f, "next_observations")[()]
    n = len(out["rewards"])
    for k, a in out.items():
        if len(a) != n:
            raise CorruptStoreError(f"{path}: dataset {k!r} has {len(a)} rows, rewards has {n}")
    return out
