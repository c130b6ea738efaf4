"""Specs: values, JSON round trips and gymnasium conversion, one table per concern."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rldata.errors import SpecError
from rldata.specs import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
    from_gym_space,
    spec_from_json,
)

LEAF_CASES = {
    "unbounded": Unbounded(3),
    "unbounded_int": Unbounded((2, 2), dtype=torch.int32),
    "bounded_scalar_bounds": Bounded(-2.0, 2.0, shape=(1,)),
    "bounded_per_element": Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.5])),
    "bounded_with_inf": Bounded(torch.tensor([-np.inf, 0.0]), torch.tensor([np.inf, 1.0])),
    "bounded_float64": Bounded(-0.1, 0.3, shape=(2,), dtype=torch.float64),
    "bounded_uint8_pixels": Bounded(0, 255, shape=(3, 4, 4), dtype=torch.uint8),
    "categorical": Categorical(5),
    "categorical_batched": Categorical(5, shape=(2,)),
    "one_hot": OneHot(4),
    "binary": Binary(6),
    "multi_categorical": MultiCategorical([2, 3, 4]),
    "multi_one_hot": MultiOneHot([2, 3]),
}


@pytest.mark.parametrize("name", LEAF_CASES)
def test_rand_draws_lie_in_the_spec(name):
    spec = LEAF_CASES[name]
    sample = spec.rand((7,))
    assert sample.shape == (7, *spec.shape)
    assert sample.dtype == spec.dtype
    assert spec.is_in(sample)
    assert spec.is_in(spec.zero()) or name in {"one_hot", "multi_one_hot", "bounded_per_element"}


@pytest.mark.parametrize("name", LEAF_CASES)
def test_json_round_trip_is_exact(name):
    spec = LEAF_CASES[name]
    text = json.dumps(spec.to_json(), allow_nan=False)
    again = spec_from_json(json.loads(text))
    assert again == spec
    assert type(again) is type(spec)
    if isinstance(spec, Bounded):
        assert torch.equal(again.low, spec.low) and torch.equal(again.high, spec.high)


def test_composite_json_round_trip_keeps_nesting_and_batch_shape():
    spec = Composite(
        observation=Bounded(-1.0, 1.0, shape=(3,)),
        pixels=Bounded(0, 255, shape=(3, 8, 8), dtype=torch.uint8),
        next=Composite(reward=Unbounded(1), done=Binary(1, dtype=torch.bool)),
    ).expand(4)
    again = spec_from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    assert again.shape == (4,)
    assert again["next", "reward"].shape == (4, 1)


def test_composite_refuses_a_leaf_without_the_batch_shape():
    with pytest.raises(SpecError, match="must start with the batch shape"):
        Composite(obs=Unbounded(2), shape=(5,))


def test_composite_nested_access_and_assignment():
    spec = Composite()
    spec["next", "observation"] = Unbounded(3)
    assert isinstance(spec["next"], Composite)
    assert ("next", "observation") in spec
    assert spec.keys(include_nested=True, leaves_only=True) == [("next", "observation")]
    with pytest.raises(KeyError, match="next"):
        spec["next", "missing"]


def test_composite_rand_is_a_tensordict_in_the_spec():
    spec = Composite(obs=Unbounded(2), act=OneHot(3), next=Composite(r=Unbounded(1))).expand(5)
    td = spec.rand()
    assert td.batch_size == (5,)
    assert td["next", "r"].shape == (5, 1)
    assert spec.is_in(td)
    td["act"] = torch.zeros(5, 3, dtype=torch.int64)
    assert not spec.is_in(td)


@pytest.mark.parametrize(
    "spec, value, projected",
    [
        (Bounded(-1.0, 1.0, shape=(2,)), torch.tensor([-3.0, 0.5]), torch.tensor([-1.0, 0.5])),
        (Categorical(3), torch.tensor(7), torch.tensor(2)),
        (OneHot(3), torch.tensor([0.2, 0.9, 0.1]), torch.tensor([0, 1, 0])),
        (MultiCategorical([2, 3]), torch.tensor([5, -1]), torch.tensor([1, 0])),
        (Binary(2), torch.tensor([0.7, 0.2]), torch.tensor([1, 0], dtype=torch.int8)),
    ],
)
def test_project_moves_values_into_the_spec(spec, value, projected):
    out = spec.project(value)
    assert torch.equal(out, projected.to(spec.dtype))
    assert spec.is_in(out)


def test_assert_is_in_names_the_key_and_the_problem():
    spec = Bounded(-1.0, 1.0, shape=(1,))
    with pytest.raises(SpecError, match=r"action: expected dtype torch.float32, got torch.int64"):
        spec.assert_is_in(torch.tensor([1]), key="action")
    with pytest.raises(SpecError, match="action: values outside"):
        spec.assert_is_in(torch.tensor([2.0]), key="action")


def test_one_hot_categorical_conversion_round_trips():
    spec = OneHot(4)
    idx = torch.tensor([0, 3, 1])
    assert torch.equal(spec.to_categorical(spec.to_one_hot(idx)), idx)


def test_unknown_spec_type_in_json_is_named():
    with pytest.raises(SpecError, match="unknown spec type 'Weird'"):
        spec_from_json({"type": "Weird", "shape": []})


def test_bounded_rejects_low_above_high():
    with pytest.raises(SpecError, match="low <= high"):
        Bounded(1.0, -1.0, shape=(1,))


# --- gymnasium ---------------------------------------------------------------------

GYM_CASES = {
    "box_bounded": (spaces.Box(-1.0, 1.0, (3,), dtype=np.float32), Bounded, torch.float32, (3,)),
    "box_unbounded_float64": (
        spaces.Box(-np.inf, np.inf, (2,), dtype=np.float64),
        Unbounded,
        torch.float64,
        (2,),
    ),
    "box_pixels": (spaces.Box(0, 255, (4, 4, 3), dtype=np.uint8), Bounded, torch.uint8, (4, 4, 3)),
    "discrete": (spaces.Discrete(3), OneHot, torch.int64, (3,)),
    "multi_discrete": (spaces.MultiDiscrete([2, 5]), MultiOneHot, torch.int64, (7,)),
    "multi_binary": (spaces.MultiBinary(4), Binary, torch.int8, (4,)),
}


@pytest.mark.parametrize("name", GYM_CASES)
def test_gym_space_conversion(name):
    space, cls, dtype, shape = GYM_CASES[name]
    spec = from_gym_space(space)
    assert type(spec) is cls
    assert spec.dtype == dtype
    assert spec.shape == shape
    assert spec.is_in(spec.rand())
    assert spec_from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_gym_discrete_with_categorical_encoding():
    assert type(from_gym_space(spaces.Discrete(3), categorical_action_encoding=True)) is Categorical
    multi = from_gym_space(spaces.MultiDiscrete([2, 5]), categorical_action_encoding=True)
    assert type(multi) is MultiCategorical and multi.nvec == [2, 5]


def test_gym_float64_box_can_become_float32():
    spec = from_gym_space(spaces.Box(-1.0, 1.0, (2,), dtype=np.float64), float64_to_float32=True)
    assert spec.dtype == torch.float32


def test_gym_dict_and_tuple_become_composites():
    space = spaces.Dict(
        pos=spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        inner=spaces.Tuple([spaces.Discrete(2), spaces.MultiBinary(3)]),
    )
    spec = from_gym_space(space)
    assert isinstance(spec, Composite)
    assert isinstance(spec["inner", "0"], OneHot)
    assert isinstance(spec["inner", "1"], Binary)
    assert spec.is_in(spec.rand())
    assert spec_from_json(json.loads(json.dumps(spec.to_json()))) == spec


def test_unsupported_gym_space_is_named():
    with pytest.raises(SpecError, match="gymnasium space Text"):
        from_gym_space(spaces.Text(5))
