"""Every gymnasium space end to end, built on Minari's own ``DataCollector`` output.

For each space (as observation, and as action), a tiny registered env is recorded by
``minari.DataCollector``; the dataset is converted into an rldata store (memmap), the
store verifies, its rows equal Minari's values bit for bit, it converts to parquet and
zarr with the same content digest, loads, and exports back to a Minari dataset that
``minari.load_dataset`` opens with the same native spaces and the same values. Stores
recorded by ``rldata collect`` export native spaces too (Discrete with integers, also
from one-hot rows), with an ``env_spec`` that ``recover_environment`` makes.
"""

from __future__ import annotations

import json

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from gymnasium import spaces

import rldata
import rldata.stores as stores
from rldata import api
from rldata.recording import collect
from rldata.stores.interop.convert import convert
from rldata_cli.main import rldata as cli

LEAVES = {
    "discrete": spaces.Discrete(5),
    "discrete_start": spaces.Discrete(4, start=-2),
    "multidiscrete": spaces.MultiDiscrete([3, 4, 2]),
    "multibinary": spaces.MultiBinary(3),
    "multibinary_2d": spaces.MultiBinary([2, 3]),
    "box_f32": spaces.Box(-1.0, 1.0, (3,), dtype=np.float32),
    "box_f64": spaces.Box(-np.inf, np.inf, (2,), dtype=np.float64),
    "box_f16": spaces.Box(-2.0, 2.0, (2, 2), dtype=np.float16),
    "box_i32": spaces.Box(-7, 9, (4,), dtype=np.int32),
    "box_u8": spaces.Box(0, 255, (3, 2), dtype=np.uint8),
}
TREES = {
    # the reported bug: a Dict observation holding a Discrete
    "dict_discrete": spaces.Dict(
        {"pos": spaces.Box(-1.0, 1.0, (2,), dtype=np.float64), "mode": spaces.Discrete(21)}
    ),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), dtype=np.float32))),
    "nested": spaces.Dict(
        {
            "a": spaces.Dict({"b": spaces.MultiBinary(2), "c": spaces.MultiDiscrete([2, 5])}),
            "t": spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 3, (1,), dtype=np.int16))),
        }
    ),
}
ALL = {**LEAVES, **TREES}
OBS_DEFAULT = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
ACT_DEFAULT = spaces.Discrete(3)
# one case per space as the observation and one as the action
CASES = [("obs", name) for name in ALL] + [("act", name) for name in ALL]


class SpaceEnv(gym.Env):
    """Random values of the named spaces; an episode ends (terminated) with probability 0.15."""

    def __init__(self, obs: str = "", act: str = "") -> None:
        self.observation_space = ALL[obs] if obs else OBS_DEFAULT
        self.action_space = ALL[act] if act else ACT_DEFAULT

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(1 << 30)))
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        reward = float(self.np_random.normal())
        return (
            self.observation_space.sample(),
            reward,
            bool(self.np_random.random() < 0.15),
            False,
            {},
        )


def _env_id(role: str, name: str) -> str:
    env_id = f"RldataSpaces{role.title()}{name.title().replace('_', '')}-v0"
    if env_id not in gym.registry:
        gym.register(
            env_id,
            entry_point=f"{__name__}:SpaceEnv",
            kwargs={"obs": name} if role == "obs" else {"act": name},
            max_episode_steps=9,
        )
    return env_id


@pytest.fixture(autouse=True)
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _minari_dataset(env_id: str, dataset_id: str, steps: int = 40, **meta) -> None:
    env = minari.DataCollector(gym.make(env_id), record_infos=False)
    env.reset(seed=1)
    env.action_space.seed(2)
    for _ in range(steps):  # the last episode is left open: create_dataset truncates it
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.create_dataset(dataset_id=dataset_id, algorithm_name="random", **meta)
    env.close()


