"""The Python API as a user reaches for it (issue 18): every accepted env and policy form,
provenance on every recording path, one store behaviour across backends, merge of mixed envs,
and the parquet user's full table."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

import rldata
import rldata.api
import rldata.stores
from rldata.collectors import SyncDataCollector
from rldata.collectors.policy_checkpoint import RUN_POLICY, mlp_policy, save_policy
from rldata.envs import GymEnv
from rldata.envs.utils import RandomPolicy
from rldata.errors import ConfigError, InputTypeError

FRAMES = 60


def _pendulum_checkpoint(tmp_path):
    env = GymEnv("Pendulum-v1")
    policy = mlp_policy(env.observation_spec, env.action_spec, num_cells=(8,))
    run = tmp_path / "run"
    run.mkdir()
    save_policy(policy, run / RUN_POLICY)
    return run


ENV_FORMS = {
    "gymnasium env": lambda: gym.make("Pendulum-v1"),
    "wrapped gymnasium env": lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("Pendulum-v1")),
    "env id": lambda: "Pendulum-v1",
    "rldata env": lambda: GymEnv("Pendulum-v1"),
}


@pytest.mark.parametrize("form", sorted(ENV_FORMS))
def test_record_accepts_every_env_form(tmp_path, form):
    summary = rldata.record(ENV_FORMS[form](), tmp_path / "s", frames=FRAMES, seed=1)
    assert summary.frames == FRAMES
    with rldata.open(tmp_path / "s") as store:
        assert len(store) == FRAMES
        prov = store.provenance
        assert (store.env_id, prov["env_id"], prov["seed"]) == ("Pendulum-v1",) * 2 + (1,)
        assert prov["policy"] == "random"


def _policy_forms(tmp_path):
    env = GymEnv("Pendulum-v1")
    module = mlp_policy(env.observation_spec, env.action_spec, num_cells=(8,))
    run = _pendulum_checkpoint(tmp_path)
    return {
        "callable": (lambda obs: torch.full((1,), 0.5), 0.5),
        "numpy callable": (lambda obs: obs.numpy()[:1] * 0 + 1.25, 1.25),
        "TensorDictModule": (module, None),
        "run directory": (str(run), None),
        "policy.pt path": (run / RUN_POLICY, None),
        "random": ("random", None),
    }


@pytest.mark.parametrize(
    "form",
    ["callable", "numpy callable", "TensorDictModule", "run directory", "policy.pt path", "random"],
)
def test_record_accepts_every_policy_form(tmp_path, form):
    policy, constant = _policy_forms(tmp_path)[form]
    rldata.record(gym.make("Pendulum-v1"), tmp_path / "s", frames=FRAMES, policy=policy)
    with rldata.open(tmp_path / "s") as store:
        actions = store.column("action")
        assert actions.shape == (FRAMES, 1)
        if constant is not None:
            assert torch.all(actions == constant)
        if isinstance(policy, (str, type(tmp_path))):
            assert store.provenance["policy"] == str(policy)


def test_a_trained_policy_loads_from_the_package(tmp_path):
    run = _pendulum_checkpoint(tmp_path)
    policy = rldata.load_policy(run, env=GymEnv("Pendulum-v1"))
    td = GymEnv("Pendulum-v1").reset()
    assert policy(td)["action"].shape == (1,)


BAD = [3, 2.5, b"Pendulum-v1", ["Pendulum-v1"], {"id": "x"}, object()]


@pytest.mark.parametrize("bad", BAD, ids=lambda b: type(b).__name__)
def test_an_env_of_another_type_is_one_line_naming_it(tmp_path, bad):
    with pytest.raises(InputTypeError) as err:
        rldata.record(bad, tmp_path / "s", frames=FRAMES)
    assert type(bad).__qualname__ in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, TypeError) and isinstance(err.value, ConfigError)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("bad", BAD, ids=lambda b: type(b).__name__)
def test_a_policy_of_another_type_is_one_line_naming_it(tmp_path, bad):
    with pytest.raises(InputTypeError) as err:
        rldata.record("Pendulum-v1", tmp_path / "s", frames=FRAMES, policy=bad)
    assert type(bad).__qualname__ in str(err.value) and "\n" not in str(err.value)


def test_a_missing_run_directory_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        rldata.record("Pendulum-v1", tmp_path / "s", frames=FRAMES, policy=str(tmp_path / "no"))


# --- provenance on every path ---------------------------------------------------------------


def test_readme_collector_recording_keeps_env_policy_and_seed(tmp_path):
    env = GymEnv("Pendulum-v1")
    collector = SyncDataCollector(env, RandomPolicy(env.action_spec), frames_per_batch=20)
    rldata.record(collector, tmp_path / "s", frames=FRAMES)
    with rldata.open(tmp_path / "s") as store:
        prov = store.provenance
        assert store.env_id == prov["env_id"] == "Pendulum-v1"
        assert prov["policy"] == "random"
        assert isinstance(prov["seed"], int)


def test_a_seeded_collector_records_its_seed_and_replays(tmp_path):
    rows = []
    for name in ("a", "b"):
        env = GymEnv("Pendulum-v1")
        collector = SyncDataCollector(env, None, frames_per_batch=20)
        collector.set_seed(7)
        rldata.record(collector, tmp_path / name, frames=FRAMES)
        with rldata.open(tmp_path / name) as store:
            assert store.provenance["seed"] == 7
            rows.append(store.column("observation"))
    assert torch.equal(rows[0], rows[1])


# --- one store behaviour across backends -----------------------------------------------------

BACKENDS = [b for b in rldata.stores.backends() if b != "sharded"]


@pytest.fixture(params=BACKENDS)
def recorded(request, tmp_path):
    path = tmp_path / request.param
    rldata.record("CartPole-v1", path, frames=FRAMES, backend=request.param, seed=0)
    with rldata.open(path) as store:
        yield store


def _leaves(td):
    return {k: v for k, v in td.items(include_nested=True, leaves_only=True)}


def test_tensordict_is_every_row_on_every_backend(recorded):
    td = recorded.tensordict()
    pos = recorded.readable()
    rows = recorded.get(pos)
    assert len(pos) == FRAMES
    got, want = _leaves(td[pos]), _leaves(rows)
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("key", ["next.observation", "observation", "action", "next.reward"])
def test_column_takes_flat_and_nested_keys_alike(recorded, key):
    nested = tuple(key.split("."))
    flat, tup = recorded.column(key), recorded.column(nested)
    assert flat is not None and tup is not None
    assert torch.equal(flat, tup)
    pos = recorded.readable()
    assert torch.equal(flat[pos], recorded.get(pos).get(nested))


def test_tensordict_over_its_budget_is_one_line_naming_it(tmp_path):
    from rldata.errors import MemoryBudgetError

    rldata.record("CartPole-v1", tmp_path / "s", frames=FRAMES)  # memmap, observations once
    with rldata.open(tmp_path / "s") as store:
        if store.rows_view() is not None:
            pytest.skip("this store is memory-mapped whole: no budget applies")
        with pytest.raises(MemoryBudgetError, match="max_bytes=1;") as err:
            store.tensordict(max_bytes=1)
        assert "\n" not in str(err.value) and isinstance(err.value, MemoryError)
        assert len(store.tensordict(max_bytes=None)) == FRAMES


@pytest.mark.parametrize("method", ["episode", "episodes", "tensordict", "column"])
def test_store_reading_methods_are_documented(recorded, method):
    import inspect

    doc = inspect.getdoc(getattr(type(recorded), method)) or ""
    assert len(doc.splitlines()) >= 3, f"{type(recorded).__name__}.{method}: {doc!r}"


def test_episode_rows_match_the_episode_table(recorded):
    table = recorded.episodes()
    for i in range(len(table["length"])):
        ep = recorded.episode(i)
        assert len(ep) == int(table["length"][i])
        assert torch.isclose(ep["next", "reward"].sum().double(), table["return"][i].double())


# --- merge keeps provenance; different envs only when asked --------------------------------

ENV_IDS = ["Pendulum-v1", "CartPole-v1", "MountainCar-v0"]


def _recorded(tmp_path, env_id, name, seed):
    path = tmp_path / name
    rldata.record(env_id, path, frames=FRAMES, seed=seed)
    return str(path)


@pytest.mark.parametrize("a,b", [(a, b) for a in ENV_IDS for b in ENV_IDS if a != b])
def test_merge_of_different_envs_is_refused_naming_each(tmp_path, a, b):
    srcs = [_recorded(tmp_path, a, "a", 0), _recorded(tmp_path, b, "b", 1)]
    with pytest.raises(ConfigError) as err:
        rldata.api.merge(srcs, str(tmp_path / "m"))
    msg = str(err.value)
    assert "\n" not in msg and f"({a})" in msg and f"({b})" in msg
    assert "allow_mixed_envs" in msg
    assert not (tmp_path / "m").exists()


def test_merge_of_one_env_keeps_env_and_lists_each_source(tmp_path):
    srcs = [_recorded(tmp_path, "Pendulum-v1", n, s) for n, s in (("a", 3), ("b", 4))]
    rldata.api.merge(srcs, str(tmp_path / "m"))
    with rldata.open(tmp_path / "m") as merged:
        assert merged.env_id == merged.provenance["env_id"] == "Pendulum-v1"
        assert merged.provenance["policy"] == "random"
        origins = merged.provenance["merged_from"]
        assert [(o["env_id"], o["seed"]) for o in origins] == [
            ("Pendulum-v1", 3),
            ("Pendulum-v1", 4),
        ]


def test_merge_of_mixed_envs_when_allowed_lists_each_env(tmp_path):
    # a second id for the same dynamics: the schemas agree, the env ids do not
    if "MyPendulum-v0" not in gym.registry:
        gym.register(
            "MyPendulum-v0",
            entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
            max_episode_steps=200,
        )
    srcs = [
        _recorded(tmp_path, "Pendulum-v1", "a", 0),
        _recorded(tmp_path, "MyPendulum-v0", "b", 1),
    ]
    rldata.api.merge(srcs, str(tmp_path / "m"), allow_mixed_envs=True)
    with rldata.open(tmp_path / "m") as merged:
        assert len(merged) == 2 * FRAMES
        assert merged.env_id is None
        assert merged.provenance["env_ids"] == ["Pendulum-v1", "MyPendulum-v0"]
        origins = merged.provenance["merged_from"]
        assert [o["env_id"] for o in origins] == ["Pendulum-v1", "MyPendulum-v0"]


def test_cli_merge_takes_allow_mixed_envs(tmp_path):
    from click.testing import CliRunner

    from rldata_cli.main import rldata as cli

    srcs = [_recorded(tmp_path, "Pendulum-v1", "a", 0), _recorded(tmp_path, "CartPole-v1", "b", 1)]
    refused = CliRunner().invoke(cli, ["merge", *srcs, "--out", str(tmp_path / "m")])
    assert refused.exit_code != 0 and "--allow-mixed-envs" in refused.output
    assert "Traceback" not in refused.output


# --- parquet users: the full table, streamed, and a DuckDB view ----------------------------


def _flat(store):
    rows = store.get(store.readable())
    leaves = rows.items(include_nested=True, leaves_only=True)
    return {k if isinstance(k, str) else ".".join(k): v for k, v in leaves}


def _as_rows(column, n):
    import numpy as np

    return np.stack([np.asarray(v) for v in column]) if column.dtype == object else column


@pytest.mark.parametrize("batch_rows", [None, 1, 7, FRAMES])
def test_to_arrow_is_every_row_with_next_filled(recorded, batch_rows):
    table = recorded.to_arrow(batch_rows=batch_rows)
    want = _flat(recorded)
    assert table.num_rows == FRAMES and set(table.column_names) == set(want)
    assert table.column("next.observation").null_count == 0
    for key, values in want.items():
        got = table.column(key).to_numpy(zero_copy_only=False)
        got = _as_rows(got, FRAMES).reshape(values.shape)
        assert (got == values.numpy()).all(), key


def test_iter_arrow_streams_batches_of_at_most_batch_rows(recorded):
    batches = list(rldata.stores.iter_arrow(recorded, batch_rows=16))
    assert [b.num_rows for b in batches] == [16, 16, 16, FRAMES - 48]
    assert sum(b.num_rows for b in batches) == len(recorded)


def test_to_pandas_matches_the_rows(recorded):
    df = recorded.to_pandas()
    want = _flat(recorded)
    assert len(df) == FRAMES and set(df.columns) == set(want)
    obs = _as_rows(df["next.observation"].to_numpy(), FRAMES)
    assert (obs == want["next.observation"].numpy()).all()


def test_duckdb_view_answers_sql_over_whole_rows(recorded):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    rldata.stores.duckdb_view(con, recorded.path, "ds")
    n, total, nulls = con.execute(
        'SELECT count(*), sum("next.reward"), count(*) - count("next.observation") FROM ds'
    ).fetchone()
    assert n == FRAMES and nulls == 0
    assert total == pytest.approx(float(recorded.column("next.reward").double().sum()))


@pytest.mark.parametrize("bad", [0, -1, 2.0, "10", True])
def test_a_bad_batch_rows_is_one_line(recorded, bad):
    with pytest.raises(ConfigError, match="batch_rows must be a positive integer"):
        recorded.to_arrow(batch_rows=bad)
