"""Ranged reads of a remote store's units: ``bounded_s3_ranges`` reads exactly the range
asked for, however the body arrives, and never reads a body the server sized otherwise."""

from __future__ import annotations

from fsspec.asyn import get_loop

from rldata.stores.location.remote_units import bounded_s3_ranges

OBJECT = bytes(range(256)) * 64  # 16 KiB


class TrickleBody:
    """A response body that hands out at most 10 bytes a read, as a socket may."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read_bytes = data, 0

    async def read(self, amt: int | None = None) -> bytes:
        n = min(10, len(self.data) if amt is None else amt)
        part, self.data = self.data[:n], self.data[n:]
        self.read_bytes += len(part)
        return part

    def close(self) -> None:
        pass


class FakeS3:
    """Just what ``bounded_s3_ranges`` uses of s3fs; ``honour_range=False`` is a server
    that answers every GET with the whole object."""

    def __init__(self, honour_range: bool = True) -> None:
        self.loop = get_loop()
        self.honour_range = honour_range
        self.bodies: list[TrickleBody] = []

    def split_path(self, path: str) -> tuple[str, str, None]:
        bucket, key = path.split("/", 1)
        return bucket, key, None

    async def _call_s3(self, method: str, **kw: str) -> dict:
        a, b = (int(x) for x in kw["Range"].removeprefix("bytes=").split("-"))
        data = OBJECT[a : b + 1] if self.honour_range else OBJECT
        self.bodies.append(TrickleBody(data))
        return {"ContentLength": len(data), "Body": self.bodies[-1]}


def test_a_range_that_arrives_in_pieces_is_read_whole() -> None:
    fs = FakeS3()
    got = bounded_s3_ranges(fs, ["b/x", "b/x"], [(100, 5000), (0, 16384)])
    assert got == [OBJECT[100:5000], OBJECT]


def test_a_whole_object_answer_is_refused_unread() -> None:
    fs = FakeS3(honour_range=False)
    assert bounded_s3_ranges(fs, ["b/x"], [(100, 200)]) == [len(OBJECT)]
    assert [body.read_bytes for body in fs.bodies] == [0]
