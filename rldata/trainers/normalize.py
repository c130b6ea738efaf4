"""Observation normalization from a store's recorded statistics (TD3+BC, IQL, CQL).

TD3+BC (Fujimoto & Gu 2021, section 5), IQL's reference code and CORL's CQL normalize
states with the dataset's mean and std; the policy then sees normalized states at
evaluation too.
The statistics come from the store (``store.stats()``, recorded at commit time), not
from a pass over the data when training starts; :func:`store_stats` is the one place
that falls back to computing the same dict from the rows for stores written before
statistics were recorded.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from rldata.ted import TED_KEYS
from rldata.trainers.observations import FlatObservation

EPS = 1e-3  # TD3+BC's reference code adds 1e-3 to the std


def store_stats(store: Any) -> dict[str, dict[str, Any]]:
    """``{flat_key: {"count", "mean", "std", "min", "max"}}`` per flattened feature.

    Uses ``store.stats()`` when the store records statistics; otherwise computes the same
    dict from the committed float rows (chunked, so memory stays bounded).
    """
    recorded = getattr(store, "stats", None)
    if callable(recorded):
        return recorded()
    n = len(store)
    sums: dict[str, list[torch.Tensor]] = {}
    chunk = 65_536
    for start in range(0, n, chunk):
        rows = store.get(torch.arange(start, min(n, start + chunk)))
        for key, value in rows.items(True, True):
            if not value.is_floating_point():
                continue
            flat = value.reshape(value.shape[0], -1).double()
            name = key if isinstance(key, str) else ".".join(key)
            acc = sums.setdefault(
                name,
                [torch.zeros(flat.shape[1], dtype=torch.float64)] * 2
                + [torch.full((flat.shape[1],), float("inf"), dtype=torch.float64)]
                + [torch.full((flat.shape[1],), -float("inf"), dtype=torch.float64)],
            )
            acc[0] = acc[0] + flat.sum(0)
            acc[1] = acc[1] + flat.pow(2).sum(0)
            acc[2] = torch.minimum(acc[2], flat.amin(0))
            acc[3] = torch.maximum(acc[3], flat.amax(0))
    out = {}
    for name, (s, s2, lo, hi) in sums.items():
        mean = s / max(n, 1)
        std = (s2 / max(n, 1) - mean.pow(2)).clamp_min(0).sqrt()
        out[name] = {
            "count": n,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "min": lo.tolist(),
            "max": hi.tolist(),
        }
    return out


class ObservationNorm(nn.Module):
    """``(obs - mean) / (std + 1e-3)`` on ``observation`` and ``("next", "observation")``.

    Applied to sampled batches before the loss, and in front of the policy that acts
    (:class:`NormalizedPolicy`), so the networks only ever see normalized states.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32) + EPS)

    @classmethod
    def from_stats(cls, stats: dict[str, dict[str, Any]], key: str = "observation"):
        entry = stats[key]
        return cls(torch.tensor(entry["mean"]), torch.tensor(entry["std"]))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        return (obs - mean) / std

    def batch(self, td: TensorDictBase) -> TensorDictBase:
        """A batch with both observations normalized (the input is left alone)."""
        obs, nxt = TED_KEYS.observation, TED_KEYS.nxt(TED_KEYS.observation)
        out = td.copy()
        out.set(obs, self(td.get(obs)))
        out.set(nxt, self(td.get(nxt)))
        return out


class NormalizedPolicy(nn.Module):
    """Run ``policy`` on the observation it trained on; write its action into the env's TensorDict.

    ``flat`` first concatenates a Dict observation's leaves into ``"observation"``
    (:class:`~rldata.trainers.observations.FlatObservation`), then ``norm`` normalizes it;
    either may be ``None``. The TensorDict handed back keeps the raw observation (what a
    store should record).
    """

    def __init__(
        self,
        policy: nn.Module,
        norm: ObservationNorm | None,
        flat: FlatObservation | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.norm = norm
        self.flat = flat

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        obs = TED_KEYS.observation
        view = td.copy()
        x = self.flat(td) if self.flat is not None else td.get(obs)
        view.set(obs, self.norm(x) if self.norm is not None else x)
        out = self.policy(view)
        for key in out.keys(True, True):
            if key != obs and key not in ("next",):
                td.set(key, out.get(key))
        return td
