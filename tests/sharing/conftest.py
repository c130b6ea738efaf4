"""Fixtures: a real S3-compatible server (moto in server mode) on loopback, and small stores.

``remote`` is parametrized over ``memory://`` (fast, in-process) and ``s3://`` (through
s3fs, over HTTP to the moto server), so every sharing test runs against both.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rldata import stores
from rldata.testing import ted_batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start a moto S3 server on a free loopback port for the session; stop it after."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point s3fs (through botocore's usual environment variables) at the moto server."""
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3fs.S3FileSystem.clear_instance_cache()
    return moto_endpoint


@pytest.fixture(params=["memory", "s3"])
def remote(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty base URL on ``memory://`` or on the moto S3 server."""
    name = f"rl-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        import fsspec

        yield f"memory://{name}"
        fs = fsspec.filesystem("memory")
        if fs.exists(f"/{name}"):
            fs.rm(f"/{name}", recursive=True)
        return
    request.getfixturevalue("s3_env")
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir(name)
    yield f"s3://{name}"
    fs.rm(name, recursive=True)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own remote-store cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("RLDATA_CACHE", str(path))
    return path


def make_store(path: Path | str, episode_lengths: list[int], *, first_id: int = 0) -> Path | str:
    """A committed memmap store of TED episodes (content derives from each episode's traj id)."""
    td = ted_batch(episode_lengths, start_traj_id=first_id)
    with stores.create(path, capacity=None) as w:
        w.append(td)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A small store: 6 episodes, 90 rows."""
    return make_store(tmp_path / "src", [20, 10, 15, 5, 25, 15])
