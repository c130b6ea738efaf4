"""Statistics appended to one log (format 1.5): a commit writes only its own records, the
manifest names the log's committed bytes and SHA-256, and its size stays constant."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

import rldata.stores as stores
from rldata import api
from rldata.errors import CorruptStoreError
from rldata.stores.backend.rowstore import RowStore
from rldata.stores.format import stats as st
from rldata.testing.ted_factory import ted_marked


def _write(root, commits, rows=17):
    with stores.create(root) as w:
        for k in range(commits):  # trajectories continue across commits
            w.append(ted_marked(k * rows, rows))
            w.commit()


def _by_rows(root):
    """Per-trajectory records computed from the store's rows (the reference)."""
    r = stores.open(root, verify=False)
    rows = r.get(r.readable())
    columns = {k: rows.get(tuple(k.split("."))) for k in st.numeric_keys(r.schema)}
    return st.summary(st.of_rows(columns, rows["collector", "traj_ids"]).values())


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key]["count"] == b[key]["count"], key
        for f in ("mean", "std", "min", "max"):
            torch.testing.assert_close(torch.tensor(a[key][f]), torch.tensor(b[key][f]))


def test_each_commit_appends_one_line_and_never_rewrites_earlier_ones(tmp_path):
    root = tmp_path / "s"
    _write(root, 2)
    before = (root / "stats.log").read_bytes()
    with stores.open(root, mode="a") as w:
        w.append(ted_marked(34, 17))
    data = (root / "stats.log").read_bytes()
    ref = stores.open(root).manifest["stats"]
    assert data.startswith(before) and data.count(b"\n") == 3
    assert ref == {
        "path": "stats.log",
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert not list(root.glob("stats-*.json"))
    assert all(isinstance(json.loads(line), dict) for line in data.splitlines())


def test_a_half_written_line_past_the_committed_bytes_is_ignored_then_overwritten(tmp_path):
    root = tmp_path / "s"
    _write(root, 2)
    with (root / "stats.log").open("ab") as f:  # a writer that crashed mid-append
        f.write(b'{"99": {"action": [1, [0.5')
    _same(stores.open(root).stats(), _by_rows(root))
    with stores.open(root, mode="a") as w:
        w.append(ted_marked(34, 17))
    data = (root / "stats.log").read_bytes()
    assert b'"99"' not in data and data.count(b"\n") == 3
    _same(stores.open(root).stats(), _by_rows(root))
    assert api.verify(str(root)) == []


def test_a_tampered_committed_byte_is_refused_when_stats_reads_it_and_by_verify(tmp_path):
    root = tmp_path / "s"
    _write(root, 3)
    data = bytearray((root / "stats.log").read_bytes())
    i = data.index(b"1", len(data) // 2)
    data[i] = ord("2")  # still valid JSON: only the digest can tell
    (root / "stats.log").write_bytes(bytes(data))
    r = stores.open(root)  # the open does not read the statistics
    assert len(r) == 51
    with pytest.raises(CorruptStoreError, match="statistics log stats.log: sha256 does not match"):
        r.stats()
    assert any("statistics log" in fault for fault in api.verify(str(root)))


def test_a_truncated_log_is_refused(tmp_path):
    root = tmp_path / "s"
    _write(root, 2)
    data = (root / "stats.log").read_bytes()
    (root / "stats.log").write_bytes(data[:-5])
    with pytest.raises(CorruptStoreError, match="expected at least"):
        stores.open(root).stats()
    assert any("truncated" in fault for fault in api.verify(str(root)))


def test_a_resuming_writer_refuses_a_log_whose_committed_bytes_changed(tmp_path):
    root = tmp_path / "s"
    _write(root, 2)
    (root / "stats.log").write_bytes(b"x" * (root / "stats.log").stat().st_size)
    with pytest.raises(CorruptStoreError, match="cannot resume.*statistics log stats.log"):
        stores.open(root, mode="a")


def test_a_store_with_one_file_a_commit_stays_readable_and_keeps_its_layout(tmp_path, monkeypatch):
    root = tmp_path / "s"
    monkeypatch.setattr(RowStore, "stats_log", False)  # written as before format 1.5
    _write(root, 2)
    monkeypatch.undo()
    assert len(stores.open(root).manifest["stats"]) == 2  # one file a commit
    with stores.open(root, mode="a") as w:  # resumed by this version
        w.append(ted_marked(34, 17))
    listed = stores.open(root).manifest["stats"]
    assert len(listed) == 3 and not (root / "stats.log").exists()
    _same(stores.open(root).stats(), _by_rows(root))
    assert api.verify(str(root)) == []


@pytest.mark.parametrize("backend", ["memmap", "zarr"])  # parquet lists a part a commit
def test_the_manifest_does_not_grow_with_the_number_of_commits(tmp_path, backend):
    sizes = {}
    for commits in (10, 100):
        root = tmp_path / f"s{commits}"
        with stores.create(root, backend=backend) as w:
            for k in range(commits):  # 2 rows a commit: the store stays in one chunk
                w.append(ted_marked(2 * k, 2))
                w.commit()
        m = json.loads((root / "rldata.json").read_bytes())
        # quantile sketches keep at most MAX_BINS buckets a side, whatever the rows: they
        # grow with the range of the values (these rows' values grow), never with commits
        sides = [
            s[side]
            for feats in m.pop("quantiles").values()
            for s in feats
            for side in ("pos", "neg")
        ]
        assert all(len(side) == 0 or len(side[1]) <= st.MAX_BINS for side in sides)
        sizes[commits] = len(json.dumps(m, separators=(",", ":")))
    # only numbers (generation, rows, log length) gain digits; a list entry per commit would
    # add ~90 bytes a commit, 8 KB here
    assert sizes[100] - sizes[10] < 64, sizes
