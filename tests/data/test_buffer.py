"""ReplayBuffer / TensorDictReplayBuffer: writes, reads, the ring, bad input, save and load."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rldata.data import (
    AppendOnlyWriter,
    LazyMemmapStorage,
    LazyTensorStorage,
    PrioritizedSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    TensorDictReplayBuffer,
    load,
)
from rldata.errors import ConfigError, EmptyBufferError, SchemaMismatchError, TedFormatError
from rldata.testing import ted_batch, ted_rollout, ted_transitions

STORAGES = {
    "memory": lambda cap, tmp: LazyTensorStorage(cap),
    "memmap": lambda cap, tmp: LazyMemmapStorage(cap, scratch_dir=tmp / "scratch"),
}


@pytest.fixture(params=sorted(STORAGES))
def make_storage(request, tmp_path):
    return lambda cap: STORAGES[request.param](cap, tmp_path)


def rows_in_time_order(buffer: ReplayBuffer) -> TensorDict:
    storage = buffer.storage
    return torch.cat([storage.get(torch.arange(r.start, r.stop)) for r in storage.chronological()])


# --- writing and reading -----------------------------------------------------------------


def test_extend_returns_positions_and_rows_read_back(make_storage):
    buffer = ReplayBuffer(storage=make_storage(100))
    data = ted_transitions(30, extra=True)
    assert buffer.extend(data).tolist() == list(range(30))
    assert buffer.extend(ted_transitions(5, start_traj_id=3, extra=True)).tolist() == list(
        range(30, 35)
    )
    assert len(buffer) == 35
    got = buffer.storage.get(torch.arange(30))
    assert (got == data).all()
    assert got["info", "step"].shape == (30, 1)  # nested extra key kept


def test_ring_keeps_the_newest_rows(make_storage):
    buffer = ReplayBuffer(storage=make_storage(10))
    data = ted_transitions(25, episode_length=4)
    for start in range(0, 25, 7):
        buffer.extend(data[start : start + 7])
    assert len(buffer) == 10
    assert (rows_in_time_order(buffer) == data[15:]).all()


def test_a_batch_larger_than_the_ring_keeps_its_newest_rows(make_storage):
    buffer = ReplayBuffer(storage=make_storage(8))
    data = ted_transitions(20, episode_length=5)
    buffer.extend(data)
    assert len(buffer) == 8
    assert (rows_in_time_order(buffer) == data[12:]).all()


def test_added_rows_are_readable_at_once(make_storage):
    buffer = ReplayBuffer(storage=make_storage(6))
    data = ted_transitions(9, episode_length=3)
    for i in range(9):
        assert buffer.add(data[i]) == i % 6
        assert len(buffer) == min(i + 1, 6)
        assert (buffer.storage.get(torch.tensor([i % 6]))[0] == data[i]).all()
    assert (rows_in_time_order(buffer) == data[3:]).all()


def test_many_added_rows_land_in_order_across_stages_and_the_wrap(make_storage):
    # added rows are landed in stages of hundreds; several stages, and the ring's wrap
    buffer = ReplayBuffer(storage=make_storage(1500))
    data = ted_transitions(3700, episode_length=50)
    for i in range(3700):
        buffer.add(data[i])
    assert len(buffer) == 1500 and buffer.storage.cursor == 3700 % 1500
    assert (rows_in_time_order(buffer) == data[2200:]).all()


def test_add_then_extend_keeps_time_order(make_storage):
    buffer = ReplayBuffer(storage=make_storage(50))
    data = ted_transitions(12, episode_length=4)
    for i in range(5):
        buffer.add(data[i])
    buffer.extend(data[5:])
    assert (rows_in_time_order(buffer) == data).all()


def test_a_row_changed_in_place_after_add_is_reported():
    buffer = ReplayBuffer(storage=LazyTensorStorage(10))
    buffer.add(ted_transitions(1)[0])
    row = ted_transitions(1)[0]
    buffer.add(row)
    row["observation"].add_(1.0)
    with pytest.raises(TedFormatError, match="modified in place"):
        buffer.sample(2)


def _grad(td):
    td = td.clone()
    td["observation"].requires_grad_(True)
    return td


def _inference(td):
    with torch.inference_mode():
        return td.clone()


def _strided(td):
    td = td.clone()
    td["observation"] = torch.stack([td["observation"]] * 2, -1)[..., 0]
    return td


def _memmap_leaf(td):
    from tensordict import MemoryMappedTensor

    td = td.clone()
    td["action"] = MemoryMappedTensor.from_tensor(td["action"])
    return td


ROWS_OF_ANOTHER_KIND = [
    pytest.param(_grad, id="requires-grad"),
    pytest.param(_inference, id="inference-mode"),
    pytest.param(_strided, id="non-contiguous"),
    pytest.param(_memmap_leaf, id="memmap-leaf"),
]


@pytest.mark.parametrize("remake", ROWS_OF_ANOTHER_KIND)
def test_added_rows_of_another_kind_are_stored_as_given(make_storage, remake):
    # the fast path learns the first rows' kind; rows of another kind mixed in must still
    # be checked and stored exactly
    buffer = ReplayBuffer(storage=make_storage(40))
    data = ted_transitions(30, episode_length=5)
    for i in range(30):
        row = data[i] if i % 3 else remake(data[i])
        assert buffer.add(row) == i
    got = rows_in_time_order(buffer)
    assert (got.exclude("observation") == data.exclude("observation")).all()
    assert torch.equal(got["observation"], data["observation"])


IN_PLACE_EDITS = [  # (edit, times the row is added); edits keep the rows valid TED
    pytest.param(lambda row: row["observation"].add_(1.0), 2, id="root-leaf"),
    pytest.param(lambda row: row["next", "reward"].mul_(2.0), 2, id="nested-leaf"),
    pytest.param(lambda row: row["collector", "traj_ids"].fill_(99), 2, id="scalar-leaf"),
    pytest.param(lambda row: [row["next", k].fill_(True) for k in ("done", "terminated")], 1, id="bool-leaves"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "times"), IN_PLACE_EDITS)
def test_a_row_changed_in_place_after_many_adds_is_reported(make_storage, edit, times):
    buffer = ReplayBuffer(storage=make_storage(100))
    data = ted_transitions(40, episode_length=5)
    for i in range(40):
        buffer.add(data[i])
    row = ted_transitions(1, start_traj_id=50)[0]
    for _ in range(times):  # the same tensors twice: still one edit to report
        buffer.add(row)
    edit(row)
    with pytest.raises(TedFormatError, match="modified in place"):
        buffer.sample(2)


def test_batched_env_rows_are_flattened(make_storage):
    buffer = ReplayBuffer(storage=make_storage(100))
    rollout = ted_rollout(num_envs=3, steps=4)
    assert buffer.extend(rollout).shape == (12,)
    assert (buffer.storage.get(torch.arange(12)) == rollout.reshape(-1)).all()


def test_sample_shape_and_device(make_storage):
    buffer = ReplayBuffer(storage=make_storage(100), batch_size=16)
    buffer.extend(ted_transitions(40))
    batch = buffer.sample()
    assert batch.batch_size == (16,)
    assert batch["next", "observation"].shape == (16, 3)
    assert batch["collector", "traj_ids"].dtype == torch.int64
    assert buffer.sample(batch_size=3).batch_size == (3,)


def test_append_only_storage_grows(make_storage):
    buffer = ReplayBuffer(storage=make_storage(None), writer=AppendOnlyWriter())
    data = ted_transitions(3000, episode_length=50)
    for start in range(0, 2100, 700):
        buffer.extend(data[start : start + 700])
    for i in range(2100, 3000):  # one row at a time, past the next growth
        buffer.add(data[i])
    assert len(buffer) == 3000
    assert (rows_in_time_order(buffer) == data).all()


def test_append_only_writer_refuses_a_ring():
    with pytest.raises(ConfigError, match="max_size=None, got max_size=10"):
        ReplayBuffer(storage=LazyTensorStorage(10), writer=AppendOnlyWriter())


def test_empty_forgets_rows():
    buffer = ReplayBuffer(storage=LazyTensorStorage(10), sampler=SamplerWithoutReplacement())
    buffer.extend(ted_transitions(10))
    buffer.sample(4)
    buffer.empty()
    assert len(buffer) == 0
    with pytest.raises(EmptyBufferError):
        buffer.sample(4)
    buffer.extend(ted_transitions(3))
    assert len(buffer) == 3


def test_transform_and_prefetch():
    buffer = ReplayBuffer(
        storage=LazyTensorStorage(50),
        batch_size=8,
        prefetch=2,
        transform=lambda td: td.set("scaled", td["observation"] * 2),
    )
    buffer.extend(ted_transitions(50))
    for _ in range(5):
        batch = buffer.sample()
        torch.testing.assert_close(batch["scaled"], batch["observation"] * 2)


def test_prioritized_batches_carry_index_and_weight():
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(32), sampler=PrioritizedSampler(32, alpha=0.6, beta=0.4)
    )
    buffer.extend(ted_transitions(32))
    batch = buffer.sample(8)
    assert batch["index"].dtype == torch.int64 and batch["_weight"].shape == (8,)
    assert (buffer.storage.get(batch["index"])["observation"] == batch["observation"]).all()


def test_prioritized_sampler_smaller_than_the_storage_is_refused():
    with pytest.raises(
        ConfigError, match="max_capacity=10 is smaller than the storage's max_size=20"
    ):
        ReplayBuffer(storage=LazyTensorStorage(20), sampler=PrioritizedSampler(10, 0.6, 0.4))


# --- bad input: a ValueError naming the key, expected vs given; nothing written ----------


def _drop(td, key):
    td = td.clone()
    td.del_(key)
    return td


def _set(key, value_fn):
    def apply(td):
        td = td.clone()
        td.set(key, value_fn(td.get(key)))
        return td

    return apply


BAD_WRITES = [
    pytest.param(lambda td: _drop(td, "action"), SchemaMismatchError, r"missing \['action'\]", id="missing-key"),
    pytest.param(_set("extra", lambda _: torch.zeros(4)), SchemaMismatchError, r"'extra'", id="extra-key"),
    pytest.param(_set("observation", lambda v: torch.zeros(4, 5)), SchemaMismatchError, r"'observation': expected row shape \(3,\), got \(5,\)", id="wrong-shape"),
    pytest.param(_set("action", lambda v: v.double()), SchemaMismatchError, r"'action'.*float32.*float64", id="wrong-dtype"),
    pytest.param(_set(("next", "reward"), lambda v: torch.full_like(v, float("nan"))), TedFormatError, r"'next.reward'.*(finite|NaN)", id="nan-reward"),
    pytest.param(_set(("next", "reward"), lambda v: torch.full_like(v, float("inf"))), TedFormatError, r"'next.reward'.*(finite|inf)", id="inf-reward"),
]  # fmt: skip


@pytest.mark.parametrize(("corrupt", "error", "message"), BAD_WRITES)
def test_refused_extend_names_the_key_and_changes_nothing(make_storage, corrupt, error, message):
    buffer = ReplayBuffer(storage=make_storage(20))
    buffer.extend(ted_transitions(6))
    before = rows_in_time_order(buffer).clone()
    with pytest.raises(error, match=message) as info:
        buffer.extend(corrupt(ted_transitions(4, start_traj_id=5)))
    assert isinstance(info.value, ValueError)
    assert len(buffer) == 6
    assert (rows_in_time_order(buffer) == before).all()


@pytest.mark.parametrize(("corrupt", "error", "message"), BAD_WRITES)
@pytest.mark.parametrize("added_before", [0, 3], ids=["first-add", "after-adds"])
def test_refused_add_names_the_key_and_changes_nothing(
    make_storage, corrupt, error, message, added_before
):
    # after good adds the fast path has learnt the row's structure and holds staged rows
    buffer = ReplayBuffer(storage=make_storage(20))
    buffer.extend(ted_transitions(6))
    good = ted_transitions(max(added_before, 1), start_traj_id=3)
    for i in range(added_before):
        buffer.add(good[i])
    n = 6 + added_before
    before = rows_in_time_order(buffer).clone()
    for i in range(added_before):
        buffer.add(good[i].clone())  # staged again, then refused row by row below
    with pytest.raises(error, match=message):
        buffer.add(corrupt(ted_transitions(4, start_traj_id=5))[0])
    assert len(buffer) == n + added_before
    assert (rows_in_time_order(buffer)[:n] == before).all()


def test_first_write_must_be_ted(make_storage):
    buffer = ReplayBuffer(storage=make_storage(10))
    with pytest.raises(TedFormatError, match="TED key 'next' is missing"):
        buffer.extend(TensorDict({"observation": torch.zeros(4, 3)}, [4]))
    assert len(buffer) == 0


def test_nonfinite_rewards_when_allowed():
    buffer = ReplayBuffer(storage=LazyTensorStorage(10, allow_nonfinite=True))
    data = ted_transitions(4)
    data["next", "reward"][1] = float("nan")
    buffer.extend(data)
    assert torch.isnan(buffer.storage.get(torch.tensor([1]))["next", "reward"]).all()


def test_sampling_an_empty_buffer(make_storage):
    with pytest.raises(EmptyBufferError, match="empty buffer"):
        ReplayBuffer(storage=make_storage(10)).sample(4)


# --- save and load: a saved buffer is a dataset ------------------------------------------------


def test_save_then_load_round_trips_in_time_order(make_storage, tmp_path):
    buffer = ReplayBuffer(storage=make_storage(16))
    data = ted_batch([5, 7, 6, 9])  # 27 rows into 16 slots: the ring has wrapped
    buffer.extend(data[:20])
    buffer.extend(data[20:])
    buffer.save(tmp_path / "saved")
    loaded = load(tmp_path / "saved", batch_size=4)
    assert len(loaded) == 16
    assert (loaded.storage.get(torch.arange(16)) == data[11:]).all()
    assert loaded.sample().batch_size == (4,)
    with pytest.raises(ConfigError, match="read-only"):
        loaded.extend(ted_transitions(2, start_traj_id=50))
    with pytest.raises(ConfigError, match="read-only"):
        loaded.add(ted_transitions(1, start_traj_id=50)[0])


def test_loaded_ring_store_is_sampled_over_readable_rows(tmp_path):
    from rldata import stores

    data = ted_batch([5, 7, 6, 9])
    with stores.create(tmp_path / "ring", capacity=16) as store:
        store.append(data)
    loaded = load(tmp_path / "ring")
    n = len(loaded)
    got = loaded.storage.get(torch.arange(n))
    assert (got == data[27 - n :]).all()  # logical rows are readable rows, oldest first


def test_memmap_storage_creates_its_directory_on_first_write(tmp_path):
    scratch = tmp_path / "scratch"
    storage = LazyMemmapStorage(100, scratch_dir=scratch)
    assert not scratch.exists()
    buffer = ReplayBuffer(storage=storage)
    buffer.extend(ted_transitions(10))
    assert (scratch / "rldata.json").exists()
    storage.close()
    reopened = load(scratch)
    assert len(reopened) == 10


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["memory", "memmap"])
def test_samples_land_on_the_gpu(kind, tmp_path):
    if kind == "memory":
        storage = LazyTensorStorage(100, device="cuda")
    else:
        storage = LazyMemmapStorage(100, scratch_dir=tmp_path / "s", device="cuda")
    buffer = TensorDictReplayBuffer(storage=storage)
    data = ted_transitions(20)
    buffer.extend(data)
    buffer.add(ted_transitions(1, start_traj_id=7)[0])
    batch = buffer.sample(8)
    assert batch.device.type == "cuda"
    assert batch["observation"].device.type == "cuda"
    assert batch["index"].device.type == "cuda"
    rows = data["observation"].cuda()
    first = batch["observation"][batch["index"] < 20]
    assert ((first[:, None] == rows[None]).all(-1).any(-1)).all()


def test_a_staged_row_the_store_refuses_leaves_the_buffer_as_it_was(tmp_path):
    # flags that break TED (done without terminated/truncated) pass the per-row schema
    # check; the store refuses them when the staged rows land, and nothing is kept
    buffer = ReplayBuffer(storage=LazyMemmapStorage(50, scratch_dir=tmp_path / "s"))
    buffer.extend(ted_transitions(5))
    bad = ted_transitions(1, start_traj_id=9)[0].clone()
    bad["next", "done"][:] = True
    bad["next", "terminated"][:] = False
    buffer.add(bad)
    assert len(buffer) == 6
    with pytest.raises(TedFormatError, match="'next.done'"):
        buffer.sample(2)
    assert len(buffer) == 5
    assert buffer.extend(ted_transitions(3, start_traj_id=20)).tolist() == [5, 6, 7]
    assert (buffer.storage.get(torch.arange(5, 8)) == ted_transitions(3, start_traj_id=20)).all()


@pytest.mark.parametrize(("corrupt", "error", "message"), BAD_WRITES)
def test_add_without_the_cpp_guard_checks_rows_in_python(monkeypatch, corrupt, error, message):
    # the C++ structure guard is a private torch API; without it every row takes the loop
    from rldata import _compat

    monkeypatch.setattr(_compat, "TensorGuards", None)
    buffer = ReplayBuffer(storage=LazyTensorStorage(50))
    data = ted_transitions(20, episode_length=5)
    for i in range(20):
        buffer.add(data[i])
    assert buffer.storage._reader.guard is None
    with pytest.raises(error, match=message):
        buffer.add(corrupt(ted_transitions(4, start_traj_id=9))[0])
    row = ted_transitions(1, start_traj_id=9)[0]
    buffer.add(row)
    assert (rows_in_time_order(buffer) == torch.cat([data, row.unsqueeze(0)])).all()
    buffer.add(row)
    row["action"].add_(1.0)
    with pytest.raises(TedFormatError, match="modified in place"):
        buffer.sample(2)
