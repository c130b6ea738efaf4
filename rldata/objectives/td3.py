"""TD3 (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed actor.

The target action is the target actor's plus clipped Gaussian noise, clamped to the
action bounds; the target value is the minimum of the target critics. The actor
loss ``-Q_1(s, mu(s))`` is computed every ``policy_delay``-th call only (between,
``loss_actor`` is a constant zero and ``actor_updated`` is False: step the target
updater when it is True to follow the paper).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.modules.ensemble import QEnsemble
from rldata.objectives.common import LossModule, TensorFn, distance_loss, inputs, make_ensemble
from rldata.objectives.ddpg import action_index, check_action_index


def action_bounds(
    action_spec: Any, actor: TensorDictModuleBase
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` from ``action_spec``, else from the actor's ``spec``."""
    spec = action_spec if action_spec is not None else getattr(actor, "spec", None)
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ConfigError(
            "this loss needs the action bounds: pass action_spec=Bounded(...) or build the actor "
            f"with spec=env.action_spec (got {spec!r})"
        )
    return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)


class TD3Loss(LossModule):
    """The TD3 loss.

    Args:
        actor_network: a deterministic policy (:class:`~rldata.modules.Actor`).
        qvalue_network: ``[observation, action] -> state_action_value`` wrapping an MLP.
        action_spec: bounded action spec (default: the actor's ``spec``).
        num_qvalue_nets: number of critics (2 in the paper).
        policy_noise: std of the target smoothing noise (action units).
        noise_clip: the noise is clipped to ``[-noise_clip, noise_clip]``.
        policy_delay: compute the actor loss every ``policy_delay`` calls.
        loss_function: ``"l2"`` or ``"smooth_l1"``.
        gamma: discount.
    """

    target_qvalue: QEnsemble
    target_actor_network: TensorDictModuleBase
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        *,
        action_spec: Any = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        policy_delay: int = 2,
        loss_function: str = "l2",
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma, loss_function=loss_function)
        if policy_delay < 1:
            raise ConfigError(f"policy_delay must be >= 1, got {policy_delay}")
        low, high = action_bounds(action_spec, actor_network)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.actor_network = actor_network
        self._make_target("actor_network")
        self.qvalue_network_template = [qvalue_network]
        self.qvalue = make_ensemble(qvalue_network, num_qvalue_nets)
        self._make_target("qvalue")
        self.policy_noise, self.noise_clip = float(policy_noise), float(noise_clip)
        self.policy_delay = int(policy_delay)
        self.num_calls = 0
        self.actor_updated = False
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        qnet = self.qvalue_network_template[0]
        self._a_idx = action_index(qnet, self._keys.action)
        self._state_keys = [k for k in qnet.in_keys if k != self._keys.action]
        self._actor = TensorFn(self.actor_network, self._keys.action)
        self._target_actor = TensorFn(self.target_actor_network, self._keys.action)

    def _q_in(self, state: list[torch.Tensor], action: torch.Tensor) -> list[torch.Tensor]:
        out = list(state)
        out.insert(self._a_idx, action)
        return out

    def _target(self, td: TensorDictBase) -> torch.Tensor:
        with torch.no_grad():
            next_action = self._target_actor(*inputs(td, self._actor.in_keys, nxt=True))
            noise = (torch.randn_like(next_action) * self.policy_noise).clamp(
                -self.noise_clip, self.noise_clip
            )
            next_action = torch.max(
                torch.min(next_action + noise, self.action_high), self.action_low
            )
            next_q = self.target_qvalue(
                *self._q_in(inputs(td, self._state_keys, nxt=True), next_action)
            )
            next_q = next_q.amin(0)
            reward, live = self._reward_and_live(td, next_q)
            return reward + live * next_q

    def _actor_loss(self, td: TensorDictBase, state: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        new_action = self._actor(*inputs(td, self._actor.in_keys))
        q1 = self.qvalue(*self._q_in(state, new_action), detach=True)[0]
        return {"loss_actor": -q1.mean()}

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        if self._a_idx < 0:
            check_action_index(-1, self.qvalue_network_template[0], self._keys.action)
        state = inputs(td, self._state_keys)
        action = self._get(td, self._keys.action)
        target = self._target(td)

        q = self.qvalue(*self._q_in(state, action))
        loss_qvalue = distance_loss(q, target, self.loss_function).mean((1, 2)).sum()

        self.num_calls += 1
        self.actor_updated = self.num_calls % self.policy_delay == 0
        if self.actor_updated:
            actor = self._actor_loss(td, state)
        else:
            actor = {"loss_actor": torch.zeros((), device=q.device)}

        q_d = q.detach()
        return self._out(
            **actor,
            loss_qvalue=loss_qvalue,
            pred_value=q_d.mean(),
            target_value=target.mean(),
            td_error=(q_d - target).abs().mean(),
        )
