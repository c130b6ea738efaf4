"""MLP and ConvNet: layer layout, lazy input, concatenated inputs, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rldata.errors import ConfigError
from rldata.modules import MLP, ConvNet


@pytest.mark.parametrize(
    ("kwargs", "sizes"),
    [
        ({"num_cells": [32, 64]}, [32, 64, 2]),
        ({"num_cells": 16, "depth": 3}, [16, 16, 16, 2]),
        ({}, [32, 32, 32, 2]),
        ({"num_cells": []}, [2]),
    ],
    ids=["list", "int-with-depth", "default", "linear"],
)
def test_layer_sizes(kwargs, sizes):
    net = MLP(in_features=3, out_features=2, **kwargs)
    assert [m.out_features for m in net if isinstance(m, nn.Linear)] == sizes


def test_activation_after_hidden_layers_only_unless_asked():
    net = MLP(3, 2, [4], activation_class=nn.ReLU)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear]
    net = MLP(3, 2, [4], activation_class=nn.ReLU, activate_last_layer=True)
    assert [type(m) for m in net] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]


def test_lazy_first_layer_and_positional_sizes():
    net = MLP(out_features=1, num_cells=[8])
    assert net(torch.zeros(5, 7)).shape == (5, 1)
    assert MLP(3, 1, num_cells=[32, 64])(torch.zeros(2, 3)).shape == (2, 1)


def test_several_inputs_are_concatenated():
    net = MLP(4, 1, [8])
    x, a = torch.randn(5, 3), torch.randn(5, 1)
    torch.testing.assert_close(net(x, a), net(torch.cat([x, a], -1)))


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="depth"):
        MLP(3, 1, num_cells=8)
    with pytest.raises(ConfigError, match="out_features"):
        MLP(3)


def test_convnet_atari_defaults_and_batch_dims():
    net = ConvNet()
    out = net(torch.zeros(2, 5, 4, 84, 84))
    assert out.shape == (2, 5, 64 * 7 * 7)
    assert [m.stride for m in net if isinstance(m, nn.Conv2d)] == [(4, 4), (2, 2), (1, 1)]
