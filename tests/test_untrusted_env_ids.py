"""An env id read from data never imports code (issue 17, section 1).

``gymnasium.make("mod:Name-v1")`` imports ``mod`` first, so an env id in a store or a run
directory can name code. Every entry point that reads a store or a run is run here against
one whose env id is hostile, in every place an id is kept (a store's manifest, a run's
``config.json`` / ``summary.json``, policy metadata, Minari metadata), for two hostile ids:
a module planted next to the data (it writes a marker file when imported, and its folder
is the working directory and on ``sys.path``) and ``this`` (the standard library's Zen).

Each case asserts: no import of the module (``sys.addaudithook`` tripwire), no marker file,
and either the command's ordinary result (it reads the id as text and makes no env) or one
line naming the id and how to pass it explicitly (a non-zero exit, no traceback). The ids a
user gives (``--env mod:Id``, ``env=``) keep working, module part included.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import rldata
from rldata import stores
from rldata.env_ids import MODULE_PART, NOT_REGISTERED, env_id_problem, trusted_env_id
from rldata.errors import EnvNotFoundError, RldataError, UntrustedEnvIdError
from rldata.stores.format import manifest
from rldata.testing.tripwire import Tripwire
from rldata_cli.main import rldata as cli

EVIL = "rldata_evilmod"  # planted per test beside the data; importing it writes MARKER
MARKER = "IMPORTED"
SHIPPED = "rldata_shipped"  # a package folder planted beside the data, holding hook.py
HOSTILE = [f"{EVIL}:Pendulum-v1", f"{SHIPPED}.hook:Pendulum-v1", "this:Pendulum-v1"]
TINY = ["--hidden", "8", "--batch-size", "8", "--eval-episodes", "1", "--quiet"]


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


# --- fixtures: one clean store, run and Minari dataset; each case copies and edits them ---
@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    store, out = root / "store", root / "run"
    result = run("collect", "Pendulum-v1", "--frames", 64, "--out", store, "--quiet")
    assert result.exit_code == 0, result.output
    result = run(
        "train", "--algo", "iql", "--dataset", store, "--steps", 2, "--out", out, *TINY
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    minari = root / "minari"
    os.environ["MINARI_DATASETS_PATH"] = str(minari)
    try:
        result = run("convert", store, "minari:clean/ds-v0", "--quiet")
    finally:
        del os.environ["MINARI_DATASETS_PATH"]
    assert result.exit_code == 0, result.output
    _warm(root, store, out)
    return {"store": store, "run": out, "minari": minari}


def _warm(root: Path, store: Path, out: Path) -> None:
    """Every command once on clean data, so an import while armed is a finding."""
    import rldata.sharing  # noqa: F401

    for args in _store_commands(root / "warm", store) + _run_commands(root / "warm-run", out):
        run(*args)
    rldata.load(store)
    shutil.rmtree(root / "warm", ignore_errors=True)


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """The hostile module beside the data, importable from the working directory."""
    code = f"import pathlib\npathlib.Path({str(tmp_path / MARKER)!r}).write_text('ran')\n"
    (tmp_path / f"{EVIL}.py").write_text(code)
    (tmp_path / SHIPPED).mkdir()
    (tmp_path / SHIPPED / "hook.py").write_text(code)  # as "datasets.evil.hook" in the issue
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RLDATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    for name in (EVIL, SHIPPED, f"{SHIPPED}.hook", "this"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


# --- where a hostile id is planted ----------------------------------------------------------
def _in_manifest(path: Path, env_id: str) -> None:
    m = manifest.read(path)
    manifest.write(path, {**m, "env": {"id": env_id, "kwargs": {}}})


def _in_run_json(name: str) -> Callable[[Path, str], None]:
    def plant(run_dir: Path, env_id: str) -> None:
        data = json.loads((run_dir / name).read_text())
        for key in ("env", "eval_env") if name == "config.json" else ("eval_env",):
            data[key] = env_id
        (run_dir / name).write_text(json.dumps(data))

    return plant


def _in_config_alone(run_dir: Path, env_id: str) -> None:
    """config.json only: a run without summary.json (interrupted) is evaluated from it."""
    _in_run_json("config.json")(run_dir, env_id)
    (run_dir / "summary.json").unlink()


def _in_policy(run_dir: Path, env_id: str) -> None:
    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    payload["arch"] = json.dumps({**json.loads(payload["arch"]), "env": env_id})
    payload["env_id"] = env_id
    torch.save(payload, run_dir / "policy.pt")


def _in_minari(field: str) -> Callable[[Path, str], None]:
    def plant(dataset: Path, env_id: str) -> None:
        meta_path = dataset / "data" / "metadata.json"
        meta = json.loads(meta_path.read_text())
        spec = {"id": env_id, "entry_point": "gymnasium.envs.classic_control:PendulumEnv"}
        meta["env_spec"] = json.dumps({**spec, "kwargs": {}})
        if field == "env_spec":
            meta["rldata"].pop("env")  # the id then comes from Minari's own env_spec
        else:
            meta["rldata"]["env"] = {"id": env_id, "kwargs": {}}
        meta_path.write_text(json.dumps(meta))

    return plant


PLACES: dict[str, Callable[[Path, str], None]] = {
    "manifest": _in_manifest,
    "config.json": _in_run_json("config.json"),
    "summary.json": _in_run_json("summary.json"),
    "config.json, no summary.json": _in_config_alone,
    "policy metadata": _in_policy,
    "minari rldata.env": _in_minari("rldata"),
    "minari env_spec": _in_minari("env_spec"),
}


# --- the entry points -----------------------------------------------------------------------
def _store_commands(tmp: Path, store: Path) -> list[list[object]]:
    return [
        ["info", store],
        ["diff", store, store],
        ["report", store, "--out", tmp / "r.html"],
        ["merge", store, store, "--out", tmp / "merged"],
        ["convert", store, tmp / "copy", "--quiet"],
        ["push", store, f"file://{tmp}/remote"],
    ]


def _run_commands(tmp: Path, out: Path) -> list[list[object]]:
    return [["plot", out, "--out", tmp / "curves.png"]]


@dataclass(frozen=True)
class Entry:
    """An entry point, the data it reads, and whether a hostile id there stops it."""

    name: str
    reads: str  # "store", "run" or "minari"
    call: Callable[[Path, Path], object]  # (tmp, data) -> a CliRunner result or a value
    refuses: tuple[str, ...] = ()  # the places whose hostile id it refuses (one line)


def _with_data(fn: Callable[[Path, Path], list[object]]) -> Callable[[Path, Path], object]:
    return lambda tmp, data: run(*fn(tmp, data))


def _pull(tmp: Path, data: Path) -> object:
    result = run("push", data, f"file://{tmp}/remote")
    assert result.exit_code == 0, result.output
    return run("pull", f"file://{tmp}/remote", tmp / "pulled")


def _convert_then_train(tmp: Path, data: Path) -> object:
    result = run("convert", "minari:evil/ds-v0", tmp / "imported", "--quiet")
    assert result.exit_code == 0, result.output
    return run("train", "--algo", "iql", "--dataset", tmp / "imported", "--steps", 2,
               "--out", tmp / "r", *TINY)  # fmt: skip


# fmt: off
ENTRIES = [
    Entry("train --dataset", "store", _with_data(lambda t, d: [
        "train", "--algo", "iql", "--dataset", d, "--steps", 2, "--out", t / "r", *TINY
    ]), refuses=("manifest",)),
    Entry("rldata.api.train(dataset=)", "store",
          lambda t, d: rldata.api.train(algo="iql", dataset=str(d), steps=2, eval_episodes=1,
                                        hidden=[8], batch_size=8),
          refuses=("manifest",)),
    Entry("verify", "store", _with_data(lambda t, d: ["verify", d]), refuses=("manifest",)),
    Entry("rldata.stores.verify", "store", lambda t, d: _raise_first(stores.verify(
        stores.open(d, verify=False))), refuses=("manifest",)),
    Entry("info", "store", _with_data(lambda t, d: ["info", d])),
    Entry("diff", "store", _with_data(lambda t, d: ["diff", d, d])),
    Entry("report", "store", _with_data(lambda t, d: ["report", d, "--out", t / "r.html"])),
    Entry("merge", "store", _with_data(lambda t, d: ["merge", d, d, "--out", t / "m"])),
    Entry("convert store->store", "store",
          _with_data(lambda t, d: ["convert", d, t / "copy", "--quiet"])),
    Entry("convert store->minari", "store",
          _with_data(lambda t, d: ["convert", d, "minari:out/ds-v0", "--quiet"])),
    Entry("push + pull", "store", _pull),
    Entry("rldata.load", "store", lambda t, d: rldata.load(d)),
    Entry("rldata.open", "store", lambda t, d: rldata.open(d).close()),
    Entry("eval", "run", _with_data(lambda t, d: ["eval", d, "--episodes", 1]),
          refuses=("summary.json", "config.json, no summary.json")),
    Entry("rldata.api.evaluate", "run", lambda t, d: rldata.api.evaluate(d, episodes=1),
          refuses=("summary.json", "config.json, no summary.json")),
    Entry("train --resume", "run", _with_data(lambda t, d: [
        "train", "--resume", "--algo", "iql", "--steps", 4, "--out", d, *TINY
    ]), refuses=("config.json", "config.json, no summary.json")),
    Entry("plot", "run", _with_data(lambda t, d: ["plot", d, "--out", t / "c.png"])),
    Entry("collect --policy RUN", "run", _with_data(lambda t, d: [
        "collect", "Pendulum-v1", "--frames", 8, "--policy", d, "--out", t / "c", "--quiet"
    ])),
    Entry("convert minari->store", "minari", _with_data(
        lambda t, d: ["convert", "minari:evil/ds-v0", t / "imported", "--quiet"])),
    Entry("convert minari->store, then train", "minari", _convert_then_train,
          refuses=("minari rldata.env", "minari env_spec")),
]
# fmt: on

PLACES_READ = {
    "store": ["manifest"],
    "run": ["config.json", "summary.json", "config.json, no summary.json", "policy metadata"],
    "minari": ["minari rldata.env", "minari env_spec"],
}
CASES = [
    (entry, place, env_id)
    for entry in ENTRIES
    for place, env_id in itertools.product(PLACES_READ[entry.reads], HOSTILE)
]


def _raise_first(faults: list[str]) -> None:
    if faults:
        raise RldataError(faults[0])  # what `rldata verify` prints, on one line


def _hostile_copy(clean: dict, entry: Entry, place: str, env_id: str, tmp: Path) -> Path:
    if entry.reads == "minari":
        data = tmp / "minari" / "evil" / "ds-v0"
        shutil.copytree(clean["minari"] / "clean" / "ds-v0", data)
    else:
        data = tmp / ("hostile-store" if entry.reads == "store" else "hostile-run")
        shutil.copytree(clean[entry.reads], data)
    PLACES[place](data, env_id)
    return data


@pytest.mark.parametrize(
    "entry,place,env_id",
    CASES,
    ids=[f"{e.name}|{p}|{i.split(':')[0]}" for e, p, i in CASES],
)
def test_no_entry_point_imports_an_env_id_read_from_data(clean, planted, entry, place, env_id):
    data = _hostile_copy(clean, entry, place, env_id, planted)
    error: BaseException | None = None
    with Tripwire.armed_for():
        try:
            result = entry.call(planted, data)
        except RldataError as err:
            result, error = None, err
    module = env_id.split(":")[0].split(".")[0]
    assert Tripwire.imports(module) == [], Tripwire.events
    assert module not in sys.modules
    assert not (planted / MARKER).exists()
    output = getattr(result, "output", "") or ""
    assert "Traceback" not in output
    if place in entry.refuses:
        message = str(error) if error is not None else output.strip()
        if result is not None:
            assert result.exit_code == 1, output
            assert message.startswith("Error: "), output
        assert len(message.splitlines()) == 1, message
        assert repr(env_id) in message and MODULE_PART in message, message
        if entry.name not in ("verify", "rldata.stores.verify"):
            assert f"{env_id} (or " in message, message  # how to pass it explicitly
    else:
        assert error is None, error
        if result is not None and hasattr(result, "exit_code"):
            assert result.exit_code == 0, output


def test_every_entry_point_and_place_is_covered():
    names = {e.name.split()[0] for e in ENTRIES}
    wanted = {"train", "eval", "plot", "collect", "convert", "merge", "report", "info"}
    assert wanted | {"diff", "push", "rldata.load", "rldata.open", "verify"} <= names
    assert {p for _, p, _ in CASES} == set(PLACES)
    assert len(CASES) >= 2 * len(ENTRIES)


# --- the ids a user gives keep working ------------------------------------------------------
TRUSTED = "rldata_trustedmod"


@pytest.fixture
def trusted_module(tmp_path, monkeypatch):
    """A module the user trusts, registering an env when imported (as env packages do)."""
    env_id = f"RldataTrusted{tmp_path.name[-6:].replace('_', '')}-v0"
    (tmp_path / f"{TRUSTED}.py").write_text(
        "import gymnasium\n"
        f"if {env_id!r} not in gymnasium.registry:\n"
        f"    gymnasium.register({env_id!r}, "
        "entry_point='gymnasium.envs.classic_control:PendulumEnv', max_episode_steps=200)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, TRUSTED, raising=False)
    yield f"{TRUSTED}:{env_id}"
    import gymnasium

    gymnasium.registry.pop(env_id, None)


def test_a_module_id_given_by_the_user_works_and_is_refused_when_read_back(
    tmp_path, trusted_module
):
    store, out = tmp_path / "s", tmp_path / "r"
    result = run("collect", trusted_module, "--frames", 32, "--out", store, "--quiet")
    assert result.exit_code == 0, result.output
    with rldata.open(store) as s:
        assert s.env_id == trusted_module  # recorded as given
    train = ["train", "--algo", "iql", "--dataset", store, "--steps", 2, *TINY]
    refused = run(*train, "--out", out)
    assert refused.exit_code == 1 and f"--eval-env {trusted_module}" in refused.output
    assert not out.exists()
    result = run(*train, "--eval-env", trusted_module, "--out", out)  # the user trusts it
    assert result.exit_code == 0, result.output
    resume = ["train", "--resume", "--algo", "iql", "--steps", 4, "--out", out, *TINY]
    refused = run(*resume)  # config.json is data, even the run's own
    assert refused.exit_code == 1 and f"--eval-env {trusted_module}" in refused.output
    result = run(*resume, "--eval-env", trusted_module)  # given again: trusted
    assert result.exit_code == 0 and "4 updates" in result.output, result.output
    assert run("eval", out, "--episodes", 1).exit_code == 1  # summary.json is data
    result = run("eval", out, "--episodes", 1, "--env", trusted_module)
    assert result.exit_code == 0 and trusted_module in result.output, result.output
    assert rldata.api.evaluate(out, env=trusted_module, episodes=1)["env"] == trusted_module


def test_a_registered_id_read_from_data_is_used(tmp_path, trusted_module):
    import importlib

    importlib.import_module(TRUSTED)  # the user's code registered it
    registered = trusted_module.split(":")[1]
    store = tmp_path / "s"
    assert run("collect", registered, "--frames", 32, "--out", store, "--quiet").exit_code == 0
    result = run("verify", store)
    assert result.exit_code == 0 and result.output.startswith("ok: "), result.output
    out = tmp_path / "r"
    result = run("train", "--algo", "iql", "--dataset", store, "--steps", 2, "--out", out, *TINY)
    assert result.exit_code == 0 and registered in result.output, result.output
    import gymnasium

    gymnasium.registry.pop(registered)  # a reader without the package: a warning, not a fault
    result = run("verify", store)
    assert result.exit_code == 0, result.output
    assert f"warning: {store}: env id {registered!r}" in result.output
    assert "ok (1 warning): " in result.output


# --- the gate itself ------------------------------------------------------------------------
def _registered_sample() -> list[str]:
    from gymnasium.envs.registration import registry

    return sorted(registry)[::7]


MODULE_IDS = [
    f"{mod}:{name}"
    for mod, name in itertools.product(
        [EVIL, "this", "os", "antigravity", "a.b.c", ""], ["Pendulum-v1", "CartPole-v1", ""]
    )
]
NOT_IDS = [None, 3, 1.5, [], {}, ""]
UNREGISTERED = ["Pendulum-v999", "pendulum-v1", "Nope/Pendulum-v1", " Pendulum-v1", "\x1b[2J"]


@pytest.mark.parametrize("env_id", _registered_sample())
def test_registered_ids_pass_the_gate(env_id):
    with Tripwire.armed_for() as events:
        assert trusted_env_id(env_id, source="x") == env_id
    assert [e for e in events if e[0] == "import"] == []


@pytest.mark.parametrize("env_id", MODULE_IDS + NOT_IDS + UNREGISTERED)
def test_other_ids_are_refused_in_one_line_without_importing(env_id, planted):
    with Tripwire.armed_for() as events, pytest.raises(UntrustedEnvIdError) as err:
        trusted_env_id(env_id, source="S/rldata.json", option="--eval-env", keyword="eval_env")
    assert [e for e in events if e[0] == "import"] == []
    assert isinstance(err.value, EnvNotFoundError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert "\n" not in message and "\x1b" not in message
    assert message.startswith(f"env id {env_id!r} read from S/rldata.json ")
    assert "--eval-env " in message and "eval_env=" in message
    if isinstance(env_id, str) and ":" in env_id:
        assert env_id_problem(env_id) == MODULE_PART and MODULE_PART in message
    elif isinstance(env_id, str) and env_id:
        assert env_id_problem(env_id) == NOT_REGISTERED and NOT_REGISTERED in message
    assert not (planted / MARKER).exists()


# --- every place that makes an env is one whose id was reviewed ------------------------------
REVIEWED = {  # (file, call): count. Where each id comes from:
    ("rldata/envs/gym.py", "gymnasium.make"): 1,  # GymEnv: its caller's id
    ("rldata/envs/gym.py", "gymnasium.make_vec"): 1,
    ("rldata/envs/pixels.py", "gymnasium.make"): 1,  # PixelEnv: its caller's id
    ("rldata/envs/pixels.py", "gymnasium.make_vec"): 1,
    ("rldata/recording.py", "GymEnv"): 1,  # collect's env_id (the user's)
    ("rldata/recording.py", "PixelEnv"): 1,  # collect's env_id (the user's)
    ("rldata/collectors/inputs.py", "GymEnv"): 1,  # record(env="Id"): the user's, in Python
    ("rldata/trainers/run_eval.py", "GymEnv"): 1,  # evaluate: env= or gated
    ("rldata/trainers/setup.py", "GymEnv"): 2,  # --eval-env / --env, else the store's: gated
    ("rldata/trainers/loops.py", "GymEnv"): 1,  # cfg.env: the user's, or config.json's: gated
    # env_spec (moved from minari_export): a lookup, of an id the user gave or one checked
    # as data (env_id_problem) by its callers, never an import
    ("rldata/stores/interop/env_spec.py", "gymnasium.spec"): 1,
}
_MAKERS = {"GymEnv", "PixelEnv", "make", "make_vec", "spec", "load_env_creator", "EnvSpec"}


def _env_making_calls() -> dict[tuple[str, str], int]:
    import ast

    root = Path(__file__).resolve().parents[1]
    found: dict[tuple[str, str], int] = {}
    for path in sorted(
        [*root.joinpath("rldata").rglob("*.py"), *root.joinpath("cli").rglob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = getattr(func, "id", None) or getattr(func, "attr", None)
            base = getattr(getattr(func, "value", None), "id", "")
            if name not in _MAKERS or (isinstance(func, ast.Attribute) and base not in (
                "gymnasium", "gym", "registration"
            )):  # fmt: skip
                continue
            key = (path.relative_to(root).as_posix(), f"{base}.{name}" if base else str(name))
            found[key] = found.get(key, 0) + 1
    return found


def test_every_call_that_makes_an_env_is_reviewed():
    """A new call site may take an id read from data: route that id through
    ``rldata.env_ids.trusted_env_id``, then add the site here with where its id comes from."""
    assert _env_making_calls() == REVIEWED
