"""One flat input from a Dict observation: each leaf flattened, then concatenated.

What Stable-Baselines3's ``MultiInputPolicy`` does for vector observations, so an MLP reads
a Dict (or Tuple) observation without knowing its keys. The key order is fixed by whoever
builds the module (the trainers sort the keys), and both the networks that train and the
policy checkpoint that acts use this one module, so they cannot disagree on the layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FlatConcat(nn.Module):
    """``cat([leaf.flatten(event dims) for leaf in leaves], -1)`` as float32.

    A categorical leaf (a gymnasium ``Discrete`` observed as its index) is one-hot encoded
    first, as Stable-Baselines3 preprocesses one, so the network sees no false order
    between categories.

    Args:
        shapes: each leaf's shape without batch dims, in the order the leaves are passed;
            a 0-d leaf gives one feature.
        categories: per leaf, its number of categories to one-hot encode, or 0 to take its
            values as they are (default: 0 for every leaf).

    Examples:
        >>> cat = FlatConcat([(2,), ()], categories=[0, 3])
        >>> cat(torch.zeros(5, 2), torch.ones(5, dtype=torch.int64)).shape
        torch.Size([5, 5])
    """

    def __init__(
        self, shapes: Sequence[Sequence[int]], categories: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.ranks = [len(s) for s in shapes]
        self.categories = [int(n) for n in categories] if categories else [0] * len(shapes)
        self.out_features = sum(
            int(torch.Size(s).numel()) * max(n, 1) for s, n in zip(shapes, self.categories)
        )

    def forward(self, *leaves: torch.Tensor) -> torch.Tensor:
        parts = []
        for leaf, rank, n in zip(leaves, self.ranks, self.categories, strict=True):
            batch = leaf.shape[: leaf.dim() - rank]
            if n:
                leaf = nn.functional.one_hot(leaf.long(), n)
            parts.append(leaf.to(torch.float32).reshape(*batch, -1))
        return torch.cat(parts, -1)
