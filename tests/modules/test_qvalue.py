"""QValueModule: greedy action encoded as the spec says, chosen value, constructor spellings."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rldata.errors import ConfigError
from rldata.modules import QValueModule
from rldata.specs import Categorical, OneHot

VALUES = torch.tensor([[0.1, 0.9, 0.3], [2.0, -1.0, 0.0]])


@pytest.mark.parametrize(
    ("make", "action"),
    [
        (lambda: QValueModule(action_space=OneHot(3)), torch.tensor([[0, 1, 0], [1, 0, 0]])),
        (lambda: QValueModule(spec=OneHot(3)), torch.tensor([[0, 1, 0], [1, 0, 0]])),
        (lambda: QValueModule(spec=Categorical(3)), torch.tensor([1, 0])),
        (lambda: QValueModule(action_space=Categorical(3, shape=(1,))), torch.tensor([[1], [0]])),
        (lambda: QValueModule(action_space="one_hot"), torch.tensor([[0, 1, 0], [1, 0, 0]])),
        (lambda: QValueModule(action_space="categorical"), torch.tensor([1, 0])),
    ],
    ids=["one-hot", "spec-kw", "categorical", "categorical-1", "str-one-hot", "str-categorical"],
)
def test_greedy_action_and_chosen_value(make, action):
    out = make()(TensorDict(action_value=VALUES.clone(), batch_size=[2]))
    assert torch.equal(out["action"], action)
    assert out["action"].dtype == torch.int64
    torch.testing.assert_close(out["chosen_action_value"], torch.tensor([[0.9], [2.0]]))


@pytest.mark.parametrize(
    "kwargs", [{}, {"action_space": OneHot(2), "spec": OneHot(2)}, {"action_space": "box"}]
)
def test_bad_spec_arguments(kwargs):
    with pytest.raises(ConfigError, match="QValueModule"):
        QValueModule(**kwargs)
