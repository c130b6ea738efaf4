"""DQN (Mnih et al. 2015) with the double-DQN target (van Hasselt et al. 2016).

The Q-network maps a state to one value per action, ``Q(s, .)`` ``[B, n]``. The loss
regresses the value of the dataset action on the one-step target

``y = r + gamma (1 - terminated) Q'(s', argmax_a Q(s', a))``

where ``Q'`` is the target network: the online network picks the next action and the
target network values it (double DQN; with ``double_dqn=False``, ``max_a Q'(s', a)`` as in
the 2015 paper and Stable-Baselines3). The regression is the Huber loss (``smooth_l1``), as
in both papers and SB3. The target moves only through an explicit updater: a
:class:`~rldata.objectives.HardUpdate` every ``N`` updates (the paper) or a
:class:`~rldata.objectives.SoftUpdate`.

Actions in the batch may be indices (``[B]`` / ``[B, 1]``) or one-hot rows (``[B, n]``):
:func:`~rldata.objectives.common.action_indices` reads both.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictSequential

from rldata.errors import ConfigError
from rldata.modules.qvalue import QValueModule
from rldata.objectives.common import LossModule, TensorFn, action_indices, distance_loss, inputs
from rldata.ted import NestedKey


def value_part(network: TensorDictModuleBase) -> TensorDictModuleBase:
    """The network writing ``action_value``: a Q-value actor's first stage, or ``network``."""
    if isinstance(network, TensorDictSequential):
        stages = list(network.module)
        if stages and isinstance(stages[-1], QValueModule):
            head = stages[:-1]
            if len(head) != 1:
                raise ConfigError(
                    "the Q-value actor must be (value network, QValueModule); got "
                    f"{len(head)} stages before the QValueModule"
                )
            return cast(TensorDictModuleBase, head[0])
    return network


class DQNLoss(LossModule):
    """The (double) DQN loss.

    Args:
        value_network: ``observation -> action_value`` ``[*, n]`` (a TensorDictModule wrapping
            an MLP), or a Q-value actor ``TensorDictSequential(value_network, QValueModule)``.
        double_dqn: the online network picks the next action, the target values it.
        loss_function: ``"smooth_l1"`` (Huber, the paper's) or ``"l2"``.
        gamma: discount.

    Returns (``forward``): ``loss_qvalue`` and detached ``pred_value``, ``target_value``,
    ``td_error``.

    Examples:
        >>> loss = DQNLoss(value_net)                                       # doctest: +SKIP
        >>> updater = HardUpdate(loss, value_network_update_interval=1000)  # doctest: +SKIP
    """

    @dataclasses.dataclass(frozen=True)
    class Keys(LossModule.Keys):
        action_value: NestedKey = "action_value"

    _keys: Keys

    value_network: TensorDictModuleBase
    target_value_network: TensorDictModuleBase

    def __init__(
        self,
        value_network: TensorDictModuleBase,
        *,
        double_dqn: bool = True,
        loss_function: str = "smooth_l1",
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma, loss_function=loss_function)
        self.value_network = value_part(value_network)
        self._make_target("value_network")
        self.double_dqn = bool(double_dqn)
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        self._q = TensorFn(self.value_network, self._keys.action_value)
        self._target_q = TensorFn(self.target_value_network, self._keys.action_value)

    def _target(self, td: TensorDictBase) -> torch.Tensor:
        """``r + gamma (1 - terminated) Q'(s', a')``, ``a'`` the online (double) or target argmax."""
        with torch.no_grad():
            next_obs = inputs(td, self._q.in_keys, nxt=True)
            next_q_target = self._target_q(*next_obs)  # [B, n]
            picker = self._q(*next_obs) if self.double_dqn else next_q_target
            next_action = picker.argmax(-1, keepdim=True)
            next_value = next_q_target.gather(-1, next_action)  # [B, 1]
            reward, live = self._reward_and_live(td, next_value)
            return reward + live * next_value

    def _values(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``Q(s, .)`` ``[B, n]``, ``Q(s, a_data)`` ``[B, 1]`` and the target ``[B, 1]``."""
        q_all = self._q(*inputs(td, self._q.in_keys))
        action = action_indices(
            self._get(td, self._keys.action), q_all.shape[-1], self._keys.action
        )
        q_data = q_all.gather(-1, action.unsqueeze(-1))
        return q_all, q_data, self._target(td)

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        _, q, target = self._values(td)
        loss_qvalue = distance_loss(q, target, self.loss_function).mean()
        q_d = q.detach()
        return self._out(
            loss_qvalue=loss_qvalue,
            pred_value=q_d.mean(),
            target_value=target.mean(),
            td_error=(q_d - target).abs().mean(),
        )
