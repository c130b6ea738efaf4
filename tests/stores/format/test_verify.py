"""verify / first_fault name each kind of damage; a sound store has none."""

from __future__ import annotations

import pytest
import torch

import rldata.stores as stores
from rldata.errors import CorruptStoreError
from rldata.testing.tamper import edit_manifest, read_manifest
from rldata.testing.ted_factory import ted_marked


def _flip_payload_byte(root):
    f = root / "data" / "action.memmap"
    raw = bytearray(f.read_bytes())
    raw[0] ^= 1
    f.write_bytes(bytes(raw))


def _edit_episode_index(root):
    m = read_manifest(root)
    p = root / m["episodes"]["path"]
    text = p.read_text()
    edited = text.replace('"length": [10', '"length": [11').replace('"length":[10', '"length":[11')
    assert edited != text
    p.write_text(edited)


def _edit_manifest(**fields):
    def spoil(root):
        edit_manifest(root, **fields)

    return spoil


def _break_done_flag(root):
    f = root / "data" / "next" / "done.memmap"
    t = torch.from_file(str(f), shared=True, size=30, dtype=torch.bool)
    t[3] = True  # done without terminated/truncated
    del t


DAMAGE = [  # (name, how, words in the first fault, run checksums)
    ("payload byte", _flip_payload_byte, ["action", "sha256"], True),
    ("episode index edited", _edit_episode_index, ["episode index", "sha256"], True),
    ("cursor off", _edit_manifest(cursor=3), ["'cursor'", "expected 30", "got 3"], True),
    ("length past written", _edit_manifest(length=40), ["'length'", "got 40"], True),
    ("done flag", _break_done_flag, ["row 3", "next.done"], False),
]


@pytest.mark.parametrize("name,spoil,words,sums", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_each_damage_is_named(tmp_path, name, spoil, words, sums):
    root = tmp_path / "s"
    with stores.create(root) as w:
        w.append(ted_marked(0, 30))
    assert stores.first_fault(stores.open(root)) is None
    spoil(root)
    try:  # the manifest's own checks refuse it at open; the rest is verify's job
        fault = stores.first_fault(stores.open(root, verify=False), checksums=sums)
    except CorruptStoreError as exc:
        fault = str(exc)
    assert fault is not None
    for word in words:
        assert word in fault, (word, fault)
