"""``rldata train`` on a disk that fills up: one line naming the path, exit 1, and every
run file and store that existed before is as it was.

The disk is :func:`rldata.testing.diskfull.disk_of`: ``os.write`` / ``os.pwrite`` (the
calls run files and stores write through) fail with ENOSPC, EDQUOT or EFBIG once a drawn
number of bytes has been written, so the failure lands on every write point in turn
(config, metrics, store rows, commits, checkpoint, policy, summary).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rldata.testing.diskfull import disk_of
from rldata_cli.main import rldata as cli

TINY = ["--hidden", "32,32", "--batch-size", "32", "--eval-episodes", "1", "--quiet"]
CODES = [errno.ENOSPC, errno.EDQUOT, errno.EFBIG]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _train(root: Path, *extra: object):
    args = [
        "train", "--algo", "sac", "--env", "Pendulum-v1", "--frames", 120,
        "--init-random-frames", 40, "--frames-per-batch", 40, "--eval-every", 40,
        "--store", root / "store", "--out", root / "run", *TINY, *extra,
    ]  # fmt: skip
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path -> sha256 of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, int]:
    """A finished run and its store, and how many bytes a clean run writes."""
    root = tmp_path_factory.mktemp("finished")
    with disk_of() as disk:
        result = _train(root)
    assert result.exit_code == 0, result.output
    assert disk.written > 10_000 and disk.refused == 0
    return root, disk.written


@pytest.fixture(scope="module")
def resumed_bytes(tmp_path_factory) -> int:
    """How many bytes resuming a finished run to 200 frames writes."""
    root = tmp_path_factory.mktemp("resumed")
    assert _train(root).exit_code == 0
    with disk_of() as disk:
        result = _train(root, "--resume", "--frames", 200)
    assert result.exit_code == 0, result.output
    return disk.written


def _assert_one_line(result, root: Path) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert str(root) in lines[0], lines[0]  # names the path that did not fit
    return lines[0]


def _no_debris(root: Path) -> None:
    names = [p.name for p in root.rglob("*")]
    assert not [n for n in names if n.endswith(".tmp") or ".rldata-staging-" in n], names


FRACTION = st.floats(0, 1, exclude_max=True)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=FRACTION, code=st.sampled_from(CODES))
def test_a_fresh_run_on_a_full_disk_is_one_line_naming_the_path(finished, fraction, code):
    _, total = finished
    with tempfile.TemporaryDirectory(dir=finished[0].parent) as tmp:
        root = Path(tmp)
        with disk_of(int(fraction * total), code) as disk:
            result = _train(root)
        assert disk.refused >= 1
        line = _assert_one_line(result, root)
        assert os.strerror(code) in line, line  # the disk's own words
        _no_debris(root)
        for p in (root / "run").rglob("*.json"):  # what was written is whole
            json.loads(p.read_text())


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=FRACTION, code=st.sampled_from(CODES))
def test_force_on_a_full_disk_leaves_the_old_run_and_store_as_they_were(finished, fraction, code):
    source, total = finished
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        root = Path(tmp)
        shutil.copytree(source / "run", root / "run")
        shutil.copytree(source / "store", root / "store")
        before = _tree(root)
        with disk_of(int(fraction * total), code) as disk:
            result = _train(root, "--force", "--frames", 160)
        assert disk.refused >= 1
        _assert_one_line(result, root)
        assert _tree(root) == before


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fraction=FRACTION, code=st.sampled_from(CODES))
def test_a_resume_stopped_by_a_full_disk_resumes_once_there_is_room(
    resumed_bytes, tmp_path_factory, fraction, code
):
    """What the line promises: the files written before are whole, so ``--resume`` goes on."""
    with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as tmp:
        root = Path(tmp)
        assert _train(root).exit_code == 0  # the run's config names its own store path
        with disk_of(int(fraction * resumed_bytes), code) as disk:
            result = _train(root, "--resume", "--frames", 200)
        assert disk.refused >= 1
        assert os.strerror(code) in _assert_one_line(result, root)
        _no_debris(root)
        result = _train(root, "--resume", "--frames", 200)
        assert result.exit_code == 0, result.output
        assert "200 env steps" in result.output, result.output


def test_the_disk_refuses_past_its_capacity(tmp_path):
    """The simulated disk itself: writes fit up to ``capacity`` bytes, then fail."""
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        with disk_of(5, errno.EDQUOT) as disk:
            assert os.write(fd, b"abc") == 3
            assert os.pwrite(fd, b"defg", 3) == 2
            with pytest.raises(OSError) as info:
                os.write(fd, b"h")
        assert info.value.errno == errno.EDQUOT and disk.refused == 1 and disk.written == 5
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"abcde"


_UNSHARE = shutil.which("unshare")


@pytest.mark.parametrize(
    "size",  # the store's first commit, metrics, the checkpoint (the last two: -m slow)
    ["24k", pytest.param("64k", marks=pytest.mark.slow), "96k",
     pytest.param("160k", marks=pytest.mark.slow)],
)  # fmt: skip
def test_train_on_a_real_full_tmpfs_is_one_line(tmp_path, size):
    """A real tmpfs of ``size`` in a user namespace: the disk's own refusal (store rows,
    metrics, checkpoint, by size), not a simulation."""
    probe = [_UNSHARE or "unshare", "-rm", "true"]
    if _UNSHARE is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("unprivileged mount namespaces are not available (simulated above)")
    disk = tmp_path / "disk"
    disk.mkdir()
    train = (
        f"{sys.executable} -c 'from rldata_cli.main import main; main()' train --algo sac "
        f"--env Pendulum-v1 --frames 200 --init-random-frames 50 --frames-per-batch 50 "
        f"--store {disk}/store --out {disk}/run --hidden 32,32 --batch-size 32 "
        "--eval-episodes 1 --quiet; echo rc=$?; find " + str(disk) + " -name '*.tmp'"
    )
    script = f"mount -t tmpfs -o size={size} none {disk} && {train}"
    result = subprocess.run(
        [_UNSHARE, "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300
    )
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("Error: ") and str(disk) in err and "No space left" in err, err
    assert result.stdout.strip() == "rc=1", result.stdout  # and no temporary file left
