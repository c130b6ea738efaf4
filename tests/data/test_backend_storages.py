"""ZarrStorage, ParquetStorage and H5Storage in the walkthrough's storage slot."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.data.replay_buffers import H5Storage, ParquetStorage, ReplayBuffer, ZarrStorage
from rldata.errors import ConfigError
from rldata.stores.interop.convert import convert
from rldata.testing.ted_factory import marked_serial, ted_marked


def test_zarr_storage_is_a_ring_buffer(tmp_path):
    buffer = ReplayBuffer(storage=ZarrStorage(max_size=50, scratch_dir=tmp_path / "z"))
    for s in range(0, 120, 30):
        buffer.extend(ted_marked(s, 30))
    assert len(buffer) == 50
    batch = buffer.sample(32)
    assert batch.batch_size == torch.Size([32]) and bool((marked_serial(batch) >= 70).all())
    buffer.storage.commit()
    assert stores.open(tmp_path / "z").backend == "zarr"


def test_parquet_storage_appends_and_refuses_a_ring(tmp_path):
    buffer = ReplayBuffer(storage=ParquetStorage(scratch_dir=tmp_path / "p"))
    buffer.extend(ted_marked(0, 40))
    assert len(buffer) == 40 and buffer.sample(16).batch_size == torch.Size([16])
    with pytest.raises(ConfigError, match="append-only"):
        ParquetStorage(max_size=10)


def test_h5_storage_samples_a_minari_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with stores.create(tmp_path / "s") as w:
        w.append(ted_marked(0, 30))
    convert(tmp_path / "s", "minari:rldata/h5-v0")
    buffer = ReplayBuffer(storage=H5Storage("minari:rldata/h5-v0"), batch_size=8)
    assert len(buffer) == 30
    batch = buffer.sample()
    serial = marked_serial(batch)
    assert torch.equal(batch["observation"], ted_marked(0, 30)["observation"][serial])
