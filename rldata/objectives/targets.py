"""Target-network updaters: an explicit call in the training loop moves the targets.

``SoftUpdate`` is Polyak averaging, ``target <- target + tau (online - target)``
(written ``eps = 1 - tau`` in the walkthrough); ``HardUpdate`` copies every
``value_network_update_interval`` calls. Both update every tensor of a loss at
once with ``torch._foreach_*`` kernels.
"""

from __future__ import annotations

import torch

from rldata.errors import ConfigError
from rldata.objectives.common import LossModule


class _TargetUpdater:
    def __init__(self, loss: LossModule) -> None:
        if not isinstance(loss, LossModule):
            raise ConfigError(f"expected an rldata LossModule, got {type(loss).__name__}")
        if not loss.target_pairs()[0]:
            raise ConfigError(f"{type(loss).__name__} has no target networks to update")
        self.loss = loss

    def init_(self) -> None:
        """Copy the online weights into the targets."""
        online, target = self.loss.target_pairs()
        with torch.no_grad():
            torch._foreach_copy_(target, online)


class SoftUpdate(_TargetUpdater):
    """Polyak averaging of every target of ``loss``: ``target += tau * (online - target)``.

    Args:
        loss: the loss whose targets move.
        eps: the share of the old target kept (``1 - tau``); give ``eps`` or ``tau``.
        tau: the step size toward the online weights.

    Examples:
        >>> updater = SoftUpdate(loss, eps=0.99)  # doctest: +SKIP
        >>> updater.step()  # doctest: +SKIP
    """

    def __init__(
        self, loss: LossModule, *, eps: float | None = None, tau: float | None = None
    ) -> None:
        if (eps is None) == (tau is None):
            raise ConfigError("SoftUpdate: give exactly one of eps= or tau= (eps = 1 - tau)")
        tau = 1.0 - float(eps) if eps is not None else float(tau)  # type: ignore[arg-type]
        if not 0.0 < tau <= 1.0:
            raise ConfigError(f"SoftUpdate: tau must lie in (0, 1], got {tau}")
        super().__init__(loss)
        self.tau = tau

    @property
    def eps(self) -> float:
        return 1.0 - self.tau

    def step(self) -> None:
        """Move every target a fraction ``tau`` of the way to its online weights."""
        online, target = self.loss.target_pairs()
        with torch.no_grad():
            torch._foreach_lerp_(target, online, self.tau)


class HardUpdate(_TargetUpdater):
    """Copy the online weights into the targets every ``value_network_update_interval`` steps."""

    def __init__(self, loss: LossModule, *, value_network_update_interval: int = 1000) -> None:
        if value_network_update_interval < 1:
            raise ConfigError(
                f"HardUpdate: value_network_update_interval must be >= 1, "
                f"got {value_network_update_interval}"
            )
        super().__init__(loss)
        self.value_network_update_interval = int(value_network_update_interval)
        self.counter = 0

    def step(self) -> None:
        """Count one step; copy when the count reaches the interval."""
        self.counter += 1
        if self.counter % self.value_network_update_interval == 0:
            self.init_()
