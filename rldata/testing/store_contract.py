"""The contract every store backend passes: subclass :class:`StoreContract` and set ``backend``.

Examples:
    A backend's whole test file::

        from rldata.testing.store_contract import StoreContract

        class TestMemmap(StoreContract):
            backend = "memmap"

Each test reads as one rule of ``docs/FORMAT.md``. Backends that cannot do something
declare it (``supports_overwrite``) and the ring tests check the refusal instead.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import cast

import pytest
import torch
from tensordict import TensorDict

import rldata.stores as stores
from rldata.errors import (
    ConfigError,
    FormatVersionError,
    RowIndexError,
    SchemaMismatchError,
    StoreError,
    StoreExistsError,
    StoreLockedError,
    StoreNotFoundError,
    TedFormatError,
)
from rldata.stores.backend.rowstore import RowStore
from rldata.testing.tamper import edit_manifest
from rldata.testing.ted_factory import marked_serial, ted_batch, ted_marked


def assert_rows_equal(got: TensorDict, want: TensorDict) -> None:
    """Every key of ``want`` is in ``got`` with equal values (dtype and shape included)."""
    for key, value in want.items(include_nested=True, leaves_only=True):
        other = got.get(key)
        assert other.dtype == value.dtype, key
        assert torch.equal(other, cast(torch.Tensor, value)), key  # leaves_only: a tensor


# a table of bad writes: (name, how to spoil a good batch, the words the error must contain)
def _reshape_obs(td):
    td["observation"] = td["observation"][:, :2]
    td["next", "observation"] = td["next", "observation"][:, :2]


BAD_WRITES = [
    ("wrong shape", _reshape_obs, ["observation", "(3,)", "(2,)"]),
    (
        "wrong dtype",
        lambda td: td.set("action", td["action"].double()),
        ["action", "float32", "float64"],
    ),
    ("missing key", lambda td: td.exclude("log_prob", inplace=True), ["missing", "log_prob"]),
    ("extra key", lambda td: td.set("extra", torch.zeros(td.shape[0])), ["unexpected", "extra"]),
    ("nested extra", lambda td: td.set(("info", "x"), torch.zeros(td.shape[0])), ["info.x"]),
]

NOT_TED = [
    ("no next", lambda td: td.exclude("next"), TedFormatError, ["next"]),
    (
        "not a TensorDict",
        lambda td: {"observation": td["observation"]},
        TedFormatError,
        ["TensorDict"],
    ),
    (
        "done is not terminated|truncated",
        lambda td: td.set(("next", "done"), torch.zeros_like(td["next", "done"])),
        TedFormatError,
        ["next.done", "row"],
    ),
    (
        "nan reward",
        lambda td: td.set(
            ("next", "reward"), td["next", "reward"].index_fill(0, torch.tensor([2]), float("nan"))
        ),
        TedFormatError,
        ["next.reward", "nan", "row 2", "allow_nonfinite"],
    ),
    (
        "inf reward",
        lambda td: td.set(
            ("next", "reward"), td["next", "reward"].index_fill(0, torch.tensor([1]), float("inf"))
        ),
        TedFormatError,
        ["next.reward", "inf"],
    ),
    (
        "traj id reused after done",
        lambda td: td.set(("collector", "traj_ids"), torch.zeros_like(td["collector", "traj_ids"])),
        TedFormatError,
        ["traj", "continues"],
    ),
]


class StoreContract:
    """Tests every backend passes. Subclasses set ``backend``."""

    backend: str = "memmap"

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        return tmp_path / "store"

    def create(self, root: Path, **kwargs) -> RowStore:
        return cast(RowStore, stores.create(root, backend=self.backend, **kwargs))

    def keeps_rings(self, root: Path) -> bool:
        """Whether this backend keeps rings (``supports_overwrite_rings`` on its class); for one
        that does not, assert the one-line refusal of a capacity instead (the ring case's test)."""
        if getattr(stores.backend.registry.load(self.backend), "supports_overwrite_rings", True):
            return True
        with pytest.raises(ConfigError, match="append-only") as info:
            self.create(root, capacity=10)
        assert "\n" not in str(info.value) and self.backend in str(info.value)
        return False

    def rows(self, lengths=(5, 3), start_traj_id=0) -> TensorDict:
        return ted_batch(list(lengths), start_traj_id=start_traj_id, extra=True)

    # --- round trip ---------------------------------------------------------------------
    def test_round_trip_keeps_every_key_and_value(self, root):
        data = self.rows()
        with self.create(root) as w:
            positions = w.append(data)
        assert positions.tolist() == list(range(8))
        r = stores.open(root)
        assert len(r) == 8 and r.backend == self.backend and not r.writable
        assert_rows_equal(r.get(r.readable()), data)
        assert_rows_equal(r.get(positions[3:5]), data[3:5])
        assert_rows_equal(r.get(slice(0, 8)), data)
        assert torch.equal(r.get(4)["observation"], data[4]["observation"])

    def test_schema_lists_shape_and_dtype_per_key(self, root):
        with self.create(root) as w:
            w.append(self.rows())
        schema = cast(dict, stores.open(root).schema)
        assert schema["observation"] == {"shape": [3], "dtype": "float32"}
        assert schema["next.reward"] == {"shape": [1], "dtype": "float32"}
        assert schema["collector.traj_ids"] == {"shape": [], "dtype": "int64"}
        assert schema["info.step"] == {"shape": [1], "dtype": "int64"}

    def test_new_store_is_empty_and_readable(self, root):
        w = self.create(root)
        r = stores.open(root)
        assert len(r) == 0 and r.schema is None and r.readable().numel() == 0
        assert r.episodes().batch_size == torch.Size([0])
        w.close()

    def test_batched_rows_are_flattened_env_by_env(self, root):
        from rldata.testing.ted_factory import ted_rollout

        roll = ted_rollout(num_envs=2, steps=6, episode_length=4)
        with self.create(root) as w:
            w.append(roll)
        r = stores.open(root)
        assert_rows_equal(r.get(r.readable()), roll.reshape(-1))

    # --- trajectories ---------------------------------------------------------------------
    def test_traj_ids_and_episode_table_kept(self, root):
        data = ted_batch([4, 2, 3], start_traj_id=7, truncated=True)
        with self.create(root) as w:
            w.append(data[:5])  # an episode split across two appends stays one segment
            w.append(data[5:])
        r = stores.open(root)
        eps = r.episodes()
        assert eps["traj_id"].tolist() == [7, 8, 9]
        assert eps["start"].tolist() == [0, 4, 6]
        assert eps["length"].tolist() == [4, 2, 3]
        assert eps["truncated"].tolist() == [True, True, True]
        assert eps["terminated"].tolist() == [False, False, False]
        want = data["next", "reward"].reshape(-1).double()
        assert torch.allclose(
            eps["return"], torch.stack([want[:4].sum(), want[4:6].sum(), want[6:].sum()])
        )
        assert_rows_equal(r.episode(1), data[4:6])
        assert r.next_traj_id() == 10

    def test_interleaved_trajectory_is_one_episode(self, root):
        a, b = ted_batch([6], start_traj_id=0), ted_batch([6], start_traj_id=1)
        with self.create(root) as w:
            for i in range(0, 6, 3):  # two envs flattened per batch: a a a b b b a a a b b b
                w.append(torch.cat([a[i : i + 3], b[i : i + 3]]))  # type: ignore[arg-type]
        r = stores.open(root)
        assert r.episodes()["length"].tolist() == [6, 6]
        assert_rows_equal(r.episode(0), a)
        assert_rows_equal(r.episode(1), b)

    def test_reopen_for_append_continues(self, root):
        with self.create(root) as w:
            w.append(ted_marked(0, 15))
        with stores.open(root, mode="a") as w:
            assert w.next_traj_id() == 2
            w.append(ted_marked(15, 10))
        r = stores.open(root)
        assert marked_serial(r.get(r.readable())).tolist() == list(range(25))
        assert r.episodes()["length"].tolist() == [10, 10, 5]
        assert stores.verify(r) == []

    # --- read-only --------------------------------------------------------------------------
    def test_reader_cannot_write(self, root):
        with self.create(root) as w:
            w.append(self.rows())
        r = stores.open(root)
        with pytest.raises(StoreError, match="read-only"):
            r.append(self.rows(start_traj_id=5))
        with pytest.raises(StoreError, match="read-only"):
            r.commit()

    def test_unreadable_position_is_refused(self, root):
        with self.create(root) as w:
            w.append(self.rows())
        r = stores.open(root)
        with pytest.raises(RowIndexError, match="position 8"):
            r.get(torch.tensor([0, 8]))

    # --- ring -------------------------------------------------------------------------------
    def test_wrap_around_keeps_the_newest_rows(self, root):
        if not self.keeps_rings(root):
            return
        with self.create(root, capacity=10) as w:
            for s in range(0, 25, 5):
                positions = w.append(ted_marked(s, 5))
            assert positions.tolist() == [0, 1, 2, 3, 4]
        r = stores.open(root)
        assert len(r) == 10 and r.capacity == 10
        assert r.readable().tolist() == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
        assert marked_serial(r.get(r.readable())).tolist() == list(range(15, 25))
        assert r.episodes()["traj_id"].tolist() == [1, 2]
        assert r.manifest["cursor"] == 5 and r.manifest["written"] == 25
        assert stores.verify(r) == []

    def test_one_write_larger_than_the_ring(self, root):
        if not self.keeps_rings(root):
            return
        with self.create(root, capacity=4) as w:
            w.append(ted_marked(0, 11))
        r = stores.open(root)
        assert marked_serial(r.get(r.readable())).tolist() == [7, 8, 9, 10]

    def test_ring_reader_sees_no_overwritten_row(self, root):
        if not self.keeps_rings(root):
            return
        w = self.create(root, capacity=16)
        w.append(ted_marked(0, 16))
        w.commit()
        r = cast(RowStore, stores.open(root))
        old = r.readable()
        w.append(ted_marked(16, 6))  # overwrites positions 0..5 (retired first)
        r.refresh()
        assert set(r.readable().tolist()).isdisjoint(range(6))
        with pytest.raises(RowIndexError):
            r.get(old[:1])
        got = marked_serial(r.get(r.readable()))
        assert got.tolist() == list(range(16 - len(got), 16))
        w.close()
        r.refresh()
        assert marked_serial(r.get(r.readable())).tolist() == list(range(6, 22))

    RING_SCRIPTS = [  # (name, capacity, script): every state along the way must verify clean
        ("one write laps the ring mid-chunk", 37, ["a20", "c", "a40", "c", "a3", "c"]),
        (
            "resumed after a crash that retired rows",
            64,
            ["a45", "c", "a25", "a44", "crash", "a19", "a5", "a19", "c", "a20"],
        ),
    ]

    @pytest.mark.parametrize("name,capacity,script", RING_SCRIPTS, ids=[s[0] for s in RING_SCRIPTS])
    def test_ring_checksums_cover_every_readable_row(self, root, name, capacity, script):
        if not self.keeps_rings(root):
            return
        w, written, committed = self.create(root, capacity=capacity, durable=False), 0, 0
        for step in script:
            if step == "c":
                w.commit()
                committed = written
            elif step == "crash":
                assert w._lock is not None  # a writer holds its lock
                w._lock.release()  # what the OS does for a dead writer; nothing committed
                w, written = cast(RowStore, stores.open(root, mode="a", durable=False)), committed
            else:
                w.append(ted_marked(written, int(step[1:])))
                written += int(step[1:])
            r = stores.open(root)
            assert stores.first_fault(r) is None, step
            got = marked_serial(r.get(r.readable())).tolist() if len(r) else []
            assert got == list(range(committed - len(r), committed)), step
        w.close()

    # --- bad input ---------------------------------------------------------------------------
    @pytest.mark.parametrize("name,spoil,words", BAD_WRITES, ids=[c[0] for c in BAD_WRITES])
    def test_schema_mismatch_names_key_and_values(self, root, name, spoil, words):
        with self.create(root) as w:
            w.append(self.rows())
            w.commit()
            before = stores.content_digest(w)
            bad = self.rows(start_traj_id=2)
            spoil(bad)
            with pytest.raises(SchemaMismatchError) as info:
                w.append(bad)
            for word in words:
                assert word in str(info.value), (word, str(info.value))
            assert len(w) == 8 and stores.content_digest(w) == before
        assert len(stores.open(root)) == 8

    @pytest.mark.parametrize("name,spoil,error,words", NOT_TED, ids=[c[0] for c in NOT_TED])
    def test_non_ted_writes_are_refused(self, root, name, spoil, error, words):
        for first in (True, False):  # refused as the first write and after the schema is fixed
            path = root / str(first)
            with self.create(path) as w:
                if not first:
                    w.append(self.rows(start_traj_id=100))
                before = len(w)
                bad = self.rows()
                out = spoil(bad)
                bad = bad if out is None else out
                with pytest.raises(error) as info:
                    w.append(bad)
                for word in words:
                    assert word in str(info.value), (word, str(info.value))
                assert len(w) == before
            assert stores.verify(stores.open(path)) == []

    def test_nonfinite_rewards_kept_when_allowed(self, root):
        data = self.rows()
        data["next", "reward"][1] = float("nan")
        with self.create(root, allow_nonfinite=True) as w:
            w.append(data)
        r = stores.open(root)
        assert torch.isnan(r.get(1)["next", "reward"]).all()

    # --- durability ----------------------------------------------------------------------------
    def test_reader_sees_committed_rows_only(self, root):
        w = self.create(root)
        w.append(ted_marked(0, 10))
        w.commit()
        w.append(ted_marked(10, 5))
        r = cast(RowStore, stores.open(root))
        assert len(r) == 10 and r.readable().tolist() == list(range(10))
        with pytest.raises(RowIndexError):
            r.get(torch.tensor([12]))
        w.commit()
        assert len(r) == 10  # a reader's view is its snapshot ...
        assert r.refresh() and len(r) == 15  # ... until it refreshes
        w.close()

    def test_commit_every_k_rows(self, root):
        w = self.create(root, commit_every=10)
        w.append(ted_marked(0, 6))
        assert len(stores.open(root)) == 0
        w.append(ted_marked(6, 6))
        assert len(stores.open(root)) == 12
        w.append(ted_marked(12, 3))
        assert len(stores.open(root)) == 12
        w.close()
        assert len(stores.open(root)) == 15

    def test_crash_recovers_the_last_commit(self, root):
        w = self.create(root)
        w.append(ted_marked(0, 10))
        w.commit()
        w.append(ted_marked(10, 7))  # never committed
        del w  # the writer dies without close(); its lock goes with it
        gc.collect()
        with stores.open(root, mode="a") as w2:
            assert len(w2) == 10
            w2.append(ted_marked(10, 10))
        r = stores.open(root)
        assert marked_serial(r.get(r.readable())).tolist() == list(range(20))
        assert stores.verify(r) == []

    def test_leftover_temp_files_ignored_then_removed(self, root):
        with self.create(root) as w:
            w.append(self.rows())
        junk = [root / ".rldata.json.tmp-999-dead", root / "data" / ".meta.json.tmp-999-beef"]
        for p in junk:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"{not json")
        assert len(stores.open(root)) == 8
        stores.open(root, mode="a").close()
        assert not any(p.exists() for p in junk)

    # --- one writer, versions, paths -------------------------------------------------------
    def test_second_writer_is_refused(self, root):
        w = self.create(root)
        with pytest.raises(StoreLockedError, match="locked by another writer") as info:
            stores.open(root, mode="a")
        assert str(root) in str(info.value)
        stores.open(root)  # readers need no lock
        w.close()
        stores.open(root, mode="a").close()

    def test_create_refuses_an_existing_path(self, root):
        self.create(root).close()
        with pytest.raises(StoreExistsError, match=str(root)):
            self.create(root)

    def test_open_missing_store(self, tmp_path):
        with pytest.raises(StoreNotFoundError, match="nowhere"):
            stores.open(tmp_path / "nowhere")

    def test_newer_major_format_is_refused(self, root):
        self.create(root).close()
        edit_manifest(root, format_version="2.0.0")
        with pytest.raises(FormatVersionError, match="2.0.0"):
            stores.open(root)

    def test_metadata_round_trips(self, root):
        prov = {"policy": "random", "seed": 3}
        with self.create(root, env_id="Pendulum-v1", env_kwargs={"g": 9.0}, provenance=prov):
            pass
        r = stores.open(root)
        assert r.env_id == "Pendulum-v1" and r.env_kwargs == {"g": 9.0}
        assert r.provenance["policy"] == "random" and r.provenance["seed"] == 3
        assert "rldata_version" in r.provenance and "created" in r.provenance

    def test_specs_round_trip_as_json(self, root):
        from rldata.specs import Bounded, Categorical, Composite

        specs = Composite({"observation": Bounded(-1.0, 1.0, shape=(3,)), "action": Categorical(4)})
        self.create(root, specs=specs).close()
        got = stores.open(root).specs
        assert got.to_json() == specs.to_json()
        assert stores.open(root).manifest["specs"] == specs.to_json()

    # --- fast path ----------------------------------------------------------------------------
    def test_tensordict_view_is_indexed_by_position(self, root):
        ring = self.keeps_rings(root.with_name("ring"))
        with self.create(root, capacity=8 if ring else None) as w:
            w.append(ted_marked(0, 11))
            view = w.tensordict()
        if view is None:
            return
        r = stores.open(root)
        pos = r.readable()
        assert torch.equal(
            cast(TensorDict, r.tensordict())[pos]["observation"], r.get(pos)["observation"]
        )
        assert marked_serial(view[pos]).tolist() == list(range(3 if ring else 0, 11))
        cols = cast(dict, r.columns())
        assert set(cols) == set(cast(dict, r.schema))
        assert torch.equal(cols["next.reward"][pos], r.get(pos)["next", "reward"])
