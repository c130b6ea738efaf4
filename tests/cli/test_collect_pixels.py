"""``rldata collect ENV --from-pixels [--no-pixels-only]``: a pixel dataset is one command."""

from __future__ import annotations

import torch
from click.testing import CliRunner

import rldata
from rldata import api
from rldata_cli.main import rldata as main


def test_collect_from_pixels_keeps_the_state_and_stores_each_frame_once(tmp_path):
    out = tmp_path / "pix"
    result = CliRunner().invoke(
        main,
        [
            "collect",
            "Pendulum-v1",
            "--frames",
            "20",
            "--out",
            str(out),
            "--from-pixels",
            "--no-pixels-only",
            "--seed",
            "0",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    store = rldata.open(out)
    assert len(store) == 20
    assert store.schema["pixels"] == {"shape": [500, 500, 3], "dtype": "uint8"}
    assert store.schema["observation"] == {"shape": [3], "dtype": "float32"}
    assert store.provenance["from_pixels"] is True and store.provenance["pixels_only"] is False
    assert sorted(store.manifest["payload"]["next_stored_once"]) == ["observation", "pixels"]
    rows = store.get(store.readable())
    assert torch.equal(rows["next", "pixels"][:-1], rows["pixels"][1:])
    assert api.verify(str(out)) == []
