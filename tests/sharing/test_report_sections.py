"""The report's sections for users: spec bounds in words, discrete actions as bar charts of
counts per index (per component for a multi-discrete action), the load snippet."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import rldata
from rldata import api
from rldata.sharing import report
from rldata.sharing.report import action_counts, in_words
from rldata.specs import (
    Binary,
    Bounded,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (Bounded(-2.0, 2.0, (3,)), "each of 3 values in [-2, 2]"),
        (Bounded(-2.0, 2.0, (1,)), "value in [-2, 2]"),
        (
            Bounded(0, 255, (64, 64, 3), dtype=torch.uint8),
            "each of 12,288 (64×64×3) integers in 0..255",
        ),
        (
            Bounded(torch.tensor([-1.0, -8.0]), torch.tensor([1.0, 8.0]), (2,)),
            "2 values, each in its own range: [-1, 1], [-8, 8]",
        ),
        (Bounded(-float("inf"), float("inf"), (2,)), "each of 2 values in [-∞, ∞]"),
        (Unbounded((17,)), "17 unbounded floats"),
        (Unbounded((1,)), "1 unbounded float"),
        (Unbounded((4,), dtype=torch.int64), "4 unbounded integers"),
        (Categorical(3), "integer in 0..2"),
        (Categorical(5, shape=(2,)), "each of 2 integers in 0..4"),
        (OneHot(4), "one-hot vector of 4 (index 0..3)"),
        (Binary(3), "3 values, each 0 or 1"),
        (MultiCategorical([3, 4, 2]), "3 integers in 0..2, 0..3, 0..1"),
        (MultiOneHot([2, 3]), "2 one-hot blocks (indices 0..1, 0..2)"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_spec_bounds_read_as_words(spec, words: str) -> None:
    assert in_words(spec.to_json()) == words


def test_a_spec_the_words_do_not_know_is_shown_as_json() -> None:
    assert in_words({"type": "Future", "shape": [2], "dtype": "float32", "k": 1}) == (
        '{"dtype": "float32", "k": 1, "shape": [2]}'
    )


def test_action_counts_per_index_from_indices_and_one_hot_rows() -> None:
    index = torch.tensor([0, 2, 2, 1, 2])
    want = [1, 1, 3]
    assert action_counts(Categorical(3).to_json(), index)[0].tolist() == want
    one_hot = torch.nn.functional.one_hot(index, 3)
    assert action_counts(OneHot(3).to_json(), one_hot)[0].tolist() == want
    outside = torch.tensor([0, 7, -1])  # not an index of the spec: not counted
    assert action_counts(Categorical(3).to_json(), outside)[0].tolist() == [1, 0, 0]


def test_multi_discrete_counts_are_per_component() -> None:
    rows = torch.tensor([[0, 3], [2, 3], [2, 0]])
    got = action_counts(MultiCategorical([3, 4]).to_json(), rows)
    assert [c.tolist() for c in got] == [[1, 0, 2], [1, 0, 0, 2]]
    blocks = torch.cat(
        [torch.nn.functional.one_hot(rows[:, 0], 3), torch.nn.functional.one_hot(rows[:, 1], 4)],
        -1,
    )
    got = action_counts(MultiOneHot([3, 4]).to_json(), blocks)
    assert [c.tolist() for c in got] == [[1, 0, 2], [1, 0, 0, 2]]


class _MultiDiscreteEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 4])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def test_a_multi_discrete_action_is_a_bar_chart_per_component(tmp_path: Path) -> None:
    env_id = "RldataReportMultiDiscrete-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=_MultiDiscreteEnv, max_episode_steps=10)
    api.collect(env_id, frames=40, out=str(tmp_path / "s"), seed=0)
    page = Path(report(tmp_path / "s", tmp_path / "r.html")).read_text()
    assert 'id="plot-actions-action"' in page and 'id="plot-hist-action"' not in page
    assert "how often each action index was taken, per component" in page
    assert "2 integers in 0..2, 0..3" in page


def test_a_continuous_action_keeps_its_histograms_and_the_snippet_names_the_store(
    tmp_path: Path,
) -> None:
    store = tmp_path / "it's here"  # quoted for Python and for the shell
    rldata.record("Pendulum-v1", store, frames=20)
    page = Path(report(store, tmp_path / "r.html")).read_text()
    assert 'id="plot-hist-action"' in page and 'id="plot-actions-action"' not in page
    assert "rldata.load(&quot;" + str(store).replace("'", "&#x27;") + "&quot;" in page
    assert "rldata info &#x27;" in page  # shlex.quote of a path with a quote in it
    assert 'id="no-description"' in page and "<td>not stated</td>" in page


def test_the_snippet_of_a_store_at_a_url_pulls_it_and_long_provenance_is_cut(
    tmp_path: Path,
) -> None:
    url = f"memory://report-snippet-{tmp_path.name}/s"  # zarr records straight to a URL
    rldata.record("Pendulum-v1", url, frames=20, backend="zarr", provenance={"note": "z" * 5000})
    page = Path(report(url, tmp_path / "r.html")).read_text()
    assert f"rldata pull {url} DIR" in page and f"rldata.load(&#x27;{url}&#x27;" in page
    note = page.split("provenance.note</td><td><code>")[1].split("</code>")[0]
    assert len(note) == 600 and note.endswith("…")
