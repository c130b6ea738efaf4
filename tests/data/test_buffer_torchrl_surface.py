"""The TorchRL replay-buffer names users port code with (docs/TORCHRL.md, one test per row)."""

from __future__ import annotations

import json

import pytest
import torch

from rldata.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    TensorDictReplayBuffer,
    load,
)
from rldata.errors import ConfigError, RowIndexError, StoreNotFoundError
from rldata.testing import ted_transitions

STORAGES = {
    "memory": lambda cap, tmp: LazyTensorStorage(cap),
    "memmap": lambda cap, tmp: LazyMemmapStorage(cap, scratch_dir=tmp / "scratch"),
}


@pytest.fixture(params=sorted(STORAGES))
def make_storage(request, tmp_path):
    return lambda cap: STORAGES[request.param](cap, tmp_path)


def obs(td) -> torch.Tensor:
    return td["observation"]


def test_rb_slice_int_and_tensor_index_read_storage_positions(make_storage):
    rb = ReplayBuffer(storage=make_storage(100))
    data = ted_transitions(30)
    rb.extend(data)
    assert torch.equal(obs(rb[:10]), obs(data[:10]))
    assert rb[-1].batch_size == torch.Size([])
    assert torch.equal(obs(rb[-1]), obs(data[29]))
    assert torch.equal(obs(rb[torch.tensor([3, 5])]), obs(data[torch.tensor([3, 5])]))
    assert torch.equal(obs(rb[[0, 2]]), obs(data[torch.tensor([0, 2])]))
    with pytest.raises(RowIndexError, match=r"\[-30, 30\)"):
        rb[30]


def test_storage_getitem_len_and_max_size(make_storage):
    rb = ReplayBuffer(storage=make_storage(50))
    data = ted_transitions(20)
    rb.extend(data)
    assert len(rb.storage) == 20 and rb.storage.max_size == 50
    assert torch.equal(obs(rb.storage[5:7]), obs(data[5:7]))
    assert torch.equal(obs(rb.storage[4]), obs(data[4]))


def test_storage_set_and_rb_setitem_overwrite_checked_rows():
    rb = ReplayBuffer(storage=LazyTensorStorage(50))
    rb.extend(ted_transitions(20))
    new = ted_transitions(2)
    new["observation"] += 100.0
    rb[[3, 4]] = new
    assert torch.equal(obs(rb[3:5]), obs(new))
    rb.storage.set(0, new[0])
    assert torch.equal(obs(rb[0]), obs(new[0]))
    assert len(rb) == 20


def test_a_store_backed_storage_refuses_set(tmp_path):
    rb = ReplayBuffer(storage=LazyMemmapStorage(50, scratch_dir=tmp_path / "s"))
    rb.extend(ted_transitions(20))
    with pytest.raises(ConfigError, match="only appends"):
        rb[0] = ted_transitions(1)[0]


def test_write_count_counts_every_row_written(make_storage):
    rb = ReplayBuffer(storage=make_storage(16))
    rb.extend(ted_transitions(10))
    rb.add(ted_transitions(1, start_traj_id=1)[0])
    rb.extend(ted_transitions(10, start_traj_id=2))  # wraps the ring: write_count keeps counting
    assert rb.write_count == 21 and len(rb) == 16


def test_append_and_insert_transform_run_in_order_on_reads():
    rb = ReplayBuffer(storage=LazyTensorStorage(100), batch_size=8)
    rb.extend(ted_transitions(20))

    def add_one(td):
        td["observation"] = td["observation"] + 1
        return td

    def double(td):
        td["observation"] = td["observation"] * 2
        return td

    assert rb.append_transform(double) is rb
    rb.insert_transform(0, add_one)  # (x + 1) * 2
    raw = rb.storage[:4]
    assert torch.equal(obs(rb[:4]), (obs(raw) + 1) * 2)
    batch = rb.sample()
    assert batch.batch_size == torch.Size([8])


