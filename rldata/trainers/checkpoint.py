"""Checkpoints that hold tensors and JSON only: loading a shared run never runs code.

A run directory holds::

    RUN/config.json            the TrainConfig (JSON)
    RUN/checkpoint/state.pt    state dicts of the loss (networks, targets), optimizer,
                               exploration noise and RNG: tensors and plain numbers only,
                               read back with torch.load(weights_only=True)
    RUN/checkpoint/trainer.json  counters (env steps, updates, next evaluation), evaluations
    RUN/policy.pt              the acting policy in rldata's policy-checkpoint format
                               (rldata collect --policy RUN, rldata eval RUN)

Each file is written through a temporary name and a rename (:mod:`rldata.trainers.files`).
The two renames are not one step, so ``state.pt`` also carries the counters it was saved
with (``trainer.json``'s text under :data:`EMBEDDED_META`), and a resume takes them from
there: weights and counters always come from the same save, even when a crash or a full
disk fell between the two renames. ``trainer.json`` stays the readable copy; checkpoints
written before the embedded copy existed resume from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rldata import _untrusted as untrusted
from rldata.errors import ConfigError
from rldata.trainers import files
from rldata.trainers.files import refusing_full_disk

CHECKPOINT_DIR = "checkpoint"
STATE = "state.pt"
META = "trainer.json"
#: Largest ``state.pt`` read back (networks, optimizer state, RNG): bytes.
MAX_STATE = 4 * 2**30
#: The key of ``state.pt`` holding ``trainer.json``'s text as it was saved with these tensors.
EMBEDDED_META = "trainer.json"


def save_checkpoint(run_dir: Path, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``state`` (tensors) and ``meta`` (JSON) under ``run_dir/checkpoint``."""
    ckpt = run_dir / CHECKPOINT_DIR
    with refusing_full_disk(ckpt):
        ckpt.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, indent=1)
    files.save_tensors(ckpt / STATE, {**state, EMBEDDED_META: text})
    files.write_text(ckpt / META, text)
    return ckpt


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, meta)`` of the run's last complete checkpoint.

    Raises:
        ConfigError: no checkpoint, or a file that is not tensors-and-JSON.
    """
    ckpt = run_dir / CHECKPOINT_DIR
    if not (ckpt / META).is_file() or not (ckpt / STATE).is_file():
        raise ConfigError(f"no checkpoint to resume in {str(run_dir)!r} (expected {ckpt}/{META})")
    try:
        with untrusted.open_regular(ckpt / STATE, STATE, limit=MAX_STATE, error=ConfigError) as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
        raise ConfigError(
            f"{str(ckpt / STATE)!r} is not readable with weights_only=True: {err}"
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(
            f"{str(ckpt / STATE)!r}: expected a dict of tensors, got {type(state).__name__}"
        )
    readable = read_json(ckpt / META)  # a damaged copy is refused even when not needed
    embedded = state.pop(EMBEDDED_META, None)
    if embedded is None:  # written before the counters travelled with the tensors
        return state, readable
    where = f"{str(ckpt / STATE)!r}"
    if not isinstance(embedded, str):
        raise ConfigError(
            f"{where}: {EMBEDDED_META} must be JSON text, got {type(embedded).__name__}"
        )
    meta = untrusted.loads_json(embedded, where, META, error=ConfigError)
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: {META} must hold a JSON object, got {type(meta).__name__}")
    return state, meta


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A run's JSON file (``config.json``, ``summary.json``, ``trainer.json``) as a dict.

    Read through :mod:`rldata._untrusted` (regular file, size and depth limits).

    Raises:
        ConfigError: the file is not a regular file, too large, not JSON or not an object.
    """
    what = Path(path).name
    data = untrusted.read_json(path, what, limit=64 * 2**20, error=ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must hold a JSON object, got {type(data).__name__}")
    return data
