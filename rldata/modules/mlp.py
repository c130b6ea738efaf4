"""Plain torch networks: :class:`MLP` and :class:`ConvNet`.

They take tensors (not TensorDicts); wrap them in :class:`~rldata.modules.Actor` or
:class:`~rldata.modules.ValueOperator` to read and write TensorDict keys. ``MLP``
concatenates several inputs on the last dim, so ``[observation, action] -> Q`` needs
no glue. Both are ``nn.Sequential`` so that an ensemble can read their layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rldata.errors import ConfigError


def _cells(
    num_cells: int | Sequence[int] | None, depth: int | None, default: Sequence[int]
) -> list[int]:
    if num_cells is None:
        return list(default) if depth is None else [default[0]] * depth
    if isinstance(num_cells, int):
        if depth is None:
            raise ConfigError(f"num_cells={num_cells} is an int: give depth= as well")
        return [num_cells] * depth
    cells = list(num_cells)
    if depth is not None and depth != len(cells):
        raise ConfigError(f"depth={depth} does not match len(num_cells)={len(cells)}")
    return cells


class MLP(nn.Sequential):
    """A multi-layer perceptron ``in_features -> num_cells... -> out_features``.

    Args:
        in_features: input size; ``None`` makes the first layer lazy (sized on first call).
        out_features: output size.
        num_cells: hidden sizes (a list), or one size used ``depth`` times. Default ``[32, 32, 32]``.
        activation_class: the non-linearity class placed after each hidden layer.
        activate_last_layer: also apply the activation after the output layer.
        depth: number of hidden layers, when ``num_cells`` is an int.
        activation_kwargs: keyword arguments for ``activation_class``.
        device: where the parameters live.
        dtype: parameter dtype.

    Examples:
        >>> net = MLP(in_features=4, out_features=1, num_cells=[8, 8])
        >>> net(torch.zeros(2, 3), torch.zeros(2, 1)).shape  # inputs are concatenated
        torch.Size([2, 1])
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        num_cells: int | Sequence[int] | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        activate_last_layer: bool = False,
        depth: int | None = None,
        activation_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if out_features is None:
            raise ConfigError("MLP needs out_features (the size of its output)")
        cells = _cells(num_cells, depth, (32, 32, 32))
        sizes = [*cells, int(out_features)]
        kwargs = activation_kwargs or {}
        layers: list[nn.Module] = []
        prev = in_features
        for i, size in enumerate(sizes):
            if prev is None:
                layers.append(nn.LazyLinear(size, device=device, dtype=dtype))
            else:
                layers.append(nn.Linear(prev, size, device=device, dtype=dtype))
            if i < len(sizes) - 1 or activate_last_layer:
                layers.append(activation_class(**kwargs))
            prev = size
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = int(out_features)
        self.num_cells = cells

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        for layer in self:
            x = layer(x)
        return x


class ConvNet(nn.Sequential):
    """A convolutional torso; defaults are the Atari (Nature DQN) layout.

    Input ``[*batch, C, H, W]``; output ``[*batch, features]`` (flattened). Channels are
    inferred on first call (lazy first layer) unless ``in_features`` is given.

    Args:
        in_features: input channels, or ``None`` for lazy.
        num_cells: output channels per layer (default ``[32, 64, 64]``).
        kernel_sizes: one per layer (default ``[8, 4, 3]``).
        strides: one per layer (default ``[4, 2, 1]``).
        activation_class: non-linearity after each conv (default ``nn.ReLU``).
        device: where the parameters live.
    """

    def __init__(
        self,
        in_features: int | None = None,
        num_cells: Sequence[int] = (32, 64, 64),
        kernel_sizes: int | Sequence[int] = (8, 4, 3),
        strides: int | Sequence[int] = (4, 2, 1),
        activation_class: type[nn.Module] = nn.ReLU,
        device: torch.device | str | None = None,
    ) -> None:
        cells = list(num_cells)
        kernels = (
            [kernel_sizes] * len(cells) if isinstance(kernel_sizes, int) else list(kernel_sizes)
        )
        stride_l = [strides] * len(cells) if isinstance(strides, int) else list(strides)
        if not len(cells) == len(kernels) == len(stride_l):
            raise ConfigError(
                f"ConvNet: num_cells, kernel_sizes and strides need equal lengths, "
                f"got {len(cells)}, {len(kernels)}, {len(stride_l)}"
            )
        layers: list[nn.Module] = []
        prev = in_features
        for out, k, s in zip(cells, kernels, stride_l):
            if prev is None:
                layers.append(nn.LazyConv2d(out, k, s, device=device))
            else:
                layers.append(nn.Conv2d(prev, out, k, s, device=device))
            layers.append(activation_class())
            prev = out
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        if not x.is_floating_point():
            x = x.float()
        for layer in self:
            x = layer(x)
        return x.reshape(*batch, -1)
