"""Dict observations: the leaves a run concatenates into the flat ``"observation"`` it trains on.

The networks read one vector at ``"observation"``. An env whose observation is a Dict (or
Tuple) records one entry per leaf (``"pos"``, ``"vel"``, ``("goal", "xy")``); the run reads
every leaf in sorted key order, flattens each and concatenates them
(:class:`~rldata.modules.FlatConcat`; a ``Discrete`` leaf one-hot), as Stable-Baselines3's
``MultiInputPolicy`` does for vectors. The batches the losses see and the policies that
act get that vector at ``"observation"`` on a shallow copy, so the env's TensorDict and
the store keep the raw leaves. The exported ``policy.pt`` concatenates the same leaves in
the same order. Leaves of rank 3 or more (images) are refused: they need a CNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import FlatConcat
from rldata.specs import Categorical
from rldata.ted import TED_KEYS

OBSERVATION = "observation"
MAX_LEAF_RANK = 2  # a leaf of rank 3 or more is image-shaped: a CNN's input, not an MLP's


@dataclass(frozen=True)
class ObsLeaf:
    """One leaf of a Dict observation: its key (a tuple of names), shape and dtype.

    ``categories`` is the ``n`` of a categorical leaf (a gymnasium ``Discrete``), which is
    one-hot encoded; 0 for a leaf taken as its values.
    """

    key: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    categories: int = 0

    @property
    def name(self) -> str:
        """The key as the store's statistics name it (``"goal.xy"``)."""
        return ".".join(self.key)

    @property
    def size(self) -> int:
        """Its features in the concatenation."""
        return int(torch.Size(self.shape).numel()) * max(self.categories, 1)


def _as_tuple(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(str(k) for k in key)


def observation_leaves(spec: Any, where: str) -> tuple[ObsLeaf, ...]:
    """The leaves of a Dict observation spec in sorted key order, each checked to concatenate.

    Args:
        spec: the env's ``observation_spec`` (a Composite).
        where: what the spec belongs to, for the error (``"env 'DictLine-v0'"``).

    Raises:
        ConfigError: a leaf that is not numeric, or is image-shaped (rank > 2), in one line
            naming the key, what the trainers take and what it is.
    """
    leaves = []
    for key in sorted(spec.keys(True, True), key=_as_tuple):
        leaf = spec[key]
        dtype, shape = getattr(leaf, "dtype", None), tuple(int(d) for d in leaf.shape)
        image = len(shape) > MAX_LEAF_RANK or (len(shape) > 1 and dtype == torch.uint8)
        if not isinstance(dtype, torch.dtype) or dtype.is_complex or image:
            raise ConfigError(
                f"{where}: observation key {'.'.join(_as_tuple(key))!r} cannot be concatenated: "
                f"expected a numeric vector (rank <= {MAX_LEAF_RANK}, not an image), got shape "
                f"{shape} {dtype}"
            )
        n = int(leaf.n) if isinstance(leaf, Categorical) else 0
        leaves.append(ObsLeaf(_as_tuple(key), shape, dtype, n))
    if not leaves:
        raise ConfigError(f"{where}: the observation has no entries to train on")
    return tuple(leaves)


class FlatObservation(nn.Module):
    """Writes the concatenated leaves at ``"observation"`` (and under ``"next"``) on a copy."""

    def __init__(self, leaves: Sequence[ObsLeaf]) -> None:
        super().__init__()
        self.keys = [leaf.key for leaf in leaves]
        self.concat = FlatConcat(
            [leaf.shape for leaf in leaves], [leaf.categories for leaf in leaves]
        )

    def forward(self, td: TensorDictBase) -> torch.Tensor:
        return self.concat(*(td.get(key) for key in self.keys))

    def batch(self, td: TensorDictBase) -> TensorDictBase:
        """A batch with ``"observation"`` and ``("next", "observation")`` concatenated
        (the input is left alone)."""
        nxt = td.get("next")
        out = td.copy()
        out.set(OBSERVATION, self(td))
        out.set(TED_KEYS.nxt(OBSERVATION), self(nxt))
        return out


def leaves_from_stats(
    stats: dict[str, dict[str, Any]], leaves: Sequence[ObsLeaf], where: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, std)`` of the concatenated observation from per-key statistics (same order).

    A one-hot encoded leaf keeps its 0/1 features (mean 0, std 1): the statistics of its
    index say nothing about them.

    Raises:
        ConfigError: a key the statistics do not hold, or hold with another size.
    """
    means, stds = [], []
    for leaf in leaves:
        if leaf.categories:
            means.append(torch.zeros(leaf.size))
            stds.append(torch.ones(leaf.size))
            continue
        entry = stats.get(leaf.name)
        if entry is None:
            raise ConfigError(
                f"{where}: no statistics for observation key {leaf.name!r} to normalize with "
                f"(it holds {sorted(stats)}); train with --no-normalize-observations"
            )
        mean = torch.as_tensor(entry["mean"], dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(entry["std"], dtype=torch.float32).reshape(-1)
        if mean.numel() != leaf.size or std.numel() != leaf.size:
            raise ConfigError(
                f"{where}: statistics of observation key {leaf.name!r} have {mean.numel()} "
                f"values, expected {leaf.size}"
            )
        means.append(mean)
        stds.append(std)
    return torch.cat(means), torch.cat(stds)
