"""A URL the user can read only with credentials they do not have: one line, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rldata_cli.main import rldata as cli

s3fs = pytest.importorskip("s3fs")


@pytest.mark.parametrize("command", ["info", "verify", "report"])
def test_no_credentials_for_an_s3_url_is_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup
    monkeypatch.setenv("RLDATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # fsspec keeps filesystems by their arguments: an earlier test's client (a moto server,
    # its credentials) would answer this URL instead of a client with none
    s3fs.S3FileSystem.clear_instance_cache()
    args = [command, "s3://no-such-bucket/store"]
    if command == "report":
        args += ["--out", str(tmp_path / "r.html")]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "credentials" in errors[0]
