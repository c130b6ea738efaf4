"""The dataset card: integrity check, statistics, and actions outside the action spec."""

from __future__ import annotations

import torch

import rldata.stores as stores
from rldata import api
from rldata.specs import Bounded, Composite, Unbounded
from rldata.testing.ted_factory import ted_marked


def _store(root, low, high):
    specs = Composite(
        {
            "observation": Unbounded(shape=(3,), dtype=torch.float64),
            "action": Bounded(low=low, high=high, shape=(1,), dtype=torch.float32),
            ("next", "reward"): Unbounded(shape=(1,), dtype=torch.float32),
        }
    )
    with stores.create(root, specs=specs) as w:
        w.append(ted_marked(0, 20))  # actions 0, 1, ..., 19
    return root


def test_the_card_counts_actions_outside_a_bounded_spec(tmp_path):
    card = api.dataset_card(str(_store(tmp_path / "s", -0.5, 0.5)))
    assert card["actions_outside_spec"] == 19  # every row but the one with action 0
    assert card["check"] == "ok"


def test_actions_inside_the_spec_are_counted_from_the_statistics(tmp_path, monkeypatch):
    root = _store(tmp_path / "s", 0.0, 100.0)
    from rldata.stores.backend.rowstore import RowStore

    def no_reads(*args):
        raise AssertionError("the statistics should answer without reading rows")

    monkeypatch.setattr(RowStore, "get", no_reads)
    card = api.dataset_card(str(root))
    assert card["actions_outside_spec"] == 0
    assert card["stats"]["action"]["max"] == [19.0]