def _flat(value, key: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Minari's episode values (arrays, dicts, tuples) by rldata key."""
    if isinstance(value, dict):
        return {k: v for name, sub in value.items() for k, v in _flat(sub, (*key, name)).items()}
    if isinstance(value, tuple):
        return {k: v for i, sub in enumerate(value) for k, v in _flat(sub, (*key, str(i))).items()}
    return {".".join(key): np.asarray(value)}


def _obs(value) -> dict[str, np.ndarray]:
    return _flat(value, ()) if isinstance(value, (dict, tuple)) else {"observation": value}


def _same_episodes(a, b) -> None:
    """Two Minari datasets hold the same episodes, bit for bit (values, dtypes, flags)."""
    assert a.total_episodes == b.total_episodes and a.total_steps == b.total_steps
    for x, y in zip(a.iterate_episodes(), b.iterate_episodes(), strict=True):
        for mine, theirs in ((_obs(x.observations), _obs(y.observations)),
                             (_flat(x.actions, ("action",)), _flat(y.actions, ("action",)))):  # fmt: skip
            assert mine.keys() == theirs.keys()
            for k in mine:
                assert mine[k].dtype == theirs[k].dtype, k
                assert np.array_equal(mine[k], theirs[k]), k
        # rewards are float32 in a TED row (docs/FORMAT.md section 12): equal at that precision
        assert np.array_equal(x.rewards.astype(np.float32), y.rewards.astype(np.float32))
        assert x.terminations.tolist() == y.terminations.tolist()
        assert x.truncations.tolist() == y.truncations.tolist()


@pytest.mark.parametrize(("role", "name"), CASES, ids=[f"{r}-{n}" for r, n in CASES])
def test_a_minari_dataset_of_each_space_round_trips_bit_for_bit(tmp_path, role, name):
    env_id = _env_id(role, name)
    _minari_dataset(env_id, f"test/{role}-{name.replace('_', '-')}-v0")
    theirs = minari.load_dataset(f"test/{role}-{name.replace('_', '-')}-v0")

    convert(f"minari:test/{role}-{name.replace('_', '-')}-v0", tmp_path / "m")
    with stores.open(tmp_path / "m") as s:
        assert stores.verify(s) == []  # what `rldata info` and `rldata verify` check
        for i, ep in enumerate(theirs.iterate_episodes()):
            rows = s.episode(i)
            t = len(ep.rewards)
            for k, v in {**_obs(ep.observations), **_flat(ep.actions, ("action",))}.items():
                key = tuple(k.split("."))
                if key[0] == "action":
                    assert torch.equal(rows[key], torch.from_numpy(v)), k
                else:
                    assert torch.equal(rows[key], torch.from_numpy(v[:t])), k
                    assert torch.equal(rows[("next", *key)], torch.from_numpy(v[1:])), k
            assert rows["next", "truncated"].reshape(-1).tolist() == ep.truncations.tolist()
        digest = stores.content_digest(s)
        assert s.provenance["algorithm_name"] == "random"

    for backend in ("parquet", "zarr"):
        convert(tmp_path / "m", tmp_path / backend, backend=backend)
        with stores.open(tmp_path / backend) as other:
            assert stores.verify(other) == []
            assert stores.content_digest(other) == digest
    buffer = rldata.load(tmp_path / "zarr", batch_size=8)
    assert buffer.sample().batch_size[0] == 8

    back = f"test/{role}-{name.replace('_', '-')}-back-v0"
    convert(tmp_path / "parquet", f"minari:{back}")
    again = minari.load_dataset(back)
    assert again.observation_space == theirs.observation_space
    assert again.action_space == theirs.action_space
    _same_episodes(again, theirs)
    assert again.recover_environment().spec.id == env_id


def test_a_dict_observation_holding_a_discrete_is_an_index_spec(tmp_path):
    """The reported bug: Discrete(21) inside a Dict became a one-hot spec of shape [21]
    over int64 [] values, and `rldata info` called the store corrupt."""
    _minari_dataset(_env_id("obs", "dict_discrete"), "test/dd-v0")
    convert("minari:test/dd-v0", tmp_path / "s")
    assert api.verify(str(tmp_path / "s")) == []
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "s")])
    assert info.exit_code == 0 and "FAILED" not in info.output, info.output
    with stores.open(tmp_path / "s") as s:
        assert s.schema["mode"] == {"shape": [], "dtype": "int64"}
        assert type(s.specs["mode"]).__name__ == "Categorical" and s.specs["mode"].n == 21
        assert s.schema["pos"]["dtype"] == "float64"


RECORDABLE = ["discrete", "multidiscrete", "multibinary", "box_f32", "box_i32"]


@pytest.mark.parametrize("name", RECORDABLE)
@pytest.mark.parametrize("one_hot", [False, True], ids=["index", "one-hot"])
def test_collect_exports_the_native_action_space(tmp_path, name, one_hot):
    env_id = _env_id("act", name)
    collect(env_id, frames=30, out=str(tmp_path / "s"), seed=0, one_hot=one_hot)
    with stores.open(tmp_path / "s") as s:
        assert stores.verify(s) == []
        actions = s.column("action").numpy()
        spec = s.specs["action"]
    if name == "discrete":  # an index by default, one-hot on request
        assert actions.shape == ((30, 5) if one_hot else (30,))
        assert type(spec).__name__ == ("OneHot" if one_hot else "Categorical")
    convert(tmp_path / "s", "minari:test/recorded-v0")
    ds = minari.load_dataset("test/recorded-v0")
    assert ds.action_space == LEAVES[name]
    got = np.concatenate([ep.actions for ep in ds.iterate_episodes()])
    want = actions.argmax(-1) if one_hot and name == "discrete" else actions
    if name == "multidiscrete" and one_hot:
        want = np.stack([p.argmax(-1) for p in np.split(actions, [3, 7], -1)], -1)
    assert got.dtype == np.dtype(ds.action_space.dtype) and np.array_equal(got, want)
    eps = list(ds.iterate_episodes())
    assert eps[-1].terminations[-1] or eps[-1].truncations[-1]  # the cut episode ends truncated
    assert ds.recover_environment().spec.id == env_id


