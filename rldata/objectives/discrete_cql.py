"""Discrete CQL (Kumar et al. 2020, section 3.2 / appendix F): DQN plus a conservative term.

With few actions the logsumexp over actions is exact, so no action is sampled:

``loss_cql = alpha * E_s[ logsumexp_a Q(s, a) - Q(s, a_data) ]``

pushes down every action's value and pushes up the dataset's (CQL(H) with a uniform
regularizer). It is added to the (double) DQN TD loss, ``loss_qvalue``. The QR-DQN
variant of the paper's Atari runs is not implemented; this is the plain-Q form d3rlpy's
``DiscreteCQL`` uses (alpha 1.0).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.objectives.common import distance_loss
from rldata.objectives.dqn import DQNLoss


class DiscreteCQLLoss(DQNLoss):
    """The discrete CQL loss.

    Args:
        value_network, double_dqn, loss_function, gamma: as in :class:`~rldata.objectives.DQNLoss`.
        alpha: weight of the conservative term (``min_q_weight`` in the trainers' config).

    Returns (``forward``): ``loss_qvalue``, ``loss_cql`` and detached ``pred_value``,
    ``target_value``, ``td_error``, ``cql_gap`` (the unweighted term).
    """

    def __init__(
        self,
        value_network: TensorDictModuleBase,
        *,
        alpha: float = 1.0,
        double_dqn: bool = True,
        loss_function: str = "smooth_l1",
        gamma: float | None = None,
    ) -> None:
        super().__init__(
            value_network, double_dqn=double_dqn, loss_function=loss_function, gamma=gamma
        )
        if not alpha >= 0.0:
            raise ConfigError(f"DiscreteCQLLoss: alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        q_all, q, target = self._values(td)
        loss_qvalue = distance_loss(q, target, self.loss_function).mean()
        cql_gap = (torch.logsumexp(q_all, dim=-1, keepdim=True) - q).mean()
        loss_cql = self.alpha * cql_gap
        q_d = q.detach()
        return self._out(
            loss_qvalue=loss_qvalue,
            loss_cql=loss_cql,
            pred_value=q_d.mean(),
            target_value=target.mean(),
            td_error=(q_d - target).abs().mean(),
            cql_gap=cql_gap.detach(),
        )
