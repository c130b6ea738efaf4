"""DDPG (Lillicrap et al. 2016): a deterministic actor and a Q critic, both with targets.

``loss_value`` regresses ``Q(s, a)`` on ``r + gamma (1 - terminated) Q'(s', mu'(s'))``;
``loss_actor`` is ``-Q(s, mu(s))`` with the critic's weights held fixed, so it trains
only the actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from rldata.errors import ConfigError
from rldata.objectives.common import LossModule, TensorFn, distance_loss, inputs
from rldata.ted import NestedKey, key_name


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Run a block with ``module``'s parameters not requiring grad (gradients reach inputs only)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def action_index(value_network: TensorDictModuleBase, action_key: NestedKey) -> int:
    """Where the action sits among the Q network's inputs (-1: not there, checked at forward)."""
    ins = list(value_network.in_keys)
    return ins.index(action_key) if action_key in ins else -1


def check_action_index(
    index: int, value_network: TensorDictModuleBase, action_key: NestedKey
) -> int:
    """The action's input position, or a ConfigError naming the keys."""
    if index < 0:
        raise ConfigError(
            f"the Q network must read the action key {key_name(action_key)!r}; its in_keys are "
            f"{list(value_network.in_keys)} (rename with loss.set_keys(action=...))"
        )
    return index


class DDPGLoss(LossModule):
    """The DDPG loss.

    Args:
        actor_network: a deterministic policy (e.g. :class:`~rldata.modules.Actor`).
        value_network: ``[observation, action] -> state_action_value``
            (e.g. :class:`~rldata.modules.ValueOperator`).
        loss_function: ``"l2"`` or ``"smooth_l1"`` for the critic.
        delay_actor: use a target actor for the bootstrap action.
        delay_value: use a target critic for the bootstrap value.
        gamma: discount (also settable with ``make_value_estimator(gamma=...)``).

    Returns (``forward``): ``loss_actor``, ``loss_value`` and detached ``pred_value``,
    ``pred_value_max``, ``target_value``, ``target_value_max``, ``td_error``.
    """

    target_actor_network: TensorDictModuleBase
    target_value_network: TensorDictModuleBase

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        value_network: TensorDictModuleBase,
        *,
        loss_function: str = "l2",
        delay_actor: bool = True,
        delay_value: bool = True,
        gamma: float | None = None,
    ) -> None:
        super().__init__(gamma=gamma, loss_function=loss_function)
        self.actor_network = actor_network
        self.value_network = value_network
        self.delay_actor, self.delay_value = delay_actor, delay_value
        if delay_actor:
            self._make_target("actor_network")
        if delay_value:
            self._make_target("value_network")
        self._on_keys_changed()

    def _on_keys_changed(self) -> None:
        self._a_idx = action_index(self.value_network, self._keys.action)
        tgt_actor = self.target_actor_network if self.delay_actor else self.actor_network
        tgt_value = self.target_value_network if self.delay_value else self.value_network
        self._state_keys = [k for k in self.value_network.in_keys if k != self._keys.action]
        self._actor = TensorFn(self.actor_network, self._keys.action)
        self._value = TensorFn(self.value_network)
        self._target_actor = TensorFn(tgt_actor, self._keys.action)
        self._target_value = TensorFn(tgt_value)

    def forward(self, td: TensorDictBase) -> TensorDict:
        td = self._flat(td)
        check_action_index(self._a_idx, self.value_network, self._keys.action)
        obs = inputs(td, self._actor.in_keys)
        q_in = inputs(td, self._value.in_keys)
        with torch.no_grad():
            next_q_in = inputs(td, self._state_keys, nxt=True)
            next_action = self._target_actor(*inputs(td, self._actor.in_keys, nxt=True))
            next_q_in.insert(self._a_idx, next_action)
            next_q = self._target_value(*next_q_in)
            reward, live = self._reward_and_live(td, next_q)
            target = reward + live * next_q

        q = self._value(*q_in)
        loss_value = distance_loss(q, target, self.loss_function).mean()

        q_in[self._a_idx] = self._actor(*obs)
        with frozen(self.value_network):
            loss_actor = -self._value(*q_in).mean()

        q_d = q.detach()
        return self._out(
            loss_actor=loss_actor,
            loss_value=loss_value,
            pred_value=q_d.mean(),
            pred_value_max=q_d.max(),
            target_value=target.mean(),
            target_value_max=target.max(),
            td_error=(q_d - target).abs().mean(),
        )
