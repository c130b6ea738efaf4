"""A linear Q-network with set weights and a TED batch of discrete actions in any encoding."""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

OBS, N, B = 2, 3, 4
ENCODINGS = ("index", "index_col", "one_hot", "one_hot_float")


def linear_q(weight: torch.Tensor) -> TensorDictModule:
    """``Q(s, .) = W s`` (no bias): values a test can compute by hand."""
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return TensorDictModule(layer, in_keys=["observation"], out_keys=["action_value"])


def encode(index: torch.Tensor, n: int, encoding: str) -> torch.Tensor:
    if encoding == "index":
        return index
    if encoding == "index_col":
        return index.unsqueeze(-1)
    one_hot = torch.nn.functional.one_hot(index, n)
    return one_hot.float() if encoding == "one_hot_float" else one_hot


def discrete_batch(index: torch.Tensor, encoding: str, seed: int = 0, n: int = N) -> TensorDict:
    """Rows: ongoing, terminated, truncated, ongoing (``B`` = 4)."""
    g = torch.Generator().manual_seed(seed)
    b = index.shape[0]
    terminated = torch.tensor([[False], [True], [False], [False]])[:b]
    truncated = torch.tensor([[False], [False], [True], [False]])[:b]
    return TensorDict(
        {
            "observation": torch.randn(b, OBS, generator=g),
            "action": encode(index, n, encoding),
            "next": {
                "observation": torch.randn(b, OBS, generator=g),
                "reward": torch.randn(b, 1, generator=g),
                "done": terminated | truncated,
                "terminated": terminated,
                "truncated": truncated,
            },
        },
        batch_size=[b],
    )


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1.0 else abs(x) - 0.5