def test_append_transform_invert_runs_on_writes():
    rb = ReplayBuffer(storage=LazyTensorStorage(100))

    def shift(td):
        td = td.clone()
        td["observation"] = td["observation"] + 10
        return td

    rb.append_transform(shift, invert=True)
    data = ted_transitions(5)
    rb.extend(data)
    assert torch.equal(obs(rb.storage[:5]), obs(data) + 10)


def test_next_samples_the_default_batch_size():
    rb = ReplayBuffer(storage=LazyTensorStorage(100), batch_size=4)
    rb.extend(ted_transitions(20))
    assert rb.next().batch_size == torch.Size([4])


def test_state_dict_round_trips_rows_cursor_priorities_and_count(tmp_path):
    def make():
        return TensorDictReplayBuffer(
            storage=LazyTensorStorage(16), sampler=PrioritizedSampler(16, alpha=0.7, beta=0.5)
        )

    rb = make()
    rb.extend(ted_transitions(20))  # wrapped ring
    rb.update_priority(torch.tensor([0, 1]), torch.tensor([5.0, 0.1]))
    path = tmp_path / "rb.pt"
    torch.save(rb.state_dict(), path)
    other = make()
    other.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(obs(other[:]), obs(rb[:]))
    assert other.storage.cursor == rb.storage.cursor
    assert other.write_count == 20
    assert torch.equal(other.sampler.state_dict()["leaves"], rb.sampler.state_dict()["leaves"])
    other.extend(ted_transitions(2, start_traj_id=50))  # continues at the same cursor
    assert other.storage.cursor == (rb.storage.cursor + 2) % 16


def test_sampler_without_replacement_state_dict_continues_the_epoch():
    rb = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement())
    rb.extend(ted_transitions(20))
    rb.sample(5)
    state = rb.state_dict()
    other = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement())
    other.load_state_dict(state)
    seen = torch.cat([other.sample(5)["observation"] for _ in range(3)])
    expected = torch.cat([rb.sample(5)["observation"] for _ in range(3)])
    assert torch.equal(seen, expected)


def test_state_dict_of_a_store_backed_buffer_points_to_dumps(tmp_path):
    rb = ReplayBuffer(storage=LazyMemmapStorage(10, scratch_dir=tmp_path / "s"))
    rb.extend(ted_transitions(4))
    with pytest.raises(ConfigError, match="dumps"):
        rb.state_dict()


def test_dumps_writes_an_rldata_store_and_loads_reads_it_back(make_storage, tmp_path):
    rb = TensorDictReplayBuffer(
        storage=make_storage(16), sampler=PrioritizedSampler(16, alpha=0.7, beta=0.5), batch_size=4
    )
    rb.extend(ted_transitions(20))
    rb.update_priority(torch.arange(16), torch.linspace(0.1, 3.0, 16))
    rb.dumps(tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert files == {"rows", "buffer.json", "priorities.npy"}  # no pickle anywhere
    assert json.loads((tmp_path / "ckpt" / "buffer.json").read_text())["write_count"] == 20
    assert len(load(tmp_path / "ckpt" / "rows")) == 16  # the rows are a dataset

    other = TensorDictReplayBuffer(
        storage=LazyTensorStorage(16), sampler=PrioritizedSampler(16, alpha=0.7, beta=0.5)
    )
    assert other.loads(tmp_path / "ckpt") is other
    chronological = torch.cat([rb.storage[r] for r in rb.storage.chronological()])
    assert torch.equal(obs(other[:]), obs(chronological))  # oldest first
    assert other.write_count == 20
    order = torch.cat([torch.arange(r.start, r.stop) for r in rb.storage.chronological()])
    assert torch.allclose(
        other.sampler.state_dict()["leaves"], rb.sampler.state_dict()["leaves"][order]
    )


def test_loads_without_a_dump_names_the_path(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(StoreNotFoundError, match="buffer.json"):
        rb.loads(tmp_path / "nothing")


def test_default_sampler_is_random_and_parts_are_public():
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    assert isinstance(rb.sampler, RandomSampler)
    assert rb.storage.max_size == 10 and rb.writer is not None
