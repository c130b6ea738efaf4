"""Sizes set through the environment: a whole number of bytes, else one ConfigError line
naming the variable (in the CLI: exit 1, no traceback), whatever the value a user typed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import rldata.stores as stores
from rldata import _untrusted as untrusted
from rldata._env import env_bytes
from rldata.errors import ConfigError
from rldata.testing.ted_factory import ted_batch
from rldata_cli.main import rldata

KNOB = "RLDATA_TEST_BYTES"

bad_values = st.one_of(
    st.sampled_from(["abc", "-1", "1.5", "1e9", "512MiB", "0x10", "inf", "nan", "9" * 5000]),
    st.sampled_from(["1 2", "+5", "٣", "\x1b[31m1", "1\n2", str(1 << 63)]),
    st.text(min_size=1, max_size=30).filter(
        lambda s: s.strip() and not s.strip().isascii() and "\x00" not in s  # no NUL in env
    ),
)


@settings(max_examples=60, deadline=None)
@given(bad_values)
def test_a_value_that_is_not_a_whole_number_of_bytes_is_one_line_naming_it(value):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KNOB, value)
        with pytest.raises(ConfigError) as err:
            env_bytes(KNOB, 123)
    message = str(err.value)
    assert KNOB in message and "\n" not in message and len(message) < 300


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 1 << 62), st.sampled_from(["", " ", "_"]))
def test_a_whole_number_is_taken_as_given(n, pad):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KNOB, f"{pad.strip()}{n}{pad}" if pad != "_" else f"{n:_}")
        assert env_bytes(KNOB, 123) == n


def test_unset_or_blank_is_the_default(monkeypatch):
    monkeypatch.delenv(KNOB, raising=False)
    assert env_bytes(KNOB, 123) == 123
    monkeypatch.setenv(KNOB, "  ")
    assert env_bytes(KNOB, 123) == 123


def test_below_the_minimum_is_refused(monkeypatch):
    monkeypatch.setenv(KNOB, "0")
    with pytest.raises(ConfigError, match=r"RLDATA_TEST_BYTES .* from 1 .*got '0'"):
        env_bytes(KNOB, 5, minimum=1)


def test_the_json_limit_is_read_when_a_file_is_read(monkeypatch, tmp_path):
    (tmp_path / "a.json").write_text('{"a": 1}')
    monkeypatch.setenv("RLDATA_JSON_LIMIT", "lots")
    with pytest.raises(ConfigError, match="RLDATA_JSON_LIMIT"):
        untrusted.read_json(tmp_path / "a.json")
    monkeypatch.setenv("RLDATA_JSON_LIMIT", "4")
    with pytest.raises(untrusted.UntrustedFileError, match="over the"):
        untrusted.read_json(tmp_path / "a.json")


def test_the_memory_budget_is_read_when_a_size_is_checked(monkeypatch):
    monkeypatch.setenv("RLDATA_MEMORY_BUDGET", "lots")
    with pytest.raises(ConfigError, match="RLDATA_MEMORY_BUDGET"):
        untrusted.check_budget(10, "here", "a test")
    with pytest.raises(ConfigError, match="RLDATA_MEMORY_BUDGET"):
        untrusted.ram_budget()
    monkeypatch.setenv("RLDATA_MEMORY_BUDGET", "4096")
    assert untrusted.ram_budget() == 4096
    with pytest.raises(untrusted.UntrustedFileError, match="memory budget"):
        untrusted.check_budget(5000, "here", "a test")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    made = {}
    for backend in ("memmap", "zarr", "parquet"):
        made[backend] = tmp_path_factory.mktemp("env") / backend
        with stores.create(made[backend], backend=backend) as w:
            w.append(ted_batch([5, 3]))
    return made


KNOBS = [
    ("RLDATA_JSON_LIMIT", "memmap"),
    ("RLDATA_MAP_BYTES", "memmap"),
    ("RLDATA_MAP_BYTES", "parquet"),
    ("RLDATA_ZARR_CACHE_BYTES", "zarr"),
    ("RLDATA_PARQUET_CACHE_BYTES", "parquet"),
]


@pytest.mark.parametrize("name, backend", KNOBS)
@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_command_given_a_bad_size_exits_1_with_one_line(store, name, backend, command):
    result = CliRunner().invoke(rldata, [command, str(store[backend])], env={name: "12 GB"})
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and name in result.output
    assert "Traceback" not in result.output


def test_the_chunk_cache_size_is_read_when_a_cache_is_made(monkeypatch):
    from rldata.stores.location.chunk_cache import configured_bytes

    monkeypatch.setenv("RLDATA_CHUNK_CACHE_BYTES", "2GiB")
    with pytest.raises(ConfigError, match="RLDATA_CHUNK_CACHE_BYTES"):
        configured_bytes()


def test_importing_rldata_with_bad_sizes_set_does_not_fail():
    names = [name for name, _ in KNOBS] + ["RLDATA_MEMORY_BUDGET", "RLDATA_CHUNK_CACHE_BYTES"]
    bad = dict.fromkeys(names, "x")
    code = (
        "import rldata, rldata.api, rldata_cli.main, rldata.stores.backend._memmap, "
        "rldata.stores.backend._zarr, rldata.stores.backend._parquet, "
        "rldata.stores.location.chunk_cache"
    )
    env = {**os.environ, **bad}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