def _as_recorded(space):
    """A space as ``rldata collect`` records it: float64 Boxes as float32 (GymEnv's
    observations, as networks take them)."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: _as_recorded(v) for k, v in space.spaces.items()})
    if isinstance(space, spaces.Tuple):
        return spaces.Tuple([_as_recorded(v) for v in space.spaces])
    if isinstance(space, spaces.Box) and space.dtype == np.float64:
        return spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32), space.shape)
    return space


@pytest.mark.parametrize("name", list(ALL))
def test_collect_records_every_observation_space(tmp_path, name):
    env_id = _env_id("obs", name)
    collect(env_id, frames=12, out=str(tmp_path / "s"), seed=0)
    with stores.open(tmp_path / "s") as s:
        assert stores.verify(s) == []
        digest = stores.content_digest(s)
    convert(tmp_path / "s", "minari:test/obs-v0")
    ds = minari.load_dataset("test/obs-v0")
    assert ds.observation_space == _as_recorded(ALL[name])
    convert("minari:test/obs-v0", tmp_path / "back", backend="zarr")
    with stores.open(tmp_path / "back") as back:
        assert stores.content_digest(back) == digest  # recorded -> Minari -> rldata: lossless


@pytest.mark.parametrize("num_envs", [1, 2])
@pytest.mark.parametrize("name", list(ALL))
def test_collect_records_every_action_space(tmp_path, name, num_envs):
    """Dict and Tuple actions too: their entries are stored under ``action.<key>``."""
    env_id = _env_id("act", name)
    collect(env_id, frames=12, out=str(tmp_path / "s"), seed=0, num_envs=num_envs)
    with stores.open(tmp_path / "s") as s:
        assert stores.verify(s) == []
        digest = stores.content_digest(s)
    convert(tmp_path / "s", "minari:test/act-v0")
    ds = minari.load_dataset("test/act-v0")
    assert ds.action_space == _as_recorded(ALL[name])
    assert all(ds.action_space.contains(_pick(ep.actions, 0)) for ep in ds.iterate_episodes())
    convert("minari:test/act-v0", tmp_path / "back", backend="parquet")
    with stores.open(tmp_path / "back") as back:
        assert stores.content_digest(back) == digest


def _pick(value, i):
    """Step ``i`` of an episode's (nested) actions, as gymnasium's value."""
    if isinstance(value, dict):
        return {k: _pick(v, i) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_pick(v, i) for v in value)
    return value[i]


def test_descriptive_metadata_travels_both_ways(tmp_path):
    _minari_dataset(
        _env_id("obs", "box_f32"), "test/card-v0", author="Ada", author_email="ada@x",
        code_permalink="https://example.org/code", description="random walk",
    )  # fmt: skip
    convert("minari:test/card-v0", tmp_path / "s")
    with stores.open(tmp_path / "s") as s:
        prov = s.provenance
    assert prov["author"] == ["Ada"] and prov["author_email"] == ["ada@x"]
    assert prov["description"] == "random walk" and prov["algorithm_name"] == "random"
    assert prov["code_permalink"] == "https://example.org/code"
    convert(tmp_path / "s", "minari:test/card-back-v0")
    meta = minari.load_dataset("test/card-back-v0").storage.metadata
    assert meta["author"] == {"Ada"} and meta["description"] == "random walk"
    assert meta["algorithm_name"] == "random"
    assert json.loads(meta["env_spec"])["id"] == _env_id("obs", "box_f32")


@pytest.mark.parametrize("entry", ["string", "class", "local class"])
def test_env_spec_is_exported_for_a_registered_env_with_its_kwargs(tmp_path, entry):
    """env_spec used to be dropped whenever the store had env kwargs; a class entry point is
    named module:Class; a class made inside a function (no import reaches it) gets none."""

    class Local(SpaceEnv):
        pass

    point = {"string": f"{__name__}:SpaceEnv", "class": SpaceEnv, "local class": Local}[entry]
    env_id = f"RldataSpacesEntry{entry.title().replace(' ', '')}-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=point, max_episode_steps=5)
    collect(env_id, frames=12, out=str(tmp_path / "s"), seed=0, env_kwargs={"act": "multibinary"})
    convert(tmp_path / "s", "minari:test/entry-v0")
    ds = minari.load_dataset("test/entry-v0")
    meta = ds.storage.metadata
    if entry == "local class":
        assert "env_spec" not in meta
        convert("minari:test/entry-v0", tmp_path / "back")  # and the export reads back
        return
    assert json.loads(meta["env_spec"])["kwargs"] == {"act": "multibinary"}
    env = ds.recover_environment()
    assert env.spec.id == env_id and env.action_space == LEAVES["multibinary"]
