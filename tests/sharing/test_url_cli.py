"""The CLI on stores at URLs: collect --out URL (new, resumed), info URL, verify URL, refusals."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rldata import stores
from rldata_cli.main import rldata


def _run(*args: str) -> object:
    return CliRunner().invoke(rldata, list(args))


@pytest.mark.parametrize(
    ("remote", "backend"),
    [
        ("memory", "zarr"),
        ("memory", "parquet"),
        ("s3", "zarr"),
        pytest.param("s3", "parquet", marks=pytest.mark.slow),
    ],
    indirect=["remote"],
)
def test_collect_info_verify_at_url(remote: str, backend: str) -> None:
    url = f"{remote}/pendulum"
    common = ["--out", url, "--backend", backend, "--commit-every", "32", "--quiet", "--seed", "1"]
    result = _run("collect", "Pendulum-v1", "--frames", "64", *common)
    assert result.exit_code == 0, result.output
    assert f"into {url} [{backend}]: 64 rows" in result.output
    result = _run("collect", "Pendulum-v1", "--frames", "32", "--resume", *common)
    assert result.exit_code == 0, result.output
    assert "96 rows" in result.output
    with stores.open(url) as r:
        assert len(r) == 96 and r.env_id == "Pendulum-v1"
    result = _run("info", url)
    assert result.exit_code == 0, result.output
    assert f"store        {url}" in result.output and "transitions  96" in result.output
    assert "check        ok" in result.output
    result = _run("verify", url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok: {url} holds 96 rows")


@pytest.mark.parametrize(
    "remote", ["memory", pytest.param("s3", marks=pytest.mark.slow)], indirect=True
)
def test_collect_refusals_are_one_line(remote: str) -> None:
    url = f"{remote}/pendulum"
    result = _run("collect", "Pendulum-v1", "--frames", "8", "--out", url, "--quiet")
    assert result.exit_code == 1
    assert "backend 'memmap' is refused at a URL" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = _run("collect", "Pendulum-v1", "--frames", "8", "--out", url, "--resume", "--quiet")
    assert result.exit_code == 1 and "--resume: no rldata store at" in result.output
    args = ["--frames", "8", "--out", url, "--backend", "zarr", "--quiet"]
    assert _run("collect", "Pendulum-v1", *args).exit_code == 0
    result = _run("collect", "Pendulum-v1", *args)
    assert result.exit_code == 1 and "pass --resume to append" in result.output
    result = _run("collect", "Pendulum-v1", *args, "--force")
    assert result.exit_code == 1 and "never replaced" in result.output
    result = _run("info", "ftp://example.com/x")
    assert result.exit_code == 1 and "refused for safety" in result.output


def test_a_missing_bucket_is_one_line(s3_env: str) -> None:
    args = ["--frames", "8", "--out", "s3://no-such-bucket-rl/ds", "--backend", "zarr", "--quiet"]
    result = _run("collect", "Pendulum-v1", *args)
    assert result.exit_code == 1
    assert "store URL s3://no-such-bucket-rl/ds: cannot write objects/" in result.output
    assert "bucket does not exist" in result.output and "Traceback" not in result.output
