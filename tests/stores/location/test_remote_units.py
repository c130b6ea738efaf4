"""Ranged reads of a remote store's units: ``bounded_s3_ranges`` reads exactly the range
asked for, however the body arrives, and never reads a body the server sized otherwise."""

from __future__ import annotations

from fsspec.asyn import get_loop

from rldata.stores.location.remote_units import Units, bounded_s3_ranges, coalesce

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


def test_coalesced_ranges_cover_each_wanted_unit_once_within_the_gap() -> None:
    units = Units("k", "k.memmap", 10, 100, 50, 100, lambda c: f"{c:064x}")  # 1,000 B a unit
    wanted = [(units, c) for c in (0, 1, 3, 9, 3, 49)]
    spans = coalesce(wanted, gap=1000)  # units 0..3 read as one range (unit 2 between)
    assert [(s.first, s.stop) for s in spans] == [(0, 4), (9, 10), (49, 50)]
    assert sorted(j for s in spans for _c, j in s.wanted) == list(range(6))
    assert [(s.first, s.stop) for s in coalesce(wanted, gap=0)] == [
        (0, 2),
        (3, 4),
        (9, 10),
        (49, 50),
    ]
