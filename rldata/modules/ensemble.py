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
