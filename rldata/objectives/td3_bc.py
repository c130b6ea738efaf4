"""TD3+BC (Fujimoto & Gu 2021): TD3 for offline data with a behaviour-cloning term.

The actor minimises ``-lambda Q_1(s, mu(s)) + (mu(s) - a)^2`` with
``lambda = alpha / mean |Q_1(s, mu(s))|`` (detached), which keeps the two terms on
one scale whatever the reward scale. The critics train exactly as in TD3.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.objectives.common import inputs
from rldata.objectives.td3 import TD3Loss


class TD3BCLoss(TD3Loss):
    """The TD3+BC loss.

    Args:
        actor_network, qvalue_network, action_spec, ...: as in :class:`~rldata.objectives.TD3Loss`.
        alpha: weight of the Q term relative to behaviour cloning (2.5 in the paper).

    Returns (``forward``): TD3's entries plus detached ``lmbda`` and ``bc_loss`` on actor steps.
    """

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        *,
        alpha: float = 2.5,
        action_spec: Any = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        policy_delay: int = 2,
        loss_function: str = "l2",
        gamma: float | None = None,
    ) -> None:
        super().__init__(
            actor_network,
            qvalue_network,
            action_spec=action_spec,
            num_qvalue_nets=num_qvalue_nets,
            policy_noise=policy_noise,
            noise_clip=noise_clip,
            policy_delay=policy_delay,
            loss_function=loss_function,
            gamma=gamma,
        )
        self.alpha = float(alpha)

    def _actor_loss(self, td: TensorDictBase, state: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        new_action = self._actor(*inputs(td, self._actor.in_keys))
        q1 = self.qvalue(*self._q_in(state, new_action), detach=True)[0]
        lmbda = self.alpha / q1.abs().mean().detach().clamp_min(1e-6)
        bc_loss = (new_action - self._get(td, self._keys.action)).pow(2).mean()
        return {
            "loss_actor": -lmbda * q1.mean() + bc_loss,
            "lmbda": lmbda.detach(),
            "bc_loss": bc_loss.detach(),
        }
