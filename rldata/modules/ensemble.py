"""``QEnsemble``: N copies of an MLP evaluated in one batched call.

REDQ needs ten Q-networks and SAC two; a Python loop over networks pays the
per-layer overhead N times. Here each layer's weights are stacked into one
``[N, in, out]`` tensor and a layer is one ``torch.baddbmm``. The weights are plain
attributes (``weight_0``, ``bias_0``, ...), so a copy whose parameters were turned
into buffers (a target network) runs the same code.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from rldata.errors import ConfigError


def _layers(template: nn.Module) -> list[nn.Module]:
    layers = list(template) if isinstance(template, nn.Sequential) else [template]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            if layer.bias is None:
                raise ConfigError("QEnsemble: Linear layers need a bias (bias=True)")
            if isinstance(layer.weight, nn.parameter.UninitializedParameter):
                raise ConfigError(
                    "QEnsemble: the network has a lazy layer; give in_features= or run it once"
                )
        elif any(True for _ in layer.parameters()):
            raise ConfigError(
                f"QEnsemble: only Linear layers and parameter-free activations can be stacked, "
                f"got {type(layer).__name__}"
            )
    return layers


class QEnsemble(nn.Module):
    """``num_nets`` independently initialised copies of an MLP-shaped ``template``.

    Copy 0 keeps the template's weights; the others are re-initialised. Inputs are
    either shared, ``[B, in]``, or one per member, ``[N, B, in]``; several inputs are
    concatenated on the last dim. The output is ``[N, B, out]``.

    Args:
        template: an ``nn.Sequential`` of ``nn.Linear`` and parameter-free layers
            (e.g. :class:`~rldata.modules.MLP`).
        num_nets: ensemble size N.
    """

    def __init__(self, template: nn.Module, num_nets: int) -> None:
        super().__init__()
        if num_nets < 1:
            raise ConfigError(f"QEnsemble: num_nets must be >= 1, got {num_nets}")
        layers = _layers(template)
        self.num_nets = int(num_nets)
        copies = [template] + [copy.deepcopy(template) for _ in range(num_nets - 1)]
        for c in copies[1:]:
            for m in c.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        self._acts: list[nn.Module | None] = []
        self.num_linear = 0
        for pos, layer in enumerate(layers):
            if isinstance(layer, nn.Linear):
                members = [list(c)[pos] if isinstance(c, nn.Sequential) else c for c in copies]
                w = torch.stack([m.get_parameter("weight").detach().t() for m in members])
                b = torch.stack([m.get_parameter("bias").detach() for m in members]).unsqueeze(1)
                self.register_parameter(f"weight_{self.num_linear}", nn.Parameter(w.contiguous()))
                self.register_parameter(f"bias_{self.num_linear}", nn.Parameter(b.contiguous()))
                self._acts.append(None)
                self.num_linear += 1
            else:
                if not self._acts:
                    raise ConfigError("QEnsemble: the network must start with a Linear layer")
                prev = self._acts[-1]
                self._acts[-1] = layer if prev is None else nn.Sequential(prev, layer)
        self.acts = nn.ModuleList([a if a is not None else nn.Identity() for a in self._acts])

    @staticmethod
    def supports(template: nn.Module) -> bool:
        """True when ``template`` is a stack of biased Linear layers and parameter-free layers."""
        try:
            _layers(template)
        except ConfigError:
            return False
        layers = list(template) if isinstance(template, nn.Sequential) else [template]
        return isinstance(layers[0], nn.Linear)

    def weights(self) -> list[torch.Tensor]:
        """``[weight_0, bias_0, weight_1, ...]``: the tensors a forward reads."""
        out = []
        for i in range(self.num_linear):
            out.append(getattr(self, f"weight_{i}"))
            out.append(getattr(self, f"bias_{i}"))
        return out

    def forward(
        self,
        *inputs: torch.Tensor,
        weights: Sequence[torch.Tensor] | None = None,
        detach: bool = False,
    ) -> torch.Tensor:
        """Evaluate all members (or the members whose ``weights`` are given).

        Args:
            inputs: ``[B, in]`` (shared) or ``[N, B, in]`` tensors, concatenated on the last dim.
            weights: explicit weight list (e.g. a subset ``w[idx]`` or target weights).
            detach: use detached weights: gradients reach the inputs, not the ensemble.
        """
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        ws = self.weights() if weights is None else list(weights)
        if detach:
            ws = [w.detach() for w in ws]
        n = ws[0].shape[0]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n, *x.shape)
        for i in range(len(ws) // 2):
            x = torch.baddbmm(ws[2 * i + 1], x, ws[2 * i])
            act = self._acts[i]
            if isinstance(act, nn.ReLU):
                x = x.relu_()  # baddbmm's backward does not read its output: in place is safe
            elif act is not None:
                x = act(x)
        return x

    def member(self, i: int) -> nn.Sequential:
        """A standalone copy of member ``i`` (an ``nn.Sequential``), e.g. for evaluation."""
        layers: list[nn.Module] = []
        for j in range(self.num_linear):
            w = getattr(self, f"weight_{j}")[i]
            lin = nn.Linear(w.shape[0], w.shape[1], device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w.t())
                lin.bias.copy_(getattr(self, f"bias_{j}")[i, 0])
            layers.append(lin)
            act = self._acts[j]
            if act is not None:
                layers.append(copy.deepcopy(act))
        return nn.Sequential(*layers)


def _mangle(name: str) -> str:
    return name.replace(".", "__")


class FuncEnsemble(nn.Module):
    """N copies of any tensor-in, tensor-out module, run with ``torch.func.vmap``.

    The general (slower) sibling of :class:`QEnsemble`, for critics that are not plain
    MLPs (layer norms, conv torsos, ...). Parameters and buffers of the copies are
    stacked on a leading dim; inputs are passed to the module as given (not concatenated),
    shared ``[B, ...]`` or one per member (``member_inputs=True``). Output ``[N, B, ...]``.
    """

    def __init__(self, template: nn.Module, num_nets: int) -> None:
        super().__init__()
        if num_nets < 1:
            raise ConfigError(f"FuncEnsemble: num_nets must be >= 1, got {num_nets}")
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in template.parameters()):
            raise ConfigError(
                "FuncEnsemble: the network has a lazy layer; give its input size or run it once"
            )
        copies = [template] + [copy.deepcopy(template) for _ in range(num_nets - 1)]
        for c in copies[1:]:
            for m in c.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset):
                    reset()
        params, buffers = torch.func.stack_module_state(copies)
        self.num_nets = int(num_nets)
        self._names = list(params)
        self._buffer_names = list(buffers)
        for name, value in params.items():
            self.register_parameter(_mangle(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer("buffer__" + _mangle(name), value.clone())
        self._skeleton = [copy.deepcopy(template)]  # a list: kept out of parameters()

    def weights(self) -> list[torch.Tensor]:
        """The stacked parameters, in the template's order."""
        return [getattr(self, _mangle(n)) for n in self._names]

    def forward(
        self,
        *inputs: torch.Tensor,
        weights: Sequence[torch.Tensor] | None = None,
        detach: bool = False,
        member_inputs: bool = False,
    ) -> torch.Tensor:
        ws = self.weights() if weights is None else list(weights)
        if detach:
            ws = [w.detach() for w in ws]
        n = ws[0].shape[0]
        state = dict(zip(self._names, ws))
        for name in self._buffer_names:
            buf = getattr(self, "buffer__" + _mangle(name))
            state[name] = buf if buf.shape[0] == n else buf[:n]
        skeleton = self._skeleton[0]

        def call(s: dict[str, torch.Tensor], *xs: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(skeleton, s, xs)

        in_dims = (0, *([0 if member_inputs else None] * len(inputs)))
        return torch.func.vmap(call, in_dims=in_dims)(state, *inputs)
