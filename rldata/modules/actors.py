"""TensorDict wrappers for policies and value functions.

``Actor`` and ``ValueOperator`` are :class:`tensordict.nn.TensorDictModule` with the
walkthrough's default keys; ``ProbabilisticActor`` builds a distribution from the
parameters a module writes and samples the action from it, following
:func:`rldata.exploration.set_exploration_type` (RANDOM samples, MEAN/MODE/
DETERMINISTIC take a point estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from tensordict import NestedKey as TDNestedKey
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
)
from torch import distributions as D
from torch import nn

from rldata.errors import ConfigError
from rldata.ted import NestedKey


def _key_list(
    keys: NestedKey | Sequence[NestedKey] | None, default: list[NestedKey]
) -> list[TDNestedKey]:
    if keys is None:
        return list(default)
    if isinstance(keys, (str, tuple)):
        return [keys]
    return list(keys)


class Actor(TensorDictModule):
    """A deterministic policy: ``module(observation) -> action``.

    Args:
        module: a torch module (e.g. :class:`~rldata.modules.MLP`).
        in_keys: entries read (default ``["observation"]``).
        out_keys: entries written (default ``["action"]``).
        spec: the action spec, kept for exploration modules and losses that need bounds.
    """

    def __init__(
        self,
        module: nn.Module,
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        spec: Any = None,
    ) -> None:
        super().__init__(
            module,
            in_keys=_key_list(in_keys, ["observation"]),
            out_keys=_key_list(out_keys, ["action"]),
        )
        self.spec = spec


class ValueOperator(TensorDictModule):
    """A value function: ``[observation, action] -> state_action_value`` or ``observation -> state_value``.

    The output key defaults to ``"state_action_value"`` when ``"action"`` is an input,
    else ``"state_value"``.
    """

    def __init__(
        self,
        module: nn.Module,
        in_keys: NestedKey | Sequence[NestedKey] | None = None,
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
    ) -> None:
        ins = _key_list(in_keys, ["observation"])
        default_out = "state_action_value" if "action" in ins else "state_value"
        super().__init__(module, in_keys=ins, out_keys=_key_list(out_keys, [default_out]))


class ProbabilisticActor(ProbabilisticTensorDictSequential):
    """A stochastic policy: ``module`` writes distribution parameters, an action is drawn.

    Args:
        module: a TensorDictModule writing the distribution parameters (e.g. ``loc``, ``scale``).
        in_keys: the parameter entries the distribution reads (e.g. ``["loc", "scale"]``).
        out_keys: where the sample goes (default ``["action"]``).
        distribution_class: a ``torch.distributions.Distribution`` class, e.g.
            :class:`~rldata.modules.TanhNormal` or ``torch.distributions.Normal``.
        distribution_kwargs: fixed keyword arguments (``low``, ``high``, ...).
        return_log_prob: also write the sample's log-probability (key ``log_prob_key``).
        spec: the action spec (bounds used by losses and exploration).
        default_interaction_type: used when no exploration type is set (RANDOM, as in rldata).
    """

    def __init__(
        self,
        module: TensorDictModuleBase,
        in_keys: NestedKey | Sequence[NestedKey],
        out_keys: NestedKey | Sequence[NestedKey] | None = None,
        *,
        distribution_class: type[D.Distribution] = D.Normal,
        distribution_kwargs: dict[str, Any] | None = None,
        return_log_prob: bool = False,
        spec: Any = None,
        default_interaction_type: InteractionType = InteractionType.RANDOM,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise ConfigError(
                f"ProbabilisticActor: module must be a TensorDictModule writing {in_keys!r}, "
                f"got {type(module).__name__}"
            )
        self.distribution_kwargs = dict(distribution_kwargs or {})
        self.distribution_class = distribution_class
        dist_module = ProbabilisticTensorDictModule(
            in_keys=_key_list(in_keys, []),
            out_keys=_key_list(out_keys, ["action"]),
            distribution_class=distribution_class,
            distribution_kwargs=self.distribution_kwargs,
            return_log_prob=return_log_prob,
            default_interaction_type=default_interaction_type,
        )
        super().__init__(module, dist_module)
        self.spec = spec

    @property
    def log_prob_key(self) -> NestedKey:
        """Where ``return_log_prob=True`` writes the sample's log-probability."""
        return cast(ProbabilisticTensorDictModule, self.module[-1]).log_prob_key
