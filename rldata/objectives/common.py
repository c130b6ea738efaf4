"""``LossModule``: the base every loss builds on.

A loss owns its networks and their target copies. Targets are deep copies made
once at construction whose parameters became buffers: ``loss.parameters()`` is
what an optimizer should train, and :class:`~rldata.objectives.SoftUpdate` /
:class:`~rldata.objectives.HardUpdate` move the targets through
:meth:`LossModule.target_pairs`. Inside ``forward`` the networks run on plain
tensors (read once from the TED batch), so the hot path pays for tensordict only
at its edges.

Example::

    loss = DDPGLoss(actor, value_net, gamma=0.99)
    optim = torch.optim.Adam(loss.parameters())
    updater = SoftUpdate(loss, tau=0.005)
    for batch in buffer:
        out = loss(batch)
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        optim.step(); optim.zero_grad()
        updater.step()
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, cast

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
)
from torch import nn
from torch.nn import functional as F

from rldata.errors import ConfigError, TedFormatError
from rldata.modules.distributions import TanhNormal, tanh_normal_rsample
from rldata.modules.ensemble import FuncEnsemble, QEnsemble
from rldata.ted import TED_KEYS, NestedKey, key_name

LOSS_FUNCTIONS = ("l2", "smooth_l1")


def distance_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Element-wise regression loss: ``"l2"`` is ``(pred - target)^2``, ``"smooth_l1"`` Huber."""
    if kind == "l2":
        return (pred - target).pow(2)
    return F.smooth_l1_loss(pred, target.expand_as(pred), reduction="none")


def check_loss_function(kind: str) -> str:
    if kind not in LOSS_FUNCTIONS:
        raise ConfigError(f"loss_function must be one of {list(LOSS_FUNCTIONS)}, got {kind!r}")
    return kind


