"""CQL (Kumar et al. 2020), the CQL(H) variant on top of SAC.

SAC's three losses plus ``loss_cql``: for each critic,
``min_q_weight * (T logsumexp_j(Q(s, a_j) / T - log mu(a_j)) - Q(s, a_data))``, where the
``a_j`` are ``num_random`` uniform actions and ``num_random`` policy actions at ``s``
and at ``s'``, each corrected by its sampling density (importance sampling). It
pushes down the value of actions the data does not support. The sampled actions
carry no gradient: ``loss_cql`` trains only the critics.

The critics' target is SAC's without the entropy bonus by default
(``deterministic_backup``), as in the authors' code (``deterministic_backup=True``),
CORL (``backup_entropy=False``) and TorchRL's ``CQLLoss`` default: with the soft target
the bootstrapped value also carries ``-alpha log pi`` of an ever narrower policy.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

from rldata.errors import ConfigError
from rldata.objectives.common import event_sum, inputs
from rldata.objectives.sac import SACLoss


def _repeat(xs: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    """``[B, d] -> [k * B, d]``, sample-major (row ``j * B + b`` is ``x[b]``)."""
    return [x.unsqueeze(0).expand(k, *x.shape).reshape(k * x.shape[0], *x.shape[1:]) for x in xs]


class CQLLoss(SACLoss):
    """The CQL(H) loss (SAC-based).

    Args:
        actor_network, qvalue_network, num_qvalue_nets, alpha_init, fixed_alpha,
            target_entropy, loss_function, gamma: as in :class:`~rldata.objectives.SACLoss`.
        min_q_weight: weight of the conservative term (5.0 in the authors' code, 1.0 in
            TorchRL's; the trainers' registry picks per benchmark).
        num_random: actions sampled per state from each of the three proposals.
        temperature: T of the logsumexp.
        deterministic_backup: bootstrap on ``min Q'(s', a')`` alone (no ``-alpha log pi``).
        bc_steps: the first ``bc_steps`` updates train the actor by behaviour cloning,
            ``alpha log pi(a~|s) - log pi(a_data|s)`` (the authors' ``policy_eval_start``,
            CORL's ``bc_steps``); the loss counts its ``forward`` calls in ``updates``.
        action_spec: bounds for the uniform proposal (default: the actor's ``low``/``high``
            distribution arguments, else its ``spec``).
    """

    action_low: torch.Tensor
    action_high: torch.Tensor
    updates: torch.Tensor

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        qvalue_network: TensorDictModuleBase,
        *,
        num_qvalue_nets: int = 2,
        min_q_weight: float = 5.0,
        num_random: int = 10,
        temperature: float = 1.0,
        deterministic_backup: bool = True,
        bc_steps: int = 0,
        action_spec: Any = None,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        loss_function: str = "l2",
        gamma: float | None = None,
    ) -> None:
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
        if num_random < 1:
            raise ConfigError(f"num_random must be >= 1, got {num_random}")
        if bc_steps < 0:
            raise ConfigError(f"bc_steps must be >= 0, got {bc_steps}")
        low, high = self._bounds(action_spec)
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.min_q_weight, self.num_random = float(min_q_weight), int(num_random)
        self.temperature = float(temperature)
        self.deterministic_backup = bool(deterministic_backup)
        self.bc_steps = int(bc_steps)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def _bounds(self, action_spec: Any) -> tuple[torch.Tensor, torch.Tensor]:
        kwargs = self._policy.kwargs
        spec = action_spec if action_spec is not None else getattr(self.actor_network, "spec", None)
        if spec is not None and getattr(spec, "low", None) is not None:
            low, high = spec.low, spec.high
        elif "low" in kwargs and "high" in kwargs:
            low, high = kwargs["low"], kwargs["high"]
        else:
            raise ConfigError(
                "CQLLoss needs the action bounds: pass action_spec=Bounded(...) or give the actor's "
                "distribution low/high"
            )
        return torch.as_tensor(low, dtype=torch.float32), torch.as_tensor(high, dtype=torch.float32)

    def _next_value(
        self, next_state: list[torch.Tensor], next_obs: list[torch.Tensor], alpha: torch.Tensor
    ) -> torch.Tensor:
        """SAC's soft value of ``s'``, or ``min_i Q'_i(s', a')`` with ``deterministic_backup``."""
        if not self.deterministic_backup:
            return super()._next_value(next_state, next_obs, alpha)
        next_action, _ = self._policy.sample(*next_obs)
        return self.target_qvalue(*self._q_in(next_state, next_action)).amin(0)

    def _sample_k(self, obs: list[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` policy actions per state from one actor pass: ``[k * B, d]`` and ``[k * B]``.

        Sample-major like :func:`_repeat`; the actor runs on ``B`` rows, not ``k * B``.
        """
        dist = self._policy.dist(*obs)
        action = dist.rsample((k,))  # [k, B, d]
        log_prob = event_sum(dist.log_prob(action), action)
        return action.reshape(-1, action.shape[-1]), log_prob.reshape(-1)

    def _conservative(self, td: TensorDictBase, q_data: torch.Tensor) -> torch.Tensor:
        """``min_q_weight * sum_i (T logsumexp(Q_i / T - log density) - mean Q_i(s, a))``."""
        k = self.num_random
        batch = q_data.shape[1]
        with torch.no_grad():
            a_cur, logp_cur = self._sample_k(inputs(td, self._policy.in_keys), k)
            a_next, logp_next = self._sample_k(inputs(td, self._policy.in_keys, nxt=True), k)
            low = self.action_low.expand_as(a_cur)
            high = self.action_high.expand_as(a_cur)
            a_rand = low + (high - low) * torch.rand_like(a_cur)
            logp_rand = -torch.log(high - low).sum(-1)
        state_3k = _repeat(inputs(td, self._state_keys), 3 * k)
        actions = torch.cat([a_rand, a_cur, a_next], 0)
        q = self.qvalue(*self._q_in(state_3k, actions)).reshape(-1, 3 * k, batch)  # [N, 3k, B]
        log_density = torch.cat([logp_rand, logp_cur, logp_next], 0).reshape(3 * k, batch)
        t = self.temperature
        lse = t * torch.logsumexp(q / t - log_density, dim=1)  # [N, B]
        return self.min_q_weight * (lse.mean(-1) - q_data.mean((1, 2))).sum()

    def _extra_losses(self, td: TensorDictBase, q: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_cql": self._conservative(td, q)}

    def forward(self, td: TensorDictBase) -> TensorDict:
        out = super().forward(td)
        if self.bc_steps > 0 and int(self.updates) < self.bc_steps:
            td = self._flat(td)
            obs = inputs(td, self._policy.in_keys)
            _, log_prob = self._policy.sample(*obs)
            data_log_prob = self._policy.log_prob(self._get(td, self._keys.action), *obs)
            out.set("loss_actor", (out["alpha"] * log_prob - data_log_prob).mean())
        self.updates += 1
        return out
