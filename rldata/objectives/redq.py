"""REDQ (Chen et al. 2021): SAC with a large critic ensemble and a random-subset target.

The target is ``r + gamma (1 - terminated) (min_{i in M} Q'_i(s', a') - alpha log pi)``
where ``M`` is a fresh random subset of ``sub_sample_len`` target critics each update;
only those ``M`` critics are evaluated. The actor maximises the mean of all critics.
"""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.objectives.sac import SACLoss


class REDQLoss(SACLoss):
    """The REDQ loss (``num_qvalue_nets`` = N critics, targets from ``sub_sample_len`` = M).

    Args:
        actor_network: a :class:`~rldata.modules.ProbabilisticActor`.
        qvalue_network: the critic template (see :class:`~rldata.objectives.SACLoss`).
        num_qvalue_nets: ensemble size N (default 10).
        sub_sample_len: size M of the random subset the target minimises over (default 2).
        Other arguments as in :class:`~rldata.objectives.SACLoss`.

    Returns (``forward``): as ``SACLoss``.
    """

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        *,
        num_qvalue_nets: int = 10,
        sub_sample_len: int = 2,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        loss_function: str = "l2",
        gamma: float | None = None,
    ) -> None:
        if not 1 <= sub_sample_len <= num_qvalue_nets:
            raise ConfigError(
                f"sub_sample_len must lie in [1, num_qvalue_nets={num_qvalue_nets}], got {sub_sample_len}"
            )
        super().__init__(
            actor_network,
            qvalue_network,
            num_qvalue_nets=num_qvalue_nets,
            alpha_init=alpha_init,
            fixed_alpha=fixed_alpha,
            target_entropy=target_entropy,
            loss_function=loss_function,
            gamma=gamma,
        )
        self.sub_sample_len = sub_sample_len

    def sample_subset(self) -> torch.Tensor:
        """The indices of the target critics used by this update (on the loss's device)."""
        device = self.log_alpha.device
        return torch.randperm(self.num_qvalue_nets, device=device)[: self.sub_sample_len]

    def _next_value(
        self, next_state: list[torch.Tensor], next_obs: list[torch.Tensor], alpha: torch.Tensor
    ) -> torch.Tensor:
        """``min`` over a random subset of M target critics, minus the entropy term."""
        next_action, next_log_prob = self._policy.sample(*next_obs)
        idx = self.sample_subset()
        weights = [w.index_select(0, idx) for w in self.target_qvalue.weights()]
        next_q = self.target_qvalue(*self._q_in(next_state, next_action), weights=weights).amin(0)
        return next_q - alpha * next_log_prob.unsqueeze(-1)

    def _actor_q(self, q_pi: torch.Tensor) -> torch.Tensor:
        """The actor maximises the mean of all N critics."""
        return q_pi.mean(0)