def as_target(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` whose parameters are buffers (not trained, moved by updaters)."""
    target = copy.deepcopy(module)
    for sub in target.modules():
        for name in list(sub._parameters):
            p = sub._parameters.pop(name)
            # an absent parameter (a Linear without bias) stays absent, as a None buffer
            sub.register_buffer(name, None if p is None else p.detach().clone())
    return target


# --- networks as tensor functions ---------------------------------------------------


def _plain(net: TensorDictModuleBase) -> nn.Module | None:
    if isinstance(net, TensorDictModule) and not isinstance(net.module, TensorDictModuleBase):
        return cast(nn.Module, net.module)
    return None


class TensorFn:
    """Run a TensorDictModule on tensors: ``fn(*inputs) -> the output at out_key``.

    A plain ``TensorDictModule`` calls its inner module directly; anything else is
    called through a small TensorDict.
    """

    def __init__(self, net: TensorDictModuleBase, out_key: NestedKey | None = None) -> None:
        self.in_keys = list(net.in_keys)
        self.out_key = out_key if out_key is not None else net.out_keys[0]
        self._net = net
        self._module = _plain(net) if (out_key is None or len(net.out_keys) == 1) else None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self._module is not None:
            return self._module(*inputs)
        td = TensorDict(dict(zip(self.in_keys, inputs)), batch_size=inputs[0].shape[:-1])
        return self._net(td).get(self.out_key)


class StochasticPolicy:
    """Sample actions with their log-probabilities from a probabilistic actor.

    A :class:`~rldata.modules.ProbabilisticActor` whose parameter network is a plain
    TensorDictModule and whose distribution is :class:`TanhNormal` runs on tensors;
    any other ``ProbabilisticTensorDictSequential`` goes through ``get_dist``.
    """

    def __init__(self, actor: TensorDictModuleBase, action_key: NestedKey) -> None:
        if not isinstance(actor, ProbabilisticTensorDictSequential):
            raise ConfigError(
                f"actor_network must be a ProbabilisticActor, got {type(actor).__name__}"
            )
        self.actor = actor
        self.in_keys = [k for k in actor.in_keys]
        self.action_key = action_key
        self._fast: tuple[Callable[..., Any], list[int], list[Any], list[Any]] | None = None
        stages = cast(nn.ModuleList, actor.module)
        dist_module = cast(ProbabilisticTensorDictModule, stages[-1])
        head = cast(TensorDictModuleBase, stages[0]) if len(stages) == 2 else None
        plain = _plain(head) if head is not None else None
        if head is not None and plain is not None:
            dist_in = dist_module.in_keys
            names = list(dist_in.keys()) if isinstance(dist_in, dict) else list(dist_in)
            srcs = list(dist_in.values()) if isinstance(dist_in, dict) else list(dist_in)
            outs = list(head.out_keys)
            if set(srcs) <= set(outs):
                self._fast = (plain, [outs.index(s) for s in srcs], names, list(head.in_keys))
        self.distribution_class: Any = getattr(dist_module, "distribution_class", None)
        self.kwargs = dict(getattr(dist_module, "distribution_kwargs", {}) or {})

    def dist(self, *inputs: torch.Tensor) -> torch.distributions.Distribution:
        if self._fast is not None:
            module, idx, names, _ = self._fast
            out = module(*inputs)
            out = out if isinstance(out, tuple) else (out,)
            params = {n: out[i] for n, i in zip(names, idx)}
            return self.distribution_class(**params, **self.kwargs)
        td = TensorDict(dict(zip(self.in_keys, inputs)), batch_size=inputs[0].shape[:-1])
        return self.actor.get_dist(td)

    def sample(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability ``[B]``."""
        if self._fast is not None and self.distribution_class is TanhNormal:
            module, idx, names, _ = self._fast
            out = module(*inputs)
            params = {n: out[i] for n, i in zip(names, idx)}
            return tanh_normal_rsample(params["loc"], params["scale"], **self.kwargs)
        d = self.dist(*inputs)
        action = d.rsample()
        return action, event_sum(d.log_prob(action), action)

    def log_prob(self, action: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """Log-probability ``[B]`` of given actions (e.g. dataset actions)."""
        return event_sum(self.dist(*inputs).log_prob(action), action)


def event_sum(log_prob: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Per-sample log-probability: summed over the action dim when it is still there."""
    return log_prob.sum(-1) if log_prob.dim() == action.dim() else log_prob


def make_ensemble(value_network: TensorDictModuleBase, num_nets: int) -> QEnsemble | FuncEnsemble:
    """The loss's Q ensemble: batched matmuls for an MLP, ``vmap`` for any other module."""
    module = _plain(value_network)
    if module is None:
        raise ConfigError(
            f"the Q network must be a ValueOperator/TensorDictModule wrapping a torch module, "
            f"got {type(value_network).__name__}"
        )
    if QEnsemble.supports(module):
        return QEnsemble(module, num_nets)
    return FuncEnsemble(module, num_nets)


# --- the base class --------------------------------------------------------------------


class LossModule(nn.Module):
    """Base of the losses: keys, discount, target copies and their update pairs.

    Subclasses define a frozen dataclass ``Keys`` (the TED entries they read) and
    register each trained network's target with :meth:`_make_target`.
    """

    @dataclasses.dataclass(frozen=True)
    class Keys:
        action: NestedKey = "action"
        reward: NestedKey = "reward"
        terminated: NestedKey = "terminated"

    default_gamma: ClassVar[float] = 0.99

    def __init__(self, *, gamma: float | None = None, loss_function: str = "l2") -> None:
        super().__init__()
        self._keys = self.Keys()
        self.gamma = float(self.default_gamma if gamma is None else gamma)
        self.loss_function = check_loss_function(loss_function)
        self._target_names: list[tuple[str, str]] = []
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    # -- keys ------------------------------------------------------------------------
    @property
    def tensor_keys(self) -> Any:
        """The TED entries this loss reads (a frozen dataclass; change with :meth:`set_keys`)."""
        return self._keys

    def set_keys(self, **keys: NestedKey) -> LossModule:
        """Rename the entries the loss reads, e.g. ``set_keys(reward=("agent", "reward"))``."""
        valid = [f.name for f in dataclasses.fields(self._keys)]
        for name in keys:
            if name not in valid:
                raise ConfigError(
                    f"{type(self).__name__}.set_keys: unknown key {name!r}; valid keys: {valid}"
                )
        self._keys = dataclasses.replace(self._keys, **keys)
        self._on_keys_changed()
        return self

    def _on_keys_changed(self) -> None:
        pass

    def make_value_estimator(
        self, value_type: str | None = None, *, gamma: float | None = None
    ) -> LossModule:
        """Set the discount (the one-step TD(0) target is the only estimator)."""
        if value_type not in (None, "td0", "TD0"):
            raise ConfigError(f"value_type must be 'td0' (or None), got {value_type!r}")
        if gamma is not None:
            if not 0.0 <= gamma <= 1.0:
                raise ConfigError(f"gamma must lie in [0, 1], got {gamma}")
            self.gamma = float(gamma)
        return self

    # -- reading the batch -------------------------------------------------------------
    @staticmethod
    def _get(td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise TedFormatError(
                f"loss input: key {key_name(key)!r} is missing from the batch; present keys: "
                f"{sorted(key_name(k) for k in td.keys(True, True))}"
            )
        return value

    @staticmethod
    def _flat(td: TensorDictBase) -> TensorDictBase:
        """Rows of any batch shape (``[B]``, ``[B, T]`` slices, ...) as one ``[N]`` batch."""
        if td.batch_dims == 1:
            return td
        if td.batch_dims == 0:
            raise TedFormatError("loss input: expected a batch of TED rows, got batch_size=[]")
        return td.reshape(-1)

    def _next(self, key: NestedKey) -> tuple[str, ...]:
        return TED_KEYS.nxt(key)

    def _reward_and_live(
        self, td: TensorDictBase, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reward, gamma * (1 - terminated))``, shaped like ``like`` (``[B, 1]``)."""
        reward = self._get(td, self._next(self._keys.reward)).reshape(like.shape)
        term = self._get(td, self._next(self._keys.terminated)).reshape(like.shape)
        return reward.to(like.dtype), (~term).to(like.dtype) * self.gamma

    # -- the update in steps ----------------------------------------------------------
    def stages(self, td: TensorDictBase) -> Iterator[TensorDict]:
        """The update as loss sets, in order; the trainer steps the optimizer after each.

        One joint set (``forward``) unless a loss needs one network to see another's
        fresh weights (:class:`~rldata.objectives.SACLoss` with ``critic_first``).
        """
        yield self(td)

    # -- targets --------------------------------------------------------------------
    def _make_target(self, name: str) -> nn.Module:
        """Register ``target_<name>``, a frozen copy of ``self.<name>``."""
        target = as_target(getattr(self, name))
        setattr(self, f"target_{name}", target)
        self._target_names.append((name, f"target_{name}"))
        self._pairs = None
        return target

    def target_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(online, target)`` tensor lists in matching order, for the updaters."""
        if self._pairs is None:
            online: list[torch.Tensor] = []
            target: list[torch.Tensor] = []
            for name, tname in self._target_names:
                src, dst = getattr(self, name), getattr(self, tname)
                for pname, p in src.named_parameters():
                    online.append(p)
                    target.append(dst.get_buffer(pname))
            self._pairs = (online, target)
        return self._pairs

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> LossModule:
        self._pairs = None
        return super()._apply(fn, *args, **kwargs)

    @staticmethod
    def _out(**entries: torch.Tensor) -> TensorDict:
        return TensorDict(entries, batch_size=[])


def detach_meta(**entries: torch.Tensor) -> dict[str, torch.Tensor]:
    """Detached scalars for the metadata entries of a loss output."""
    return {k: v.detach() for k, v in entries.items()}


def inputs(
    td: TensorDictBase, keys: Sequence[NestedKey], *, nxt: bool = False
) -> list[torch.Tensor]:
    """The tensors at ``keys`` (under ``"next"`` when ``nxt``)."""
    out = []
    for k in keys:
        key = TED_KEYS.nxt(k) if nxt else k
        v = td.get(key, None)
        if v is None:
            raise TedFormatError(
                f"loss input: key {key_name(key)!r} is missing from the batch; present keys: "
                f"{sorted(key_name(x) for x in td.keys(True, True))}"
            )
        out.append(v)
    return out


def action_indices(action: torch.Tensor, n: int, key: NestedKey = "action") -> torch.Tensor:
    """Discrete actions as indices ``[N]`` (int64), from indices or one-hot rows.

    Accepts ``[N]`` or ``[N, 1]`` integer indices (gymnasium / Minari / d3rlpy) and ``[N, n]``
    one-hot rows (TorchRL's ``OneHot``, the encoding ``rldata collect`` records by default).

    Raises:
        TedFormatError: a shape that is neither, or an index outside ``[0, n)``.
    """
    if action.dim() == 2 and action.shape[-1] == n and n > 1:
        if not bool((((action == 0) | (action == 1)).all()) and (action.sum(-1) == 1).all()):
            raise TedFormatError(
                f"loss input: key {key_name(key)!r}: rows of shape [N, {n}] must be one-hot "
                f"(one 1, the rest 0); got e.g. {action[0].tolist()}"
            )
        return action.argmax(-1)
    if action.dim() == 2 and action.shape[-1] == 1:
        action = action.squeeze(-1)
    if (
        action.dim() != 1
        or action.is_floating_point()
        and not bool((action == action.round()).all())
    ):
        raise TedFormatError(
            f"loss input: key {key_name(key)!r}: expected discrete actions as indices [N] / [N, 1] "
            f"or one-hot rows [N, {n}], got shape {tuple(action.shape)} {action.dtype}"
        )
    index = action.long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
        raise TedFormatError(
            f"loss input: key {key_name(key)!r}: action indices must lie in [0, {n}), got "
            f"{int(index.min())}..{int(index.max())}"
        )
    return index
