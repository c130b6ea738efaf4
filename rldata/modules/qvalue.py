"""``QValueModule``: the greedy action from per-action values (DQN's policy)."""

from __future__ import annotations

from typing import Any, cast

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.specs import Categorical, OneHot
from rldata.ted import NestedKey

_ENCODINGS = ("one_hot", "categorical")


def _encoding(spec: Any) -> str:
    if isinstance(spec, OneHot):
        return "one_hot"
    if isinstance(spec, Categorical):
        return "categorical"
    if isinstance(spec, str) and spec in _ENCODINGS:
        return spec
    raise ConfigError(
        f"QValueModule: action_space must be a OneHot or Categorical spec or one of "
        f"{list(_ENCODINGS)}, got {spec!r}"
    )


class QValueModule(TensorDictModuleBase):
    """Read ``action_value`` ``[*, n]``; write the argmax ``action`` and its ``chosen_action_value``.

    The action is encoded as the spec says: one-hot (``OneHot``, the default for
    gymnasium ``Discrete`` spaces) or an index (``Categorical``).

    Args:
        action_space: the action spec, or ``"one_hot"`` / ``"categorical"`` (walkthrough spelling).
        spec: the same, under TorchRL's other name; give one of the two.
        action_value_key: where the per-action values are read.
        action_key: where the action is written.
        chosen_action_value_key: where the value of the chosen action is written (``[*, 1]``).
    """

    def __init__(
        self,
        action_space: Any = None,
        *,
        spec: Any = None,
        action_value_key: NestedKey = "action_value",
        action_key: NestedKey = "action",
        chosen_action_value_key: NestedKey = "chosen_action_value",
    ) -> None:
        if (action_space is None) == (spec is None):
            raise ConfigError("QValueModule: give exactly one of action_space= or spec=")
        super().__init__()
        self.spec = spec if spec is not None else action_space
        self.encoding = _encoding(self.spec)
        self.action_value_key = action_value_key
        # tensordict types the key setters as list[str | tuple[str]]; nested keys are longer tuples
        self.in_keys = cast(list[Any], [action_value_key])
        self.out_keys = cast(list[Any], [action_key, action_value_key, chosen_action_value_key])

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        values = tensordict.get(self.action_value_key)
        index = values.argmax(-1)
        chosen = values.gather(-1, index.unsqueeze(-1))
        if self.encoding == "one_hot":
            n = values.shape[-1]
            dtype = getattr(self.spec, "dtype", torch.int64)
            action = torch.nn.functional.one_hot(index, n).to(dtype)
        else:
            action = index
            shape = getattr(self.spec, "shape", torch.Size())
            if len(shape) and shape[-1] == 1:
                action = action.unsqueeze(-1)
            action = action.to(getattr(self.spec, "dtype", torch.int64))
        tensordict.set(self.out_keys[0], action)
        tensordict.set(self.out_keys[2], chosen)
        return tensordict
