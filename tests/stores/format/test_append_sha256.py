"""A running SHA-256 resumed from a recorded state gives hashlib's digest, and a state or a
tail that was altered does not resume."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from rldata.stores.format import append_sha256 as appended

pytestmark = pytest.mark.skipif(
    appended._lib() is None, reason="libcrypto's SHA256_* are not reachable through _hashlib"
)


@given(hs.binary(max_size=600), hs.binary(max_size=300), hs.integers(0, 600))
def test_a_resumed_hash_extends_as_one_pass(data, more, cut):
    cut = min(cut, len(data))
    h = appended.RunningSha256()
    h.update(data[:cut])
    h.update(memoryview(data)[cut:])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
    state = h.state()
    assert state is not None and state["at"] % 64 == 0 and len(data) - state["at"] < 64
    again = appended.resume(state, len(data), h.hexdigest(), lambda a, b: data[a:b])
    assert again is not None
    again.update(more)
    assert again.hexdigest() == hashlib.sha256(data + more).hexdigest()


@given(hs.binary(min_size=1, max_size=300), hs.data())
def test_an_altered_tail_or_state_does_not_resume(data, draw):
    h = appended.RunningSha256()
    h.update(data)
    state = h.state()
    assert state is not None
    if len(data) > state["at"]:  # a byte after the state: read again, so it must match
        i = draw.draw(hs.integers(state["at"], len(data) - 1))
        bad = bytearray(data)
        bad[i] ^= draw.draw(hs.integers(1, 255))
        got = appended.resume(state, len(data), h.hexdigest(), lambda a, b: bytes(bad[a:b]))
        assert got is None
    i = draw.draw(hs.integers(0, 63))  # one hex digit of the state changed
    digit = "0123456789abcdef"[(int(state["state"][i], 16) + 1) % 16]
    other = dict(state, state=state["state"][:i] + digit + state["state"][i + 1 :])
    assert appended.resume(other, len(data), h.hexdigest(), lambda a, b: data[a:b]) is None


@pytest.mark.parametrize(
    "record",
    [None, {}, {"at": 3, "state": "00" * 32}, {"at": 0, "state": "zz"}, {"at": -64}, [1, 2]],
)
def test_a_record_that_is_not_a_state_does_not_resume(record):
    assert appended.resume(record, 0, hashlib.sha256().hexdigest(), lambda a, b: b"") is None
