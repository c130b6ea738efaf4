"""Every gymnasium space, drawn by hypothesis: recorded and read back equal, or refused in
one line.

Spaces are drawn over every kind gymnasium has (Box with infinite bounds, 0-size and 3-D
shapes; Discrete with a start; MultiDiscrete with 1- to 3-D ``nvec`` and a start;
MultiBinary; Text; Sequence; Graph; OneOf) and nested in Dict and Tuple spaces (empty ones
included). Each space is an env's observation space (its action a Box), then its action
space (its observation a Box), and ``rldata collect`` records the env through the CLI.
The run either succeeds, and the store's observations are the ones the env emitted (dtype
and shape kept, a 2-D MultiDiscrete stays 2-D) and every action the env received lay in
its space; or it is one ``Error:`` line, exit 1, no traceback, and no store left behind.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gymnasium import spaces as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import rldata
from rldata_cli.main import rldata as cli

FRAMES = 12
BOX = sp.Box(-1, 1, (2,), np.float32)


LOGS: dict[str, list[dict]] = {}
"""Per env id, one log per env instance made: the observations that start a transition
(``rows``) and the actions outside the action space the env was given (``bad_actions``)."""


class FamilyEnv(gym.Env):
    """Emits samples of its observation space; logs what it emitted and received."""

    def __init__(self, obs: Any = BOX, act: Any = BOX, name: str = "") -> None:
        self.observation_space, self.action_space = obs, act
        self.log: dict = {"rows": [], "bad_actions": [], "steps": 0}
        LOGS.setdefault(name, []).append(self.log)
        self.t = 0

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.observation_space.seed(seed)
        obs = self.observation_space.sample()
        self.log["rows"].append(obs)
        return obs, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            self.log["bad_actions"].append(action)
        self.log["steps"] += 1
        self.t += 1
        obs = self.observation_space.sample()
        done = self.t >= 5
        if not done:
            self.log["rows"].append(obs)
        return obs, 1.0, done, False, {}


_ids = itertools.count()


def _register(obs: Any, act: Any) -> str:
    env_id = f"rldata_family/space-{next(_ids)}-v0"
    gym.register(env_id, entry_point=FamilyEnv, kwargs={"obs": obs, "act": act, "name": env_id})
    return env_id


def _stepped(env_id: str) -> dict:
    """The log of the env instance that recorded (the one that was stepped)."""
    logs = [log for log in LOGS.pop(env_id, []) if log["steps"]]
    assert len(logs) == 1, len(logs)
    return logs[0]


# --- the spaces -----------------------------------------------------------------------------
SHAPES = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)
NONEMPTY = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)


@st.composite
def boxes(draw: st.DrawFn) -> sp.Box:
    shape = draw(SHAPES)
    if draw(st.booleans()):
        dtype = draw(st.sampled_from([np.int32, np.uint8, np.int64]))
        return sp.Box(0, draw(st.integers(1, 100)), shape, dtype)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    low = draw(st.sampled_from([-np.inf, -1.0, 0.0]))
    high = draw(st.sampled_from([np.inf, 1.0, 5.0]))
    return sp.Box(low, high, shape, dtype)


@st.composite
def multi_discretes(draw: st.DrawFn) -> sp.MultiDiscrete:
    shape = draw(NONEMPTY)
    nvec = np.array(draw(st.lists(st.integers(1, 5), min_size=int(np.prod(shape)),
                                  max_size=int(np.prod(shape))))).reshape(shape)  # fmt: skip
    start = None
    if draw(st.booleans()):
        start = np.full(shape, draw(st.integers(-3, 3)))
    return sp.MultiDiscrete(nvec, start=start)


LEAVES = st.one_of(
    boxes(),
    st.builds(sp.Discrete, st.integers(1, 6), start=st.integers(-3, 3)),
    multi_discretes(),
    st.builds(sp.MultiBinary, NONEMPTY.map(list)),
    st.builds(sp.Text, st.integers(1, 6)),
    st.builds(sp.Sequence, st.just(BOX)),
    st.builds(sp.Graph, node_space=st.just(BOX), edge_space=st.none()),
    st.builds(lambda a, b: sp.OneOf((a, b)), st.just(sp.Discrete(2)), st.just(BOX)),
    st.sampled_from([sp.Dict({}), sp.Tuple(())]),  # empty, also when nested
)
KEYS = st.sampled_from(["a", "b", "obs", "x_1", "next", "a.b", "K"])


def _nest(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.dictionaries(KEYS, children, min_size=1, max_size=3).map(sp.Dict),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: sp.Tuple(tuple(xs))),
    )


SPACES = st.recursive(LEAVES, _nest, max_leaves=5)


# --- checks ---------------------------------------------------------------------------------
def _leaves(value: Any, space: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """A gymnasium value as ``{key path: numpy array}``, the keys as rldata stores them."""
    if isinstance(space, sp.Dict):
        out: dict[tuple[str, ...], Any] = {}
        for k, sub in space.spaces.items():
            out.update(_leaves(value[k], sub, (*prefix, k)))
        return out
    if isinstance(space, sp.Tuple):
        out = {}
        for i, sub in enumerate(space.spaces):
            out.update(_leaves(value[i], sub, (*prefix, str(i))))
        return out
    return {prefix or ("observation",): np.asarray(value)}


def _collect(env_id: str, out: Path) -> Any:
    args = ["collect", env_id, "--frames", FRAMES, "--out", out, "--seed", "0", "--quiet"]
    return CliRunner().invoke(cli, [str(a) for a in args])


def _refused_in_one_line(result: Any, out: Path) -> None:
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    assert not out.exists()  # refused before a store was made


def _check(obs: Any, act: Any, observed: Any) -> None:
    env_id = _register(obs, act)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s"
            result = _collect(env_id, out)
            if result.exit_code != 0:
                _refused_in_one_line(result, out)
                return
            assert result.exception is None, repr(result.exception)
            log = _stepped(env_id)
            assert log["bad_actions"] == []  # every action the env got lay in its space
            rows = rldata.load(out)[:FRAMES]
            emitted = log["rows"][:FRAMES]
            for i, value in enumerate(emitted):
                for key, want in _leaves(value, observed).items():
                    got = rows[i].get(key).numpy()
                    assert got.shape == want.shape, (key, got.shape, want.shape)
                    cast = want.astype(got.dtype)
                    assert np.array_equal(got, cast, equal_nan=True), (key, got, want)
            assert CliRunner().invoke(cli, ["verify", str(out)]).exit_code == 0
    finally:
        gym.registry.pop(env_id, None)
        LOGS.pop(env_id, None)


FAMILY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


_SCALAR = sp.Box(-np.inf, np.inf, (), np.float32)


@FAMILY
@given(space=SPACES)
# entries named like TED keys (drawn in CI): "next" mixed with the next observation
@example(space=sp.Dict({"a": _SCALAR, "next": sp.Dict({"a": _SCALAR})}))
@example(space=sp.Dict({"a": sp.Tuple([_SCALAR]), "next": sp.Dict({"a": _SCALAR})}))
@example(space=sp.Dict({"a": sp.Box(0, 1, (), np.int32), "next": sp.Dict({"a": sp.Discrete(1)})}))
def test_any_observation_space_is_recorded_and_read_back_equal_or_refused(space: Any) -> None:
    _check(space, BOX, space)


@pytest.mark.parametrize(
    "name", ["next", "action", "done", "terminated", "truncated", "reward", "collector"]
)
def test_an_observation_entry_named_like_a_ted_key_is_refused_in_one_line(name: str) -> None:
    env_id = _register(sp.Dict({"x": _SCALAR, name: _SCALAR}), BOX)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s"
            result = _collect(env_id, out)
            _refused_in_one_line(result, out)
            assert repr(name) in result.stderr and "TED" in result.stderr
    finally:
        gym.registry.pop(env_id, None)
        LOGS.pop(env_id, None)


@FAMILY
@given(space=SPACES)
def test_any_action_space_is_recorded_within_the_space_or_refused(space: Any) -> None:
    _check(BOX, space, BOX)


def test_a_2d_multidiscrete_keeps_its_shape_in_the_store() -> None:
    space = sp.MultiDiscrete([[2, 3, 4], [5, 6, 7]])
    env_id = _register(space, space)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s"
            assert _collect(env_id, out).exit_code == 0
            log = _stepped(env_id)
            store = rldata.load(out)
            assert store[:4].get("observation").shape == torch.Size([4, 2, 3])
            assert store[:4].get("action").shape == torch.Size([4, 2, 3])
            assert log["bad_actions"] == []
    finally:
        gym.registry.pop(env_id, None)
        LOGS.pop(env_id, None)


def test_an_empty_dict_space_is_one_line_naming_it() -> None:
    env_id = _register(sp.Dict({}), BOX)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s"
            result = _collect(env_id, out)
            _refused_in_one_line(result, out)
            assert "Dict" in result.stderr and "empty" in result.stderr, result.stderr
    finally:
        gym.registry.pop(env_id, None)
        LOGS.pop(env_id, None)
