"""Shared data is untrusted: every malicious fixture is refused with one line, and nothing is
unpickled, executed or imported while rldata looks at it.

The fixtures live in ``tests/fixtures/unsafe/`` (see its ``build.py``). A
``sys.addaudithook`` tripwire records ``pickle.find_class``, ``exec``, ``os.system``,
``subprocess.Popen`` and module imports while a loader runs; every case must record none.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import rldata
import rldata.stores as stores
from rldata.collectors.policy_checkpoint import load_policy
from rldata.errors import RldataError
from rldata.stores.interop.convert import convert
from rldata.testing.tripwire import Tripwire

HERE = Path(__file__).resolve().parent / "fixtures" / "unsafe"


def _preload() -> None:
    """Import everything a loader may import lazily, so an import while armed is a finding."""
    import h5py  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import zarr  # noqa: F401

    import rldata.api  # noqa: F401  (rldata.open resolves through it)

    for backend in stores.backends():
        stores.backend.registry.load(backend)
    import torch

    from rldata.collectors.policy_checkpoint import mlp_policy, save_policy
    from rldata.envs import GymEnv

    env = GymEnv("Pendulum-v1")
    good = HERE.parent / ".warm-policy.pt"
    save_policy(mlp_policy(env.observation_spec, env.action_spec, num_cells=[4]), good)
    load_policy(good)
    good.unlink()
    torch.load  # noqa: B018
    for d in ("manifest-dotdot", "payload-planted-pickle"):  # warm every code path once
        with contextlib.suppress(RldataError):
            stores.verify(stores.open(HERE / d, verify=False))


def _open(name: str) -> Callable[[Path], object]:
    return lambda tmp: rldata.open(HERE / name)


def _verify(name: str) -> Callable[[Path], object]:
    def run(tmp: Path) -> None:
        faults = stores.verify(stores.open(HERE / name, verify=False))
        if faults:
            raise RldataError(faults[0])  # the CLI prints this one line and exits 1

    return run


def _convert(source: str) -> Callable[[Path], object]:
    return lambda tmp: convert(source, str(tmp / "out"))


def _minari(tmp: Path) -> object:
    import os

    os.environ["MINARI_DATASETS_PATH"] = str(HERE / "minari")
    try:
        return convert("minari:evil/ds-v0", str(tmp / "out"))
    finally:
        del os.environ["MINARI_DATASETS_PATH"]


CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    ("payload path with ..", _open("manifest-dotdot"), ["action", "leaves the store"]),
    ("absolute payload path", _open("manifest-absolute"), ["action", "/etc/passwd"]),
    ("payload symlink out", _open("manifest-symlink-out"), ["outside the store"]),
    ("dtype object", _open("manifest-dtype-object"), ["dtype", "object"]),
    ("dtype naming a class", _open("manifest-dtype-pickle-class"), ["dtype"]),
    ("absurd shape", _open("manifest-absurd-shape"), ["shape"]),
    ("absurd capacity", _open("manifest-absurd-capacity"), ["capacity"]),
    ("episode index escapes", _open("manifest-episodes-escape"), ["episodes.path"]),
    ("backend named like code", _open("manifest-backend-code"), ["os.system"]),
    ("version with a command", _open("manifest-version-code"), ["format_version"]),
    ("key '..'", _open("manifest-key-traversal"), ["schema"]),
    ("shard outside the parent", _open("shards-escape"), ["shards"]),
    ("shard that is the parent", _open("shards-self"), ["shards"]),
    (
        "planted pickle in the payload",
        _verify("payload-planted-pickle"),
        ["evil.pickle", "not listed"],
    ),
    ("meta.json with a non-tensor entry", _verify("payload-meta-nontensor"), ["meta.json"]),
    ("planted pickle, read as a store", _open("payload-meta-nontensor"), ["meta.json"]),
    (
        "TorchRL dump with prefetch.pkl",
        _convert(str(HERE / "torchrl-prefetch-pkl")),
        ["torchrl-prefetch-pkl"],
    ),
    ("SB3 pickled buffer", _open("sb3-replay-buffer.pkl"), ["sb3-replay-buffer.pkl"]),
    (
        "SB3 pickled buffer, converted",
        _convert(str(HERE / "sb3-replay-buffer.pkl")),
        ["sb3-replay-buffer.pkl"],
    ),
    (
        "policy .pt holding an object",
        lambda t: load_policy(HERE / "policy-object.pt"),
        ["weights_only"],
    ),
    (
        "policy that is a raw pickle",
        lambda t: load_policy(HERE / "policy-raw-pickle.pt"),
        ["weights_only"],
    ),
    ("Minari entry point os:system", _minari, []),
    ("parquet with a Python extension type", _open("parquet-py-extension"), ["extension"]),
    ("zarr with a pickle codec", _open("zarr-pickle-codec"), ["codec"]),
    (
        "HDF5 external storage",
        _convert("d4rl:" + str(HERE / "d4rl-external-storage.hdf5")),
        ["external"],
    ),
    ("HDF5 external link", _convert("d4rl:" + str(HERE / "d4rl-external-link.hdf5")), ["link"]),
    (
        "HDF5 virtual dataset",
        _convert("d4rl:" + str(HERE / "d4rl-virtual-dataset.hdf5")),
        ["virtual"],
    ),
]


@pytest.fixture(scope="module", autouse=True)
def preloaded():
    _preload()


@pytest.mark.parametrize("name,load,words", CASES, ids=[c[0] for c in CASES])
def test_malicious_input_is_refused_without_running_anything(tmp_path, name, load, words):
    Tripwire.events = []
    Tripwire.armed = True
    try:
        with pytest.raises(RldataError) as err:
            load(tmp_path)
    finally:
        Tripwire.armed = False
    assert Tripwire.events == [], Tripwire.events
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    assert not (tmp_path / "out").exists()
    assert not Path("PWNED").exists()


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 25
    assert len([p for p in HERE.iterdir() if p.name not in ("build.py", "__pycache__")]) >= 25


def test_the_tripwire_sees_an_unpickle(tmp_path):
    import pickle

    Tripwire.events = []
    Tripwire.armed = True
    try:
        pickle.loads(pickle.dumps(Path("x")))
    finally:
        Tripwire.armed = False
    assert any(e == "pickle.find_class" for e, _ in Tripwire.events)
    shutil.rmtree(tmp_path, ignore_errors=True)
