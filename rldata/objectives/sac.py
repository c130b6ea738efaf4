"""SAC (Haarnoja et al. 2018, the version with a learned temperature and no V network).

``forward`` follows the paper's update: the soft target under ``no_grad``, then
``loss_qvalue`` (every Q regresses on it), ``loss_actor`` (``alpha log pi - min Q``,
with the critics' weights held fixed) and ``loss_alpha`` (temperature toward the
target entropy), all against the same critics. With ``critic_first`` the trainer's
:meth:`stages` splits the update as Stable-Baselines3 and CleanRL do: temperature and
critics step first, then the actor climbs the critics just updated. The Q networks
form one :class:`~rldata.modules.QEnsemble`, so all of them run in one batched call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from rldata.errors import ConfigError
from rldata.modules.ensemble import QEnsemble
from rldata.objectives.common import (
    LossModule,
    StochasticPolicy,
    distance_loss,
    inputs,
    make_ensemble,
)
from rldata.objectives.ddpg import action_index, check_action_index


class SACLoss(LossModule):
    """The SAC loss with ``num_qvalue_nets`` critics and a learned (or fixed) temperature.

    Args:
        actor_network: a :class:`~rldata.modules.ProbabilisticActor` (``TanhNormal`` runs
            fastest).
        qvalue_network: ``[observation, action] -> state_action_value`` wrapping an MLP;
            the loss builds ``num_qvalue_nets`` independently initialised copies and owns them
            (``loss.qvalue``; the first copy starts from ``qvalue_network``'s weights).
        num_qvalue_nets: number of critics (the target uses their minimum).
        alpha_init: initial temperature.
        fixed_alpha: keep the temperature at ``alpha_init`` (``loss_alpha`` carries no grad).
        target_entropy: ``"auto"`` (``-action_dim``) or a number.
        loss_function: ``"l2"`` or ``"smooth_l1"``.
        gamma: discount.
        critic_first: make :meth:`stages` two steps, critics (and temperature) then actor.
        unit_box_critic: feed the critics actions mapped from the actor's ``[low, high]``
            to ``[-1, 1]``, as critics see them where the policy acts in the unit box
            (Stable-Baselines3); stored actions stay in the environment's units.

    Returns (``forward``): ``loss_actor``, ``loss_qvalue``, ``loss_alpha`` and detached
    ``alpha``, ``entropy``, ``pred_value``, ``target_value``, ``td_error``.
    """

    target_qvalue: QEnsemble
    log_alpha: torch.Tensor

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        *,
        num_qvalue_nets: int = 2,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        loss_function: str = "l2",
        gamma: float | None = None,
        critic_first: bool = False,
        unit_box_critic: bool = False,
    ) -> None:
        super().__init__(gamma=gamma, loss_function=loss_function)
        if alpha_init <= 0:
            raise ConfigError(f"alpha_init must be > 0, got {alpha_init}")
        if target_entropy != "auto" and not isinstance(target_entropy, (int, float)):
            raise ConfigError(f"target_entropy must be 'auto' or a number, got {target_entropy!r}")
        self.actor_network = actor_network
        self.qvalue_network_template = [qvalue_network]  # kept out of the module tree
        self.qvalue = make_ensemble(qvalue_network, num_qvalue_nets)
        self.num_qvalue_nets = num_qvalue_nets
        self._make_target("qvalue")
        log_alpha = torch.tensor(math.log(alpha_init))
        if fixed_alpha:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)
        self.fixed_alpha = fixed_alpha
        self.target_entropy = target_entropy
        self.critic_first = critic_first
        self.unit_box_critic = unit_box_critic
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        qnet = self.qvalue_network_template[0]
        self._a_idx = action_index(qnet, self._keys.action)
        self._state_keys = [k for k in qnet.in_keys if k != self._keys.action]
        self._policy = StochasticPolicy(self.actor_network, self._keys.action)

    # -- helpers ------------------------------------------------------------------------
    def _q_in(self, state: list[torch.Tensor], action: torch.Tensor) -> list[torch.Tensor]:
        if self.unit_box_critic:
            low = torch.as_tensor(self._policy.kwargs.get("low", -1.0), device=action.device)
            high = torch.as_tensor(self._policy.kwargs.get("high", 1.0), device=action.device)
            action = (2 * action - (high + low)) / (high - low)
        out = list(state)
        out.insert(self._a_idx, action)
        return out

    def _target_entropy(self, action: torch.Tensor) -> float:
        if self.target_entropy == "auto":
            return -float(action.shape[-1])
        return float(self.target_entropy)

    def _next_value(
        self, next_state: list[torch.Tensor], next_obs: list[torch.Tensor], alpha: torch.Tensor
    ) -> torch.Tensor:
        """Soft state value of ``s'``: ``min_i Q'_i(s', a') - alpha log pi(a'|s')``."""
        next_action, next_log_prob = self._policy.sample(*next_obs)
        next_q = self.target_qvalue(*self._q_in(next_state, next_action)).amin(0)
        return next_q - alpha * next_log_prob.unsqueeze(-1)

    def _actor_q(self, q_pi: torch.Tensor) -> torch.Tensor:
        """How the actor aggregates the critics at its own action (SAC: minimum)."""
        return q_pi.amin(0)

    def _extra_losses(self, td: TensorDictBase, q: torch.Tensor) -> dict[str, torch.Tensor]:
        """More ``loss_*`` terms from the critics' ``q = Q(s, a)`` (CQL adds its penalty)."""
        return {}

    # -- the update ---------------------------------------------------------------------
    def forward(self, td: TensorDictBase) -> TensorDict:
        critic = self._critic_part(td)
        return self._out(**critic.losses, **self._actor_part(critic))

    def stages(self, td: TensorDictBase) -> Iterator[TensorDict]:
        """One joint loss, or with ``critic_first`` the critics' then the actor's."""
        if not self.critic_first:
            yield self(td)
            return
        critic = self._critic_part(td)
        yield self._out(**critic.losses)
        yield self._out(**self._actor_part(critic))

    def _critic_part(self, td: TensorDictBase) -> _CriticPart:
        """The critics' and temperature's losses, and what the actor's loss reuses."""
        td = self._flat(td)
        if self._a_idx < 0:
            check_action_index(-1, self.qvalue_network_template[0], self._keys.action)
        obs = inputs(td, self._policy.in_keys)
        state = inputs(td, self._state_keys)
        action = self._get(td, self._keys.action)
        alpha = self.log_alpha.detach().exp()

        with torch.no_grad():
            next_v = self._next_value(
                inputs(td, self._state_keys, nxt=True),
                inputs(td, self._policy.in_keys, nxt=True),
                alpha,
            )
            reward, live = self._reward_and_live(td, next_v)
            target = reward + live * next_v

        q = self.qvalue(*self._q_in(state, action))  # [N, B, 1]
        loss_qvalue = distance_loss(q, target, self.loss_function).mean((1, 2)).sum()

        new_action, log_prob = self._policy.sample(*obs)
        target_entropy = self._target_entropy(action)
        loss_alpha = -(self.log_alpha * (log_prob.detach() + target_entropy)).mean()

        q_d = q.detach()
        losses = {
            **self._extra_losses(td, q),
            "loss_qvalue": loss_qvalue,
            "loss_alpha": loss_alpha,
            "alpha": alpha,
            "entropy": -log_prob.detach().mean(),
            "pred_value": q_d.mean(),
            "target_value": target.mean(),
            "td_error": (q_d - target).abs().mean(),
        }
        return _CriticPart(losses, state, new_action, log_prob, alpha)

    def _actor_part(self, part: _CriticPart) -> dict[str, torch.Tensor]:
        """``alpha log pi - Q`` at fresh actions, with the critics' weights as they are now."""
        q_pi = self._actor_q(self.qvalue(*self._q_in(part.state, part.action), detach=True))
        return {"loss_actor": (part.alpha * part.log_prob.unsqueeze(-1) - q_pi).mean()}


class _CriticPart(NamedTuple):
    losses: dict[str, torch.Tensor]
    state: list[torch.Tensor]
    action: torch.Tensor
    """Actions sampled from the current policy (their graph reaches the actor only)."""
    log_prob: torch.Tensor
    alpha: torch.Tensor
