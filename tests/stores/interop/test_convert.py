"""``convert``: lossless between every pair of backends; D4RL and TorchRL sources; refusals."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tensordict import TensorDict

import rldata.stores as stores
from rldata.errors import ConfigError, CorruptStoreError, StoreExistsError, TedFormatError
from rldata.specs import Bounded, Composite
from rldata.stores.interop.convert import convert
from rldata.testing.store_contract import assert_rows_equal
from rldata.testing.ted_factory import marked_serial, ted_batch, ted_marked
from rldata_cli.main import rldata

BACKENDS = ["memmap", "zarr", "parquet"]
SPECS = Composite(
    {"observation": Bounded(-1.0, 1.0, shape=(3,)), "action": Bounded(-2.0, 2.0, shape=(1,))}
)


def _source(path, backend, **kwargs):
    data = ted_batch([5, 1, 7, 4], start_traj_id=3, truncated=True, extra=True)
    with stores.create(
        path,
        backend=backend,
        specs=SPECS,
        env_id="Pendulum-v1",
        env_kwargs={"g": 9.0},
        provenance={"policy": "random", "seed": 7},
        **kwargs,
    ) as w:
        w.append(data[:6])
        w.append(data[6:])
    return data


@pytest.mark.parametrize("src_backend,dst_backend", list(itertools.product(BACKENDS, BACKENDS)))
def test_every_pair_is_lossless(tmp_path, src_backend, dst_backend):
    data = _source(tmp_path / "src", src_backend)
    summary = convert(tmp_path / "src", tmp_path / "dst", backend=dst_backend)
    assert (summary.rows, summary.episodes, summary.backend) == (17, 4, dst_backend)
    a, b = stores.open(tmp_path / "src"), stores.open(tmp_path / "dst")
    assert b.backend == dst_backend
    assert b.schema == a.schema  # every key, dtype and shape, extras included
    assert_rows_equal(b.get(b.readable()), data)
    assert stores.content_digest(a) == stores.content_digest(b)
    assert b.manifest["specs"] == a.manifest["specs"] == SPECS.to_json()
    assert (b.env_id, b.env_kwargs) == ("Pendulum-v1", {"g": 9.0})
    for key in ("traj_id", "start", "length", "terminated", "truncated", "return"):
        assert torch.equal(b.episodes()[key], a.episodes()[key]), key
    prov = b.provenance
    assert prov["policy"] == "random" and prov["seed"] == 7
    assert prov["conversions"][-1]["from_backend"] == src_backend
    assert prov["conversions"][-1]["to_backend"] == dst_backend
    assert stores.verify(b) == []


def test_conversions_accumulate_in_provenance(tmp_path):
    _source(tmp_path / "a", "memmap")
    convert(tmp_path / "a", tmp_path / "b", backend="zarr")
    convert(tmp_path / "b", tmp_path / "c", backend="parquet")
    chain = stores.open(tmp_path / "c").provenance["conversions"]
    assert [c["to_backend"] for c in chain] == ["zarr", "parquet"]


def test_a_ring_keeps_its_capacity_where_the_backend_has_rings(tmp_path):
    with stores.create(tmp_path / "ring", capacity=10) as w:
        w.append(ted_marked(0, 25))
    convert(tmp_path / "ring", tmp_path / "z", backend="zarr")
    convert(tmp_path / "ring", tmp_path / "p", backend="parquet")  # append-only: same rows
    for name, cap in (("z", 10), ("p", None)):
        s = stores.open(tmp_path / name)
        assert s.capacity == cap
        assert marked_serial(s.get(s.readable())).tolist() == list(range(15, 25))


def test_default_backend_is_the_sources(tmp_path):
    _source(tmp_path / "a", "parquet")
    assert convert(tmp_path / "a", tmp_path / "b").backend == "parquet"


def test_existing_destination_is_refused_and_unchanged(tmp_path):
    _source(tmp_path / "a", "memmap")
    _source(tmp_path / "b", "zarr")
    before = sorted(p.name for p in (tmp_path / "b").rglob("*"))
    digest = stores.content_digest(stores.open(tmp_path / "b"))
    with pytest.raises(StoreExistsError, match="already exists") as info:
        convert(tmp_path / "a", tmp_path / "b", backend="memmap")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in (tmp_path / "b").rglob("*")) == before
    assert stores.content_digest(stores.open(tmp_path / "b")) == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary left


def test_a_store_onto_itself_is_refused(tmp_path):
    _source(tmp_path / "a", "memmap")
    with pytest.raises(ConfigError, match="the source itself"):
        convert(tmp_path / "a", tmp_path / "a" / ".." / "a", backend="zarr")
    assert stores.verify(stores.open(tmp_path / "a")) == []


def test_d4rl_file_is_a_source(tmp_path):
    rng = np.random.default_rng(0)
    n = 12
    obs = rng.standard_normal((n, 3)).astype(np.float32)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    terminals[4], timeouts[8] = True, True  # episodes [0..4], [5..8], [9..11] (unfinished)
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["observations"] = obs
        f["actions"] = rng.standard_normal((n, 1)).astype(np.float32)
        f["rewards"] = np.arange(n, dtype=np.float64)
        f["terminals"] = terminals
        f["timeouts"] = timeouts
    convert(f"d4rl:{tmp_path / 'd.hdf5'}", tmp_path / "s", backend="zarr")
    s = stores.open(tmp_path / "s")
    rows = s.get(s.readable())
    # each episode's last row has no stored next observation: dropped, as D4RL does
    kept = [0, 1, 2, 3, 5, 6, 7, 9, 10]
    assert rows["next", "reward"].reshape(-1).tolist() == [float(i) for i in kept]
    assert torch.equal(rows["observation"], torch.from_numpy(obs[kept]))
    assert torch.equal(rows["next", "observation"], torch.from_numpy(obs[[i + 1 for i in kept]]))
    assert s.episodes()["length"].tolist() == [4, 3, 2]
    assert rows["collector", "traj_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert stores.verify(s) == []


def test_torchrl_memmap_storage_is_a_source_without_unpickling(tmp_path):
    data = ted_batch([4, 3], extra=True)
    # what TorchRL's LazyMemmapStorage.dumps leaves: a tensordict memmap plus storage_metadata.json
    full = TensorDict({}, batch_size=[10])
    for key, value in data.items(include_nested=True, leaves_only=True):
        full.set(key, torch.zeros((10, *value.shape[1:]), dtype=value.dtype))
    full[:7] = data
    full.memmap(tmp_path / "trl")
    (tmp_path / "trl" / "storage_metadata.json").write_text(
        json.dumps({"metadata": {}, "is_pytree": False, "len": 7})
    )
    assert not list((tmp_path / "trl").rglob("*.pkl"))
    convert(tmp_path / "trl", tmp_path / "s", backend="parquet")
    s = stores.open(tmp_path / "s")
    assert_rows_equal(s.get(s.readable()), data)


def test_torchrl_storage_without_traj_ids_is_refused(tmp_path):
    data = ted_batch([3]).exclude(("collector", "traj_ids"))
    data.memmap(tmp_path / "trl")
    with pytest.raises(TedFormatError, match="traj_ids"):
        convert(tmp_path / "trl", tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_cli_convert_and_its_one_line_refusal(tmp_path):
    _source(tmp_path / "a", "memmap")
    runner = CliRunner()
    result = runner.invoke(
        rldata,
        ["convert", str(tmp_path / "a"), str(tmp_path / "b"), "--backend", "zarr", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "converted 17 rows (4 episodes)" in result.output and "[zarr]" in result.output
    again = runner.invoke(rldata, ["convert", str(tmp_path / "a"), str(tmp_path / "b")])
    assert again.exit_code == 1
    assert "already exists" in again.output and "Traceback" not in again.output
    assert len(again.output.strip().splitlines()) == 1


@pytest.mark.parametrize("dst", ["store", "minari"])
def test_a_corrupted_source_is_refused_and_nothing_is_placed(tmp_path, monkeypatch, dst):
    """The source is checked on its own handle while the copy is made; the copy is placed
    only once the check passed."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    _source(tmp_path / "src", "memmap")
    f = tmp_path / "src" / "data" / "action.memmap"
    raw = bytearray(f.read_bytes())
    raw[5] ^= 0x04
    f.write_bytes(bytes(raw))
    target = "minari:t/corrupt-v0" if dst == "minari" else str(tmp_path / "dst")
    with pytest.raises(CorruptStoreError, match="action"):
        convert(tmp_path / "src", target)
    placed = tmp_path / "minari" / "t" / "corrupt-v0" if dst == "minari" else tmp_path / "dst"
    assert not placed.exists()
    leftovers = [p.name for p in placed.parent.iterdir()] if placed.parent.exists() else []
    assert not [n for n in leftovers if "tmp-convert" in n]
