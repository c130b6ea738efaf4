"""IQL (Kostrikov et al. 2021): offline RL without querying out-of-data actions.

- ``loss_value``: expectile regression of ``V(s)`` on ``min_i Q'_i(s, a)`` (target critics),
  weighting residuals by ``|expectile - 1(u < 0)|``.
- ``loss_qvalue``: each critic regresses on ``r + gamma (1 - terminated) V(s')``.
- ``loss_actor``: advantage-weighted regression, ``-exp(beta (Q'(s, a) - V(s))) log pi(a|s)``
  with the weight clipped at 100.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.modules.ensemble import QEnsemble
from rldata.objectives.common import (
    LossModule,
    StochasticPolicy,
    TensorFn,
    distance_loss,
    inputs,
    make_ensemble,
)
from rldata.objectives.ddpg import action_index, check_action_index

MAX_WEIGHT = 100.0


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``|expectile - 1(diff < 0)| * diff^2``, element-wise."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff.pow(2)


class IQLLoss(LossModule):
    """The IQL loss.

    Args:
        actor_network: a :class:`~rldata.modules.ProbabilisticActor` (its log-prob of the
            dataset actions is weighted by the advantage).
        qvalue_network: ``[observation, action] -> state_action_value`` wrapping an MLP.
        value_network: ``observation -> state_value`` (e.g. ``ValueOperator(MLP(...))``).
        num_qvalue_nets: number of critics.
        expectile: tau of the expectile regression (0.7 in the paper for locomotion).
        temperature: beta, the inverse temperature of the advantage weights.
        loss_function: ``"l2"`` or ``"smooth_l1"`` for the critics.
        gamma: discount.
    """

    target_qvalue: QEnsemble

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        value_network: TensorDictModuleBase,
        *,
        num_qvalue_nets: int = 2,
        expectile: float = 0.7,
        temperature: float = 3.0,
        loss_function: str = "l2",
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma, loss_function=loss_function)
        if not 0.0 < expectile < 1.0:
            raise ConfigError(f"expectile must lie in (0, 1), got {expectile}")
        self.actor_network = actor_network
        self.value_network = value_network
        self.qvalue_network_template = [qvalue_network]
        self.qvalue = make_ensemble(qvalue_network, num_qvalue_nets)
        self._make_target("qvalue")
        self.expectile, self.temperature = float(expectile), float(temperature)
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        qnet = self.qvalue_network_template[0]
        self._a_idx = action_index(qnet, self._keys.action)
        self._state_keys = [k for k in qnet.in_keys if k != self._keys.action]
        self._policy = StochasticPolicy(self.actor_network, self._keys.action)
        self._value = TensorFn(self.value_network)

    def _q_in(self, state: list[torch.Tensor], action: torch.Tensor) -> list[torch.Tensor]:
        out = list(state)
        out.insert(self._a_idx, action)
        return out

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        if self._a_idx < 0:
            check_action_index(-1, self.qvalue_network_template[0], self._keys.action)
        state = inputs(td, self._state_keys)
        action = self._get(td, self._keys.action)

        with torch.no_grad():
            target_q = self.target_qvalue(*self._q_in(state, action)).amin(0)  # [B, 1]
            next_v = self._value(*inputs(td, self._value.in_keys, nxt=True))
            reward, live = self._reward_and_live(td, next_v)
            target = reward + live * next_v

        v = self._value(*inputs(td, self._value.in_keys))
        loss_value = expectile_loss(target_q - v, self.expectile).mean()

        q = self.qvalue(*self._q_in(state, action))
        loss_qvalue = distance_loss(q, target, self.loss_function).mean((1, 2)).sum()

        advantage = (target_q - v.detach()).squeeze(-1)
        weight = torch.exp(self.temperature * advantage).clamp(max=MAX_WEIGHT)
        log_prob = self._policy.log_prob(action, *inputs(td, self._policy.in_keys))
        loss_actor = -(weight * log_prob).mean()

        return self._out(
            loss_actor=loss_actor,
            loss_qvalue=loss_qvalue,
            loss_value=loss_value,
            pred_value=q.detach().mean(),
            state_value=v.detach().mean(),
            advantage=advantage.mean(),
        )
