"""The catalogue of a user's mistakes: each is one line naming the problem, and nothing changes.

CLI cases run ``rldata`` in-process: a non-zero exit, no traceback (the exception that
ends the command is click's own), one ``Error:`` line holding the expected words, and
every store the command touched byte-for-byte as it was. Python cases raise an
``RldataError`` (which also subclasses the builtin it refines) with a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import rldata
import rldata.stores as stores
from rldata.collectors.policies import mlp_policy, save_policy
from rldata.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    ReplayBuffer,
    SliceSampler,
    TensorDictReplayBuffer,
)
from rldata.envs import GymEnv
from rldata.errors import RldataError
from rldata.stores.format.lock import WriterLock
from rldata.testing.tamper import edit_manifest, read_manifest, snapshot
from rldata.testing.ted_factory import ted_marked, ted_transitions
from rldata_cli.main import rldata as cli


def _store(root: Path, rows: int = 30, env_id: str | None = "Pendulum-v1") -> Path:
    with stores.create(root, env_id=env_id) as w:
        w.append(ted_marked(0, rows))
    return root


def _policy(tmp: Path, **arch_changes) -> Path:
    env = GymEnv("Pendulum-v1")
    policy = mlp_policy(env.observation_spec, env.action_spec, num_cells=[8])
    path = tmp / "policy.pt"
    save_policy(policy, path)
    if arch_changes:
        payload = torch.load(path, weights_only=True)
        arch = json.loads(payload["arch"])
        for key, value in arch_changes.items():
            if value is None:
                arch.pop(key, None)
            else:
                arch[key] = value
        payload["arch"] = json.dumps(arch)
        torch.save(payload, path)
    return path


# --- CLI -------------------------------------------------------------------------------------


@dataclass
class CliCase:
    name: str
    args: Callable[[Path], list[str]]
    words: list[str]
    setup: Callable[[Path], object] = field(default=lambda tmp: None)


def _ds(tmp: Path) -> str:
    return str(tmp / "ds")


def _collect(*extra: str, out: Callable[[Path], str] = _ds) -> Callable[[Path], list[str]]:
    return lambda tmp: ["collect", "Pendulum-v1", "--frames", "20", "--out", out(tmp), *extra]


def _with_store(tmp: Path) -> None:
    _store(tmp / "ds")


def _flip_payload(tmp: Path) -> None:
    _store(tmp / "ds")
    f = tmp / "ds" / "data" / "action.memmap"
    raw = bytearray(f.read_bytes())
    raw[2] ^= 0x40
    f.write_bytes(bytes(raw))


def _locked(tmp: Path) -> WriterLock:
    _store(tmp / "ds")
    lock = WriterLock(tmp / "ds")
    lock.acquire()
    return lock  # kept alive by the case runner until the command returned


def _file_at(tmp: Path) -> None:
    (tmp / "afile").write_text("not a directory")


def _manifest_edit(**fields) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _store(tmp / "ds")
        edit_manifest(tmp / "ds", **fields)

    return setup


def _manifest_drop(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _store(tmp / "ds")
        edit_manifest(tmp / "ds", lambda m: m.pop(name))

    return setup


def _write_policy(**changes) -> Callable[[Path], None]:
    return lambda tmp: _policy(tmp, **changes)


def _bad_json_policy(tmp: Path) -> None:
    path = _policy(tmp)
    payload = torch.load(path, weights_only=True)
    payload["arch"] = "{not json"
    torch.save(payload, path)


def _no_state_dict(tmp: Path) -> None:
    path = _policy(tmp)
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]
    torch.save(payload, path)


def _pol(tmp: Path) -> str:
    return str(tmp / "policy.pt")


CLI_CASES = [
    CliCase(
        "frames zero",
        lambda t: ["collect", "Pendulum-v1", "--frames", "0", "--out", _ds(t)],
        ["frames", "0"],
    ),
    CliCase(
        "frames negative",
        lambda t: ["collect", "Pendulum-v1", "--frames", "-5", "--out", _ds(t)],
        ["frames", "-5"],
    ),
    CliCase("seed negative", _collect("--seed", "-1"), ["seed", "-1"]),
    CliCase(
        "env id with a trailing space",
        lambda t: ["collect", "Pendulum-v1 ", "--frames", "5", "--out", _ds(t)],
        ["Pendulum-v1"],
    ),
    CliCase(
        "unknown env id",
        lambda t: ["collect", "NoSuchEnv-v0", "--frames", "5", "--out", _ds(t)],
        ["NoSuchEnv-v0"],
    ),
    CliCase(
        "box2d extra missing",
        lambda t: ["collect", "LunarLander-v3", "--frames", "5", "--out", _ds(t)],
        ["box2d"],
    ),
    CliCase(
        "ale extra missing",
        lambda t: ["collect", "ALE/Pong-v5", "--frames", "5", "--out", _ds(t)],
        ["ale"],
    ),
    CliCase("unknown backend", _collect("--backend", "nope"), ["nope", "memmap"]),
    CliCase("num envs zero", _collect("--num-envs", "0"), ["--num-envs", "0"]),
    CliCase("num envs absurd", _collect("--num-envs", "100000"), ["--num-envs", "100000"]),
    CliCase("workers zero", _collect("--workers", "0"), ["workers", "0"]),
    CliCase("workers absurd", _collect("--workers", "5000"), ["workers", "5000"]),
    CliCase("commit every zero", _collect("--commit-every", "0"), ["--commit-every", "0"]),
    CliCase(
        "out under a file", _collect(out=lambda t: str(t / "afile" / "ds")), ["afile"], _file_at
    ),
    CliCase("out is a file", _collect(out=lambda t: str(t / "afile")), ["afile"], _file_at),
    CliCase("out under /proc", _collect(out=lambda t: "/proc/rldata-x"), ["/proc"]),
    CliCase(
        "existing store without a flag", _collect(), ["already exists", "--resume"], _with_store
    ),
    CliCase("resume a missing store", _collect("--resume"), ["--resume", "no rldata store"]),
    CliCase(
        "resume and force", _collect("--resume", "--force"), ["--resume", "--force"], _with_store
    ),
    CliCase(
        "resume another env's store",
        lambda t: ["collect", "CartPole-v1", "--frames", "5", "--out", _ds(t), "--resume"],
        ["Pendulum-v1", "CartPole-v1"],
        _with_store,
    ),
    CliCase("resume a corrupted store", _collect("--resume"), ["action", "sha256"], _flip_payload),
    CliCase("second writer", _collect("--resume"), ["locked"], _locked),
    CliCase(
        "force on a directory of code",
        _collect("--force"),
        ["not provably"],
        lambda t: (
            (t / "ds").mkdir(),
            (t / "ds" / "rldata.json").write_text("{}"),
            (t / "ds" / "code.py").write_text("x"),
        ),
    ),
    CliCase(
        "non-empty directory",
        _collect(),
        ["non-empty directory"],
        lambda t: ((t / "ds").mkdir(), (t / "ds" / "notes.txt").write_text("x")),
    ),
    CliCase("policy file missing", _collect("--policy", "nowhere.pt"), ["nowhere.pt"]),
    CliCase(
        "policy not a checkpoint",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt"],
        lambda t: (t / "policy.pt").write_bytes(b"garbage"),
    ),
    CliCase(
        "policy arch not JSON",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt", "arch"],
        _bad_json_policy,
    ),
    CliCase(
        "policy missing a key",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt", "num_cells"],
        _write_policy(num_cells=None),
    ),
    CliCase(
        "policy missing weights",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt", "state_dict"],
        _no_state_dict,
    ),
    CliCase(
        "policy with absurd layer sizes",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt", "num_cells"],
        _write_policy(num_cells=[200000, 200000]),
    ),
    CliCase(
        "policy with a negative layer size",
        lambda t: _collect("--policy", _pol(t))(t),
        ["policy.pt", "num_cells"],
        _write_policy(num_cells=[-4]),
    ),
    CliCase(
        "policy for another env",
        lambda t: [
            "collect",
            "MountainCarContinuous-v0",
            "--frames",
            "5",
            "--out",
            _ds(t),
            "--policy",
            _pol(t),
        ],
        ["observation"],
        _write_policy(),
    ),
    CliCase("info of a missing path", lambda t: ["info", str(t / "nowhere")], ["nowhere"]),
    CliCase("verify of a missing path", lambda t: ["verify", str(t / "nowhere")], ["nowhere"]),
    CliCase(
        "info of a directory without a manifest", lambda t: ["info", str(t)], ["no rldata store"]
    ),
    CliCase("info of a file", lambda t: ["info", str(t / "afile")], ["afile"], _file_at),
    CliCase(
        "manifest not JSON",
        lambda t: ["info", _ds(t)],
        ["not valid JSON"],
        lambda t: ((t / "ds").mkdir(), (t / "ds" / "rldata.json").write_text("{oops")),
    ),
    CliCase(
        "manifest is a directory",
        lambda t: ["verify", _ds(t)],
        ["directory"],
        lambda t: (t / "ds" / "rldata.json").mkdir(parents=True),
    ),
    CliCase(
        "manifest missing a field",
        lambda t: ["verify", _ds(t)],
        ["'written'"],
        _manifest_drop("written"),
    ),
    CliCase(
        "manifest field of the wrong type",
        lambda t: ["info", _ds(t)],
        ["'capacity'"],
        _manifest_edit(capacity="ten"),
    ),
    CliCase(
        "manifest newer major",
        lambda t: ["info", _ds(t)],
        ["2.0.0", "upgrade"],
        _manifest_edit(format_version="2.0.0"),
    ),
    CliCase(
        "deleted payload file",
        lambda t: ["verify", _ds(t)],
        ["action", "missing"],
        lambda t: (_store(t / "ds"), (t / "ds" / "data" / "action.memmap").unlink()),
    ),
    CliCase(
        "broken episode index",
        lambda t: ["info", _ds(t)],
        ["episode index"],
        lambda t: (
            _store(t / "ds"),
            (t / "ds" / read_manifest(t / "ds")["episodes"]["path"]).write_text("[1,"),
        ),
    ),
    CliCase(
        "flipped payload byte", lambda t: ["info", _ds(t)], ["action", "sha256"], _flip_payload
    ),
    CliCase(
        "unknown command option",
        lambda t: ["collect", "Pendulum-v1", "--frames", "5", "--out", _ds(t), "--nope"],
        ["--nope"],
    ),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_mistake_is_one_line_and_changes_nothing(tmp_path, case):
    held = case.setup(tmp_path)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(cli, case.args(tmp_path))
    if isinstance(held, WriterLock):
        held.release()
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    for word in case.words:
        assert word in errors[0], (word, errors[0])
    assert snapshot(tmp_path) == before


def test_a_second_writer_is_refused_before_the_env_is_built(tmp_path, monkeypatch):
    import time

    import rldata.api as api

    _store(tmp_path / "ds")
    lock = WriterLock(tmp_path / "ds")
    lock.acquire()
    built = []
    monkeypatch.setattr(api.EnvFactory, "__call__", lambda self: built.append(1))
    t0 = time.monotonic()
    result = CliRunner().invoke(cli, _collect("--resume")(tmp_path))
    lock.release()
    assert time.monotonic() - t0 < 1.0 and "locked" in result.output and built == []


# --- Python API ------------------------------------------------------------------------------


def _filled_buffer(n: int = 8) -> ReplayBuffer:
    buffer = ReplayBuffer(storage=LazyTensorStorage(16))
    buffer.extend(ted_transitions(n))
    return buffer


def _reader(tmp: Path):
    return stores.open(_store(tmp / "ds"))


API_CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("create capacity zero", lambda t: stores.create(t / "s", capacity=0), ["capacity", "0"]),
    (
        "create capacity a string",
        lambda t: stores.create(t / "s", capacity="10"),
        ["capacity", "'10'"],
    ),
    (
        "create commit_every negative",
        lambda t: stores.create(t / "s", commit_every=-1),
        ["commit_every", "-1"],
    ),
    (
        "create unknown backend",
        lambda t: stores.create(t / "s", backend="nope"),
        ["nope", "memmap"],
    ),
    ("create onto a store", lambda t: stores.create(_store(t / "s")), ["already holds"]),
    ("open mode w", lambda t: stores.open(_store(t / "s"), mode="w"), ["mode", "'w'"]),
    ("open a missing store", lambda t: stores.open(t / "nowhere"), ["nowhere"]),
    ("load a missing store", lambda t: rldata.load(t / "nowhere"), ["nowhere"]),
    ("sample minus one", lambda t: _filled_buffer().sample(-1), ["batch_size", "-1"]),
    ("sample zero", lambda t: _filled_buffer().sample(0), ["batch_size", "0"]),
    (
        "sample an empty buffer",
        lambda t: ReplayBuffer(storage=LazyTensorStorage(4)).sample(2),
        ["empty"],
    ),
    ("extend with a dict", lambda t: _filled_buffer().extend({"a": 1}), ["TensorDict"]),
    (
        "extend with another schema",
        lambda t: _filled_buffer().extend(ted_transitions(2).exclude("action")),
        ["action"],
    ),
    (
        "extend with a NaN reward",
        lambda t: _filled_buffer().extend(
            ted_transitions(2).apply(lambda x: x.float() / 0 if x.is_floating_point() else x)
        ),
        ["reward"],
    ),
    (
        "append a single row",
        lambda t: stores.create(t / "s").append(ted_marked(0, 3)[0]),
        ["batch_size=[]"],
    ),
    ("get a position never written", lambda t: _reader(t).get(torch.tensor([99])), ["position 99"]),
    ("get a negative position", lambda t: _reader(t).get(torch.tensor([-1])), ["position -1"]),
    ("episode out of range", lambda t: _reader(t).episode(99), ["episode 99"]),
    ("append to a read-only store", lambda t: _reader(t).append(ted_marked(100, 2)), ["read-only"]),
    (
        "priority of a row never written",
        lambda t: _prioritized().update_priority(torch.tensor([12]), 1.0),
        ["[0, 4)", "12"],
    ),
    ("storage of zero rows", lambda t: LazyTensorStorage(0), ["max_size", "0"]),
    ("slice length zero", lambda t: SliceSampler(slice_len=0), ["slice_len", "0"]),
    ("unknown env", lambda t: GymEnv("NoSuchEnv-v0"), ["NoSuchEnv-v0"]),
    ("env id with a space", lambda t: GymEnv("Pendulum-v1 "), ["Pendulum-v1"]),
    (
        "record zero frames",
        lambda t: rldata.record(GymEnv("Pendulum-v1"), t / "s", frames=0),
        ["frames", "0"],
    ),
    (
        "collect with a huge num_envs",
        lambda t: rldata.api.collect("Pendulum-v1", frames=5, out=str(t / "s"), num_envs=10**6),
        ["num_envs"],
    ),
    (
        "collect with a negative seed",
        lambda t: rldata.api.collect("Pendulum-v1", frames=5, out=str(t / "s"), seed=-3),
        ["seed", "-3"],
    ),
    (
        "buffer batch_size zero",
        lambda t: TensorDictReplayBuffer(storage=LazyTensorStorage(4), batch_size=0),
        ["batch_size", "0"],
    ),
    ("open a sharded parent for writing", lambda t: _sharded_append(t), ["sharded"]),
    (
        "spec json garbage",
        lambda t: __import__("rldata.specs", fromlist=["x"]).spec_from_json({"type": "Nope"}),
        ["Nope"],
    ),
]


def _prioritized():
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(16), sampler=PrioritizedSampler(16, alpha=0.6, beta=0.4)
    )
    buffer.extend(ted_transitions(4))
    return buffer


def _sharded_append(tmp: Path):
    from rldata.stores.backend import _sharded

    _store(tmp / "p" / "shard-00000")
    _sharded.write_parent(tmp / "p", ["shard-00000"])
    return stores.open(tmp / "p", mode="a")


@pytest.mark.parametrize("name,call,words", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_mistake_is_one_line(tmp_path, name, call, words):
    with pytest.raises(RldataError) as err:
        call(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_the_catalogue_is_big_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 60
