"""The dataset card's content digest (through ``digest_of``: a sequential read of the payload
files where memmap stores every row in them) equals the store's content digest."""

from __future__ import annotations

import pytest

from rldata import stores
from rldata.sharing.card import dataset_card
from rldata.testing.ted_factory import ted_marked


@pytest.mark.parametrize(
    ("backend", "capacity"), [("memmap", None), ("memmap", 40), ("parquet", None)]
)
def test_the_card_digest_equals_the_content_digest(tmp_path, backend, capacity):
    path = tmp_path / "s"
    with stores.create(path, backend=backend, capacity=capacity, durable=False) as w:
        for a in range(0, 120, 30):
            w.append(ted_marked(a, 30, episode_length=15))
            w.commit()
    with stores.open(path) as s:
        want = stores.content_digest(s)
    card = dataset_card(str(path))
    assert card["check"] == "ok" and card["content_digest"] == want
