"""The exploration switch drives rldata's modules and tensordict's interaction type."""

from __future__ import annotations

from tensordict.nn import InteractionType
from tensordict.nn.probabilistic import interaction_type

from rldata.exploration import ExplorationType, exploration_type, is_exploring, set_exploration_type


def test_default_is_random():
    assert exploration_type() is ExplorationType.RANDOM
    assert is_exploring()


def test_context_manager_nests_and_restores():
    with set_exploration_type(ExplorationType.MEAN):
        assert exploration_type() is ExplorationType.MEAN
        assert interaction_type() is InteractionType.MEAN
        with set_exploration_type("deterministic"):
            assert exploration_type() is ExplorationType.DETERMINISTIC
            assert not is_exploring()
        assert exploration_type() is ExplorationType.MEAN
    assert exploration_type() is ExplorationType.RANDOM


def test_decorator_form():
    @set_exploration_type(ExplorationType.MODE)
    def inside():
        return exploration_type(), interaction_type()

    assert inside() == (ExplorationType.MODE, InteractionType.MODE)
    assert exploration_type() is ExplorationType.RANDOM
