"""A dataset's author, description, license and code link: set by ``collect`` / ``convert`` /
``rldata.record``, kept in the provenance under Minari's names, shown by ``info`` (escaped,
bounded) and the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import rldata
from rldata import stores
from rldata.errors import ConfigError
from rldata.sharing import report
from rldata.stores.interop import described
from rldata_cli.main import rldata as cli

META = [
    "--author",
    "Ada",
    "--author",
    "Bob B",
    "--description",
    "Random Pendulum.\nSecond line \x1b[2J",
    "--license",
    "CC-BY-4.0",
    "--code-link",
    "https://example.org/code",
]


def run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def described_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meta") / "ds"
    result = run(
        "collect", "Pendulum-v1", "--frames", 64, "--out", out, "--seed", 0, "--quiet", *META
    )
    assert result.exit_code == 0, result.output
    return out


def test_collect_keeps_the_metadata_in_the_provenance(described_store: Path) -> None:
    with stores.open(described_store) as store:
        prov = store.provenance
    assert prov["author"] == ["Ada", "Bob B"]  # a sorted list, as Minari's set of authors
    assert prov["description"] == "Random Pendulum.\nSecond line \x1b[2J"
    assert prov["license"] == "CC-BY-4.0"
    assert prov["code_permalink"] == "https://example.org/code"


def test_info_shows_the_metadata_escaped(described_store: Path) -> None:
    result = run("info", described_store)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "author       Ada, Bob B" in lines
    assert "license      CC-BY-4.0" in lines
    assert "code link    https://example.org/code" in lines
    at = lines.index("description  Random Pendulum.")
    assert lines[at + 1] == r"             Second line \x1b[2J"  # the ESC is shown, not sent
    assert "\x1b" not in result.output
    assert not any(line.startswith("  description") for line in lines)  # not twice


def test_info_json_holds_the_metadata(described_store: Path) -> None:
    import json

    result = run("info", described_store, "--json")
    card = json.loads(result.output)
    assert card["metadata"]["author"] == ["Ada", "Bob B"]
    assert card["metadata"]["license"] == "CC-BY-4.0"


def test_report_shows_the_metadata(described_store: Path, tmp_path: Path) -> None:
    page = Path(report(described_store, tmp_path / "r.html")).read_text()
    assert 'id="about"' in page
    assert "Ada, Bob B" in page and "CC-BY-4.0" in page
    assert "Random Pendulum." in page and "\x1b" not in page
    assert 'href="https://example.org/code"' not in page  # shown as text: nothing to follow


def test_convert_replaces_the_fields_given_and_keeps_the_others(
    described_store: Path, tmp_path: Path
) -> None:
    result = run("convert", described_store, tmp_path / "copy", "--quiet", "--license", "MIT")
    assert result.exit_code == 0, result.output
    with stores.open(tmp_path / "copy") as store:
        prov = store.provenance
    assert prov["license"] == "MIT"
    assert prov["author"] == ["Ada", "Bob B"] and prov["description"].startswith("Random")


def test_an_overlong_value_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    long = "x" * (described.limit("license") + 1)
    out = tmp_path / "ds"
    result = run("collect", "Pendulum-v1", "--frames", 8, "--out", out, "--license", long)
    assert result.exit_code == 1
    assert "license must be at most 300 characters, got 301" in result.output
    assert not out.exists()


def test_record_takes_the_metadata_as_keyword_arguments(tmp_path: Path) -> None:
    rldata.record(
        "Pendulum-v1",
        tmp_path / "ds",
        frames=8,
        author="Ada",
        description="d",
        license="MIT",
        code_link="https://example.org/x",
    )
    with rldata.open(tmp_path / "ds") as store:
        prov = store.provenance
    assert (prov["author"], prov["description"], prov["license"]) == (["Ada"], "d", "MIT")
    assert prov["code_permalink"] == "https://example.org/x"
    with pytest.raises(ConfigError, match="description must not be empty"):
        rldata.record("Pendulum-v1", tmp_path / "other", frames=8, description=" ")


def test_stored_values_over_their_bound_are_cut_when_read() -> None:
    got = described.bounded({"description": "y" * 5000, "author": "Ada", "license": 3})
    assert len(got["description"]) == described.limit("description")
    assert got["description"].endswith("…") and got["author"] == ["Ada"]
    assert "license" not in got  # not a string: left out


def test_resume_refuses_metadata_it_would_not_write(described_store: Path) -> None:
    result = run(
        "collect",
        "Pendulum-v1",
        "--frames",
        8,
        "--out",
        described_store,
        "--resume",
        "--license",
        "MIT",
    )
    assert result.exit_code == 1
    assert "--resume keeps the store's own" in result.output
    with stores.open(described_store) as store:
        assert store.provenance["license"] == "CC-BY-4.0" and len(store) == 64
