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

    Args:
        shapes: each leaf's shape without batch dims, in the order the leaves are passed;
            a 0-d leaf gives one feature.

    Examples:
        >>> cat = FlatConcat([(2,), ()])
        >>> cat(torch.zeros(5, 2), torch.ones(5)).shape
        torch.Size([5, 3])
    """

    def __init__(self, shapes: Sequence[Sequence[int]]) -> None:
        super().__init__()
        self.ranks = [len(s) for s in shapes]
        self.out_features = sum(int(torch.Size(s).numel()) for s in shapes)

    def forward(self, *leaves: torch.Tensor) -> torch.Tensor:
        parts = []
        for leaf, rank in zip(leaves, self.ranks, strict=True):
            batch = leaf.shape[: leaf.dim() - rank]
            parts.append(leaf.to(torch.float32).reshape(*batch, -1))
        return torch.cat(parts, -1)
