"""Behaviour cloning for discrete actions: the cross-entropy of the dataset's action.

The policy network maps a state to one logit per action; the loss is

``loss_bc = E_(s, a) [ -log softmax(logits(s))_a ]``

and the greedy policy acts by ``argmax`` (a :class:`~rldata.modules.QValueModule` reading the
logits). No target network: nothing to update between steps.
"""

from __future__ import annotations

import dataclasses

from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch.nn import functional as F

from rldata.objectives.common import LossModule, TensorFn, action_indices, inputs
from rldata.objectives.dqn import value_part
from rldata.ted import NestedKey


class DiscreteBCLoss(LossModule):
    """Cross-entropy behaviour cloning.

    Args:
        actor_network: ``observation -> logits`` ``[*, n]`` (a TensorDictModule), or a
            ``TensorDictSequential(logits_network, QValueModule)`` actor.

    Returns (``forward``): ``loss_bc`` and detached ``accuracy`` (share of rows whose argmax is
    the dataset action).
    """

    @dataclasses.dataclass(frozen=True)
    class Keys(LossModule.Keys):
        logits: NestedKey = "action_value"

    _keys: Keys

    def __init__(self, actor_network: TensorDictModuleBase) -> None:
        super().__init__()
        self.actor_network = value_part(actor_network)
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        self._logits = TensorFn(self.actor_network, self._keys.logits)

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        logits = self._logits(*inputs(td, self._logits.in_keys))
        action = action_indices(
            self._get(td, self._keys.action), logits.shape[-1], self._keys.action
        )
        loss_bc = F.cross_entropy(logits, action)
        accuracy = (logits.detach().argmax(-1) == action).to(logits.dtype).mean()
        return self._out(loss_bc=loss_bc, accuracy=accuracy)
