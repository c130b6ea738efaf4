"""What is provably a store, a run, a report or a Minari export: the checks behind ``force``.

A destination is replaced only when it is provably the same kind of thing rldata writes
(:mod:`rldata.stores.location.destination`); the functions here list what a replacement
would lose otherwise: files a store's manifest does not name, files a run does not write,
a file without rldata's generator mark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rldata.errors import (
    ConfigError,
    CorruptStoreError,
    StoreNotFoundError,
)
from rldata.stores.format import manifest as mf
from rldata.stores.format.chunklog import LOG as CHUNK_LOG
from rldata.stores.format.files import LOCK, MANIFEST, TMP_MARK
from rldata.stores.format.manifest_check import EPISODE_FILE, EPISODE_LOG, STATS_FILE, STATS_LOG

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


KINDS = ("store", "run", "report", "file", "minari")
GENERATOR_MARK = "rldata:generated"
"""The mark rldata leaves in the files it writes (HTML ``<meta name="generator">``, image
metadata), so ``force`` can prove a file is one of ours."""
RUN_MARKER = "rldata-run.json"
"""The file that marks a directory as a training run made by rldata."""
RUN_TOP = frozenset(
    {
        RUN_MARKER,
        "config.json",
        "metrics.csv",
        "summary.json",
        "policy.pt",
        "checkpoint",
        "tensorboard",
    }
)
RUN_CHECKPOINT = frozenset({"state.pt", "trainer.json"})
OBJECT_INDEX = "rldata.objects.json"
"""The object index a push or pull leaves in a store (``rldata.sharing.objects.INDEX``)."""
MINARI_FILES = frozenset({"data/main_data.hdf5", "data/rldata_extras.hdf5", "data/metadata.json"})
_MARK_BYTES = 64 << 20  # a generated report or image is far smaller than this


# --- what an existing destination is -------------------------------------------------------


def what_would_be_lost(root: Path, kind: str) -> list[str]:
    """Why ``root`` is not provably a ``kind`` that rldata made: the files or reasons that
    replacing it would lose (empty: it may be replaced)."""
    if kind == "store":
        if not root.is_dir() or root.is_symlink():
            return [f"{root} is not a directory"]
        if not (root / MANIFEST).is_file():
            return _listing(root) or []
        return stray_files(root)
    if kind == "run":
        return _run_strays(root)
    if kind == "minari":
        return _minari_strays(root)
    if kind in ("report", "file"):
        if not root.is_file() or root.is_symlink():
            return [f"{root} is not a regular file"]
        if not has_generator_mark(root):
            return [f"{root.name} (not written by rldata)"]
        return []
    raise ConfigError(f"destination kind {kind!r}: expected one of {', '.join(KINDS)}")


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def _run_strays(root: Path) -> list[str]:
    if not root.is_dir() or root.is_symlink():
        return [f"{root} is not a directory"]
    stray = []
    for entry in sorted(os.listdir(root)):
        p = root / entry
        if entry not in RUN_TOP or p.is_symlink():
            stray.append(entry)
        elif entry == "checkpoint":
            if not p.is_dir():
                stray.append(entry)
                continue
            for name in sorted(os.listdir(p)):
                q = p / name
                base = name[: -len(".tmp")] if name.endswith(".tmp") else name
                if base not in RUN_CHECKPOINT or not q.is_file() or q.is_symlink():
                    stray.append(f"checkpoint/{name}")
        elif entry == "tensorboard":
            if not p.is_dir():
                stray.append(entry)
                continue
            for q in sorted(p.rglob("*")):
                if q.is_dir() and not q.is_symlink():
                    continue
                if not q.name.startswith("events.out.tfevents.") or q.is_symlink():
                    stray.append(q.relative_to(root).as_posix())
        elif not p.is_file():
            stray.append(entry)
    if not (root / RUN_MARKER).is_file():
        stray.append(f"everything (no {RUN_MARKER}: not a run directory rldata made)")
    return stray


def _minari_strays(root: Path) -> list[str]:
    if not root.is_dir() or root.is_symlink():
        return [f"{root} is not a directory"]
    files = _listing(root)
    stray = [f for f in files if f not in MINARI_FILES]
    if stray:
        return stray
    meta = root / "data" / "metadata.json"
    try:
        import json

        ours = meta.stat().st_size < _MARK_BYTES and "rldata" in json.loads(meta.read_text())
    except (OSError, ValueError):
        ours = False
    return [] if ours else ["data/metadata.json (not a Minari dataset exported by rldata)"]


def has_generator_mark(path: Path) -> bool:
    """Whether the file carries rldata's generator mark (see :data:`GENERATOR`)."""
    try:
        if path.stat().st_size > _MARK_BYTES:
            return False
        data = path.read_bytes()
    except OSError:
        return False
    return GENERATOR_MARK.encode() in data


def generator_tag(what: str) -> str:
    """The text rldata writes as a file's generator (``what``: ``"report"``, ``"plot"``)."""
    return f"rldata {what} ({GENERATOR_MARK})"


def stray_files(root: Path) -> list[str]:
    """Files under ``root`` that the store there does not account for (all of them, relative,
    if its manifest cannot be trusted)."""
    try:
        m = mf.read(root)
    except (CorruptStoreError, StoreNotFoundError) as exc:
        return [f"{MANIFEST} ({exc})"]
    owned_dirs = set()
    if m["backend"] == "sharded":
        owned_dirs = {name for name in m.get("shards", [])}
    payload_dir = m["payload"].get("dir")
    if isinstance(payload_dir, str) and payload_dir and "/" not in payload_dir:
        owned_dirs.add(payload_dir)
    stray = []
    for entry in sorted(os.listdir(root)):
        p = root / entry
        ours = (
            entry in (MANIFEST, LOCK, OBJECT_INDEX)
            or TMP_MARK in entry
            or EPISODE_FILE.match(entry)
            or entry in (EPISODE_LOG, STATS_LOG, CHUNK_LOG)
            or STATS_FILE.match(entry)
        )
        if ours and p.is_file() and not p.is_symlink():
            continue
        if entry in owned_dirs and p.is_dir() and not p.is_symlink():
            if m["backend"] == "sharded":
                stray += [f"{entry}/{s}" for s in stray_files(p)]
            else:
                stray += _stray_payload(root, entry, m)
            continue
        stray.append(entry)
    return stray


def _stray_payload(root: Path, payload_dir: str, m: dict[str, Any]) -> list[str]:
    """Payload files the manifest does not name (memmap lists its files; other backends own
    their payload directory as a whole)."""
    files = m["payload"].get("files")
    if m.get("backend") != "memmap" or not isinstance(files, dict):
        return []  # zarr / parquet name arrays or columns there, not files
    listed = {str(f) for f in files.values()}
    blocks = m["checksums"].get("blocks")  # the block digest sidecar (format 1.4)
    if isinstance(blocks, dict):
        listed.add(str(blocks.get("path")))
    stray = []
    for dirpath, _dirs, names in os.walk(root / payload_dir):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if rel not in listed and name != "meta.json" and TMP_MARK not in name:
                stray.append(rel)
    return sorted(stray)
