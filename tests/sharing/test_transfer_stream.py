"""push/pull stream objects over ``STREAM_BYTES`` a chunk at a time, hashed as they go: the
round trip, a skip of what is there, an update and a corrupted object behave as for
objects copied whole (every object streamed here, in chunks of a few bytes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rldata.sharing import pull, push, transfer
from rldata.stores.location import remote_names
from tests.sharing import test_transfer as whole


@pytest.fixture(autouse=True)
def every_object_streamed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """STREAM_BYTES 0 and 97-byte chunks; records the size of every chunk read."""
    sizes: list[int] = []
    real = remote_names.read_chunks

    def spy(*args, **kwargs):
        for block in real(*args, **kwargs):
            sizes.append(len(block))
            yield block

    monkeypatch.setattr(transfer, "STREAM_BYTES", 0)
    monkeypatch.setattr(remote_names, "CHUNK", 97)
    monkeypatch.setattr(transfer, "read_chunks", spy)
    return sizes


@pytest.mark.parametrize(
    "case",
    [
        whole.test_push_pull_round_trip,
        whole.test_second_push_and_pull_skip_everything,
        whole.test_push_after_more_rows_updates_the_destination_with_force,
        whole.test_pull_refuses_a_corrupted_object,
    ],
    ids=lambda f: f.__name__,
)
def test_streamed_objects_behave_as_whole_ones(
    case, store: Path, remote: str, tmp_path: Path, every_object_streamed: list[int]
) -> None:
    if "tmp_path" in case.__code__.co_varnames[: case.__code__.co_argcount]:
        case(store, remote, tmp_path)
    else:
        case(store, remote)
    assert every_object_streamed and max(every_object_streamed) <= 97


def test_a_streamed_object_that_differs_from_its_index_is_refused(
    store: Path, remote: str, tmp_path: Path
) -> None:
    """A source object whose bytes changed after its object index was written is refused
    (named), and the pull leaves no store behind."""
    import fsspec

    url = f"{remote}/ds"
    push(store, url)
    fs, root = fsspec.core.url_to_fs(url)
    target = f"{root}/data/action.memmap"
    data = bytearray(fs.cat_file(target))
    data[-1] ^= 0xFF
    fs.pipe_file(target, bytes(data))
    with pytest.raises(transfer.TransferError, match="action.memmap"):
        pull(url, tmp_path / "back")
    assert not (tmp_path / "back" / "rldata.json").exists()
