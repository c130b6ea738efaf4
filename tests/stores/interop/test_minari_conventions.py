"""Minari's conventions both ways, checked with Minari itself: descriptive metadata (author,
author_email, algorithm_name, code_permalink, description, license) travels Minari ->
rldata -> Minari; an episode the recording cut off ends truncated in the export (and open
again when read back); ``env_spec`` is exported for an env whose module is not imported
in the exporting process, from the spec the recording kept."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import gymnasium as gym
import minari
import pytest
from click.testing import CliRunner

import rldata
import rldata.stores as stores
from rldata.recording import collect
from rldata.stores.interop.convert import convert
from rldata_cli.main import rldata as cli


@pytest.fixture(autouse=True)
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _minari_pendulum(dataset_id: str, env: str | gym.Env = "Pendulum-v1", **meta: object) -> None:
    made = gym.make(env, max_episode_steps=20) if isinstance(env, str) else env
    collector = minari.DataCollector(made, record_infos=False)
    collector.reset(seed=0)
    collector.action_space.seed(0)
    for _ in range(45):
        _, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
        if terminated or truncated:
            collector.reset()
    collector.create_dataset(dataset_id=dataset_id, **meta)
    collector.close()


def test_descriptive_metadata_travels_minari_to_rldata_to_minari(tmp_path: Path) -> None:
    _minari_pendulum(
        "test/described-v0",
        algorithm_name="SAC",
        author={"Ada", "Bob"},
        author_email="ada@example.org",
        code_permalink="https://example.org/code@abc123",
        description="Pendulum swings\nfrom a random policy.",
    )
    convert("minari:test/described-v0", tmp_path / "s", backend="zarr")
    with stores.open(tmp_path / "s") as s:
        prov = s.provenance
    assert prov["author"] == ["Ada", "Bob"] and prov["author_email"] == ["ada@example.org"]
    assert prov["algorithm_name"] == "SAC"
    assert prov["code_permalink"] == "https://example.org/code@abc123"
    assert prov["description"] == "Pendulum swings\nfrom a random policy."

    info = CliRunner().invoke(cli, ["info", str(tmp_path / "s")])
    assert info.exit_code == 0, info.output
    lines = info.output.splitlines()
    assert "author       Ada, Bob" in lines and "algorithm    SAC" in lines
    assert "code link    https://example.org/code@abc123" in lines
    assert "description  Pendulum swings" in lines and "             from a random policy." in lines

    back = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "s"), "minari:test/described-back-v0", "--license", "MIT"]
    )
    assert back.exit_code == 0, back.output
    meta = minari.load_dataset("test/described-back-v0").storage.metadata
    assert meta["author"] == {"Ada", "Bob"} and meta["author_email"] == {"ada@example.org"}
    assert meta["algorithm_name"] == "SAC"
    assert meta["code_permalink"] == "https://example.org/code@abc123"
    assert meta["description"] == "Pendulum swings\nfrom a random policy."
    assert meta["license"] == "MIT"  # rldata's field, kept as an extra key


def test_metadata_given_to_convert_replaces_minaris(tmp_path: Path) -> None:
    _minari_pendulum("test/replaced-v0", author="Ada", description="old")
    rldata.api.convert("minari:test/replaced-v0", tmp_path / "s", description="new", author=["Cy"])
    with stores.open(tmp_path / "s") as s:
        assert (s.provenance["description"], s.provenance["author"]) == ("new", ["Cy"])


def test_the_episode_cut_off_by_frames_exports_truncated_and_reads_back_open(
    tmp_path: Path,
) -> None:
    """Pendulum's time limit ends an episode at 200 steps: 250 frames leave the second
    episode open in the store (neither terminated nor truncated); Minari ends every episode,
    so the export truncates it, and says so; reading the export back leaves it open again."""
    collect("Pendulum-v1", frames=250, out=str(tmp_path / "s"), seed=0)
    with stores.open(tmp_path / "s") as s:
        eps = s.episodes()
        digest = stores.content_digest(s)
    assert eps["length"].tolist() == [200, 50]
    assert not bool(eps["terminated"][-1]) and not bool(eps["truncated"][-1])

    convert(tmp_path / "s", "minari:test/cut-v0")
    ds = minari.load_dataset("test/cut-v0")
    first, last = list(ds.iterate_episodes())
    assert first.truncations[-1] and not first.terminations[-1]  # the time limit's
    assert len(last.rewards) == 50
    assert last.truncations[-1] and not last.terminations[-1]  # the recording's end
    assert not last.truncations[:-1].any()
    assert ds.storage.metadata["rldata"]["truncated_on_export"] == [1]

    convert("minari:test/cut-v0", tmp_path / "back")
    with stores.open(tmp_path / "back") as back:
        assert not bool(back.episodes()["truncated"][-1])
        assert stores.content_digest(back) == digest


_ENV_MODULE = """
import gymnasium as gym
import numpy as np


