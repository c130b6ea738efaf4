"""Parquet stores of narrow integers (uint8 pixels, int8/int16 actions) write, reopen and
verify: parquet keeps such values as 4-byte INT32, so a part's footer declares about four
times their numpy bytes, which the check of declared sizes must allow (and still refuse a
footer that declares far more)."""

from __future__ import annotations

import pytest
import torch

import rldata
import rldata.api
import rldata.stores as stores
from rldata.testing.ted_factory import ted_batch


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
def test_a_store_of_narrow_integer_actions_writes_reopens_and_verifies(tmp_path, dtype):
    data = ted_batch([400, 600], act_shape=(2048,), act_dtype=dtype)
    with stores.create(tmp_path / "s", backend="parquet") as w:
        w.append(data[:500])
        w.commit()  # statistics of committed rows are computed from the written part
        w.append(data[500:])
    assert rldata.api.verify(str(tmp_path / "s")) == []
    with stores.open(tmp_path / "s", mode="a") as w:  # reopened to append
        w.append(ted_batch([50], act_shape=(2048,), act_dtype=dtype, start_traj_id=2))
    got = stores.open(tmp_path / "s").get(torch.arange(1000))
    assert torch.equal(got["action"], data["action"])


def test_pixel_observations_write_and_sample(tmp_path):
    data = ted_batch([300, 300], obs_shape=(3, 32, 32), obs_dtype=torch.uint8)
    with stores.create(tmp_path / "p", backend="parquet") as w:
        w.append(data)
    batch = rldata.load(tmp_path / "p", batch_size=64).sample()
    assert batch["observation"].dtype == torch.uint8
