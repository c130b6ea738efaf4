"""Statistics recorded at commit time equal a pass over the rows, and merge exactly."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata import api
from rldata.stores.format import stats as st
from rldata.testing.ted_factory import ted_marked


def _by_pass(rows, keys):
    out = {}
    for key in keys:
        v = rows.get(tuple(key.split("."))).reshape(rows.batch_size[0], -1).double()
        out[key] = {
            "count": v.shape[0],
            "mean": v.mean(0).tolist(),
            "std": v.std(0, unbiased=False).tolist(),
            "min": v.amin(0).tolist(),
            "max": v.amax(0).tolist(),
        }
    return out


def _close(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["count"] == b[key]["count"], key
        for f in ("mean", "std", "min", "max"):
            torch.testing.assert_close(
                torch.tensor(a[key][f]), torch.tensor(b[key][f]), rtol=1e-9, atol=1e-9
            )


@pytest.mark.parametrize("capacity", [None, 50])
def test_recorded_statistics_equal_a_pass_over_the_rows(tmp_path, capacity):
    root = tmp_path / "s"
    with stores.create(root, capacity=capacity) as w:
        for k in range(3):  # trajectories continue across commits
            w.append(ted_marked(k * 17, 17))
            w.commit()
    r = stores.open(root)
    rows = r.get(r.readable())
    _close(r.stats(), _by_pass(rows, st.numeric_keys(r.schema)))
    if capacity is None:  # format 1.5: one line appended a commit, no rewrite
        assert (root / "stats.log").read_bytes().count(b"\n") == 3


def test_statistics_of_a_subset_of_episodes_are_exact(tmp_path):
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 60))
    r = stores.open(root)
    per_traj = r.trajectory_stats()
    keep = sorted(per_traj)[::2]
    rows = r.get(r.readable())
    mask = torch.isin(rows["collector", "traj_ids"], torch.tensor(keep))
    _close(st.summary(per_traj[t] for t in keep), _by_pass(rows[mask], st.numeric_keys(r.schema)))


def test_a_tampered_statistics_file_is_refused(tmp_path):
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 20))
    f = root / stores.open(root).manifest["stats"]["path"]
    f.write_text(f.read_text().replace("1", "2", 1))
    # the open stays cheap; the log is checked when stats() reads it
    with stores.open(root) as r, pytest.raises(Exception, match="statistics log"):
        r.stats()
    assert any("statistics log" in f for f in api.verify(str(root)))
