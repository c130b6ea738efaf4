"""Every script in ``examples/`` runs, with tiny budgets, and does what its docstring says.

Each example exposes ``main(argv) -> dict`` of the figures it printed; the tests load the
file with ``runpy`` (in-process, so ``torch`` is imported once) and check those figures
against what the options imply: frame and update counts, rows in the stores written,
episode tables, shapes. ``--help`` runs each file as ``__main__``, as a user would.
"""

from __future__ import annotations

import ast
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

import rldata

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = [
    "walkthrough",
    "ddpg_pendulum_online",
    "sac_offline",
    "redq_online",
    "record_and_inspect",
    "offline_to_online",
]
PUBLIC = {
    "rldata",
    "rldata.envs",
    "rldata.envs.utils",
    "rldata.modules",
    "rldata.objectives",
    "rldata.collectors",
    "rldata.data",
    "rldata.data.replay_buffers",
    "rldata.trainers",
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a shared CPU run far faster on one thread (no spin contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def example_main(name: str):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")["main"]


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def test_every_example_is_tested():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_examples_import_only_the_public_api(name):
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            used.add(node.module)
        elif isinstance(node, ast.Import):
            used.update(alias.name for alias in node.names)
    ours = {m for m in used if m == "rldata" or m.startswith("rldata.")}
    assert ours, "an example that does not use rldata"
    assert ours <= PUBLIC, sorted(ours - PUBLIC)


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_as_a_script(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_walkthrough(capsys):
    figures = example_main("walkthrough")(["--device", "cpu", "--quiet"])
    assert figures["truncated_after"] == 10  # StepCounter(max_steps=10) cut the rollout
    assert figures["mean_is_loc"] is True  # MEAN exploration takes the Normal's loc
    assert figures["tanh_in_bounds"] is True
    assert figures["explore_actions"] == (3, 2)  # one-hot CartPole actions
    assert figures["loss_keys"] == [
        "loss_actor",
        "loss_value",
        "pred_value",
        "pred_value_max",
        "target_value",
        "target_value_max",
        "td_error",
    ]
    assert finite(figures["total_loss"])
    assert figures["buffer_len"] == figures["indices"] == 200
    assert figures["sample_batch"] == (30,)
    assert "TensorDict(" not in capsys.readouterr().out  # --quiet


def test_walkthrough_prints_the_cells(capsys):
    example_main("walkthrough")(["--device", "cpu"])
    out = capsys.readouterr().out
    assert out.count("TensorDict(") >= 10
    assert "chosen_action_value" in out  # In[25]'s Q-value rollout


def test_ddpg_online_into_a_store(tmp_path, capsys):
    store = tmp_path / "buffer"
    argv = "--frames 400 --frames-per-batch 100 --init-random-frames 100 --optim-steps 5"
    argv += f" --batch-size 32 --print-every 1 --store {store}"
    figures = example_main("ddpg_pendulum_online")(argv.split())
    assert figures["frames"] == 400
    assert figures["updates"] == 4 * 5  # every batch trains once the random frames are in
    assert figures["buffer_len"] == 400
    assert len(figures["returns"]) == 2  # Pendulum episodes are 200 steps
    assert all(finite(r) and r < 0 for r in figures["returns"])
    assert all(finite(v) for v in figures["losses"].values())
    assert finite(figures["eval_return"])
    assert capsys.readouterr().out.count("mean return") == 4
    # the buffer outlives the run: rldata.load reads every collected row back
    assert len(rldata.load(store)) == 400


def test_ddpg_online_in_memmap_files():
    argv = "--frames 200 --frames-per-batch 100 --init-random-frames 200 --optim-steps 2"
    figures = example_main("ddpg_pendulum_online")(argv.split() + ["--batch-size", "16"])
    assert figures["updates"] == 2  # only the batch that completes the random frames trains
    assert figures["buffer_len"] == 200


def test_sac_offline_records_once_then_trains(tmp_path, capsys):
    main = example_main("sac_offline")
    path = tmp_path / "pendulum"
    argv = f"--path {path} --frames 400 --steps 20 --eval-every 10 --batch-size 32".split()
    figures = main(argv + ["--out", str(tmp_path / "run1")])
    out = capsys.readouterr().out
    assert "recorded 400 frames, 2 episodes" in out
    assert figures["rows"] == 400
    assert len(figures["history"]) == 2
    for row in figures["history"]:
        assert set(row) == {"loss_actor", "loss_qvalue", "loss_alpha", "alpha"}
        assert all(finite(v) for v in row.values())
    assert figures["history"][-1]["alpha"] < 1.0  # the temperature is learned
    assert len(figures["eval_returns"]) == 2 and all(finite(r) for r in figures["eval_returns"])
    assert (tmp_path / "run1" / "policy.pt").is_file()

    again = main(argv + ["--out", str(tmp_path / "run2")])  # same path: dataset reused
    assert "recorded" not in capsys.readouterr().out
    assert again["rows"] == 400


def test_offline_to_online_mixes_without_writing_the_dataset(tmp_path):
    argv = f"--path {tmp_path / 'ds'} --dataset-frames 300 --frames 100 --utd 0.2"
    argv += " --eval-every 100 --eval-episodes 1 --batch-size 32"
    figures = example_main("offline_to_online")(argv.split())
    assert figures["mode"] == "offline-to-online"
    assert figures["env_steps"] == 100 and figures["updates"] == 20
    assert figures["dataset_rows"] == figures["dataset_rows_after"] == 300
    assert len(figures["eval_returns"]) == 1 and finite(figures["eval_returns"][0])


def test_redq_online(capsys):
    argv = "--frames 300 --frames-per-batch 100 --init-random-frames 100 --utd 1"
    argv += " --batch-size 32 --num-qvalue-nets 4 --sub-sample-len 2"
    figures = example_main("redq_online")(argv.split())
    assert figures["frames"] == 300
    assert figures["updates"] == 300  # utd 1: one update per frame once training starts
    assert len(figures["returns"]) == 1
    assert finite(figures["eval_return"])
    assert capsys.readouterr().out.count("loss_qvalue") == 3


def test_redq_online_with_the_loss_swapped_for_sac():
    argv = "--loss sac --frames 200 --frames-per-batch 100 --init-random-frames 100 --utd 1"
    argv += " --batch-size 32 --device cpu"
    figures = example_main("redq_online")(argv.split())
    assert figures["updates"] == 200 and figures["device"] == "cpu"
    assert finite(figures["eval_return"])


@pytest.mark.gpu
def test_redq_online_learns_on_the_gpu():
    argv = "--frames 300 --frames-per-batch 100 --init-random-frames 100 --utd 1"
    argv += " --batch-size 32 --num-qvalue-nets 4 --device cuda"
    figures = example_main("redq_online")(argv.split())
    assert figures["device"].startswith("cuda") and figures["updates"] == 300
    assert finite(figures["eval_return"])


def test_record_and_inspect(tmp_path):
    path = tmp_path / "dataset"
    argv = f"--path {path} --frames 300 --more-frames 100 --batch-size 32 --slice-len 8"
    figures = example_main("record_and_inspect")(argv.split())
    summary, more = figures["summary"], figures["more"]
    assert (summary.frames, summary.episodes) == (300, 1)
    assert more.frames == 100
    assert more.first_traj_id == 2  # after ids 0 (finished) and 1 (cut by the frame budget)

    episodes = figures["episodes"]
    assert episodes["traj_id"].tolist() == [0, 1, 2]
    assert episodes["length"].tolist() == [200, 100, 100]
    assert episodes["start"].tolist() == [0, 200, 300]
    assert episodes["truncated"].tolist() == [True, False, False]
    assert figures["manifest"]["env"]["id"] == "Pendulum-v1"
    assert figures["manifest"]["provenance"]["seed"] == 0

    first = figures["first_episode"]
    assert first.batch_size == (200,)
    assert (first["collector", "traj_ids"] == 0).all()
    assert first["next", "reward"].sum().item() == pytest.approx(
        episodes["return"][0].item(), rel=1e-5
    )

    assert figures["rows"] == 400
    assert figures["batch"].batch_size == (32,)
    slices = figures["slices"]
    assert slices.batch_size == (4, 8)
    ids = slices["collector", "traj_ids"]
    assert (ids == ids[:, :1]).all()  # one trajectory per slice
    assert not slices["next", "done"][:, :-1].any()  # no episode end inside a slice


@pytest.mark.slow
def test_ddpg_online_learns_pendulum():
    """The default recipe, shortened: random play scores about -1200; DDPG gets well above."""
    argv = "--frames 5000 --frames-per-batch 200 --init-random-frames 1000 --optim-steps 200"
    figures = example_main("ddpg_pendulum_online")(argv.split() + ["--print-every", "100"])
    first, last = figures["returns"][:5], figures["returns"][-5:]
    assert sum(first) / 5 < -900  # the random start
    assert sum(last) / 5 > -700, last
