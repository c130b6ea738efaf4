"""Checkpoints: tensors + JSON only, loaded with weights_only=True; an interrupted run resumes."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rldata.errors import ConfigError, StoreExistsError
from rldata.trainers import Trainer
from rldata.trainers.checkpoint import load_checkpoint
from tests.trainers.conftest import tiny


class Interrupt(Exception):
    pass


def stop_after(updates: int):
    def progress(p):
        if p.updates >= updates:
            raise Interrupt

    return progress


def test_checkpoint_holds_tensors_and_json_only(dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="sac", dataset=str(dataset), steps=10, eval_every=5), run).fit()
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=True)
    assert set(state) >= {"loss", "optimizer", "torch_rng"}
    meta = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert meta["updates"] == 10 and len(meta["evaluations"]) == 2
    policy = torch.load(run / "policy.pt", weights_only=True)
    assert policy["format"] == "rldata.policy"


def test_an_interrupted_offline_run_resumes_from_its_last_checkpoint(dataset, tmp_path):
    run = tmp_path / "run"
    cfg = tiny(algo="td3bc", dataset=str(dataset), steps=100, eval_every=20, log_every=20)
    with pytest.raises(Interrupt):
        Trainer(cfg, run, progress=stop_after(50)).fit()
    state, meta = load_checkpoint(run)
    assert meta["updates"] == 40  # the checkpoint at the second evaluation
    summary = Trainer(tiny(algo="td3bc", steps=100, log_every=20), run, resume=True).fit()
    assert summary.updates == 100
    assert [e["updates"] for e in summary.evaluations] == [20, 40, 60, 80, 100]
    with (run / "metrics.csv").open() as f:
        evals = [r["updates"] for r in csv.DictReader(f) if r["kind"] == "eval"]
    assert evals[-3:] == ["60", "80", "100"]


def test_resume_restores_weights_optimizer_and_counters(dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="sac", dataset=str(dataset), steps=8, eval_every=8), run).fit()
    state, _ = load_checkpoint(run)
    resumed = Trainer(tiny(algo="sac", steps=8), run, resume=True)
    summary = resumed.fit()  # nothing left to do: same counters, same weights
    assert summary.updates == 8
    after, _ = load_checkpoint(run)
    for key, value in state["loss"].items():
        assert torch.equal(value, after["loss"][key]), key


def test_an_online_run_with_a_store_resumes_and_keeps_recording(tmp_path):
    run, store = tmp_path / "run", tmp_path / "store"
    cfg = tiny(
        algo="sac",
        env="Pendulum-v1",
        frames=300,
        init_random_frames=50,
        frames_per_batch=50,
        utd=0.2,
        eval_every=100,
        store=str(store),
    )
    with pytest.raises(Interrupt):
        Trainer(cfg, run, progress=stop_after(45)).fit()
    summary = Trainer(tiny(algo="sac", env="Pendulum-v1", frames=300), run, resume=True).fit()
    assert summary.env_steps == 300
    import rldata

    with rldata.open(store) as s:
        ids = s.get(torch.arange(len(s)))["collector", "traj_ids"]
        assert (
            len(s) >= 300 - 50
        )  # rows since the last commit (at the last checkpoint) re-collected
        assert bool((ids[1:] >= ids[:-1]).all())  # trajectory ids continue, never reused


def test_resume_without_a_checkpoint_and_reuse_of_a_run_are_refused(dataset, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(tiny(algo="sac", dataset=str(dataset), steps=2), tmp_path / "x", resume=True).fit()
    run = tmp_path / "run"
    Trainer(tiny(algo="sac", dataset=str(dataset), steps=2, eval_every=2), run).fit()
    with pytest.raises(StoreExistsError, match="not empty"):
        Trainer(tiny(algo="sac", dataset=str(dataset), steps=2), run).fit()


def test_a_crash_between_the_two_renames_resumes_with_matching_counters(
    dataset, tmp_path, monkeypatch
):
    """state.pt is renamed in, then trainer.json: dying in between must not pair the new
    weights with the old counters (the resumed run would redo or skip updates)."""
    from rldata.trainers import files

    run = tmp_path / "run"
    cfg = tiny(algo="td3bc", dataset=str(dataset), steps=60, eval_every=20, log_every=20)
    real_write_text = files.write_text
    saves = []

    def dying_write_text(path, text):
        if path.name == "trainer.json":
            saves.append(json.loads(text)["updates"])
            if len(saves) == 2:  # the second checkpoint: state.pt already renamed in
                raise Interrupt
        return real_write_text(path, text)

    monkeypatch.setattr(files, "write_text", dying_write_text)
    with pytest.raises(Interrupt):
        Trainer(cfg, run).fit()
    monkeypatch.setattr(files, "write_text", real_write_text)

    on_disk = json.loads((run / "checkpoint" / "trainer.json").read_text())
    assert on_disk["updates"] == 20  # the readable copy is one save behind the weights
    state, meta = load_checkpoint(run)
    assert meta["updates"] == 40 and "trainer.json" not in state
    summary = Trainer(tiny(algo="td3bc", steps=60, log_every=20), run, resume=True).fit()
    assert [e["updates"] for e in summary.evaluations] == [20, 40, 60]


def test_a_checkpoint_without_embedded_counters_resumes_from_trainer_json(dataset, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny(algo="sac", dataset=str(dataset), steps=8, eval_every=8), run).fit()
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    del state["trainer.json"]  # as checkpoints were written before the embedded copy
    torch.save(state, path)
    _, meta = load_checkpoint(run)
    assert meta["updates"] == 8


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    embedded=st.one_of(
        st.integers(),
        st.binary(max_size=8),
        st.lists(st.text(max_size=3), max_size=3),
        st.text(max_size=20).filter(lambda t: not t.strip().startswith("{")),
        st.builds(json.dumps, st.one_of(st.integers(), st.lists(st.integers()), st.text())),
        st.just("[" * 100_000),
    )
)
def test_a_tampered_embedded_copy_is_one_config_error(dataset, tmp_path_factory, embedded):
    run = tmp_path_factory.mktemp("run")
    if not (run / "checkpoint").exists():
        Trainer(
            tiny(algo="sac", dataset=str(dataset), steps=2, eval_every=2), run, force=True
        ).fit()
    path = run / "checkpoint" / "state.pt"
    state = torch.load(path, weights_only=True)
    state["trainer.json"] = embedded
    torch.save(state, path)
    with pytest.raises(ConfigError) as err:
        load_checkpoint(run)
    assert "\n" not in str(err.value) and "state.pt" in str(err.value)