class Walk(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, size=1):
        self.size = size

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


gym.register("{env_id}", entry_point=__name__ + ":Walk", max_episode_steps=7)
"""


@pytest.fixture
def unimported_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An env registered by importing a module of the user's; ``forget()`` makes this
    process look like another one, where that module was never imported."""
    name = f"rldata_user_envs_{uuid.uuid4().hex[:8]}"
    env_id = f"RldataUserWalk{name[-8:]}-v0"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{name}.py").write_text(_ENV_MODULE.replace("{env_id}", env_id))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    __import__(name)

    def forget() -> None:
        gym.registry.pop(env_id, None)
        sys.modules.pop(name, None)

    yield name, env_id, forget
    forget()


def test_env_spec_is_exported_when_the_envs_module_is_not_imported(tmp_path, unimported_env):
    name, env_id, forget = unimported_env
    collect(env_id, frames=20, out=str(tmp_path / "s"), seed=0, env_kwargs={"size": 2})
    forget()  # convert runs where the user's module is not imported: not registered here
    assert env_id not in gym.registry
    convert(tmp_path / "s", "minari:test/user-env-v0")
    ds = minari.load_dataset("test/user-env-v0")
    spec = json.loads(ds.storage.metadata["env_spec"])
    assert spec["id"] == env_id and spec["entry_point"] == f"{name}:Walk"
    assert spec["kwargs"] == {"size": 2}
    env = ds.recover_environment()  # Minari imports the module (on the path) and makes it
    assert env.spec.id == env_id and env.unwrapped.size == 2


def test_minaris_env_spec_survives_a_round_trip_where_the_env_is_not_registered(
    tmp_path, unimported_env
):
    name, env_id, forget = unimported_env
    _minari_pendulum("test/user-v0", env=gym.make(env_id))
    forget()
    convert("minari:test/user-v0", tmp_path / "s")
    convert(tmp_path / "s", "minari:test/user-back-v0")
    meta = minari.load_dataset("test/user-back-v0").storage.metadata
    assert json.loads(meta["env_spec"])["entry_point"] == f"{name}:Walk"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"id": "RldataGhost-v0", "entry_point": "os:system"}, "not an environment class"),
        ({"id": "Pendulum-v1", "entry_point": "ghost_envs:Ghost"}, "another env's id"),
        ({"id": "RldataGhost-v0"}, "no entry point"),
    ],
)
def test_a_recorded_env_spec_is_exported_only_when_it_names_this_env_class(
    tmp_path: Path, spec: dict, why: str
) -> None:
    rldata.record(
        "Pendulum-v1",
        tmp_path / "s",
        frames=8,
        env_id="RldataGhost-v0",  # not registered here: only the recorded spec could name it
        provenance={"env_spec": json.dumps(spec)},
    )
    convert(tmp_path / "s", "minari:test/ghost-v0")
    meta = json.loads(
        (
            Path(minari.storage.get_dataset_path("test/ghost-v0")) / "data" / "metadata.json"
        ).read_text()
    )
    assert "env_spec" not in meta, why
    assert meta["rldata"]["env"]["id"] == "RldataGhost-v0"  # the id still travels
