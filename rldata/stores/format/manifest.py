"""The ``rldata.json`` manifest: what a reader may trust, and the format version check.

The manifest is plain JSON (never pickle). It is the only source of truth for which
rows are committed; ``docs/FORMAT.md`` documents every field. Writers replace it with
:func:`write`, which is atomic (see :mod:`rldata.stores.format.commit`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rldata import _untrusted as untrusted
from rldata.errors import CorruptStoreError, FormatVersionError, StoreNotFoundError
from rldata.stores.format import manifest_check
from rldata.stores.format.commit import atomic_write
from rldata.stores.format.files import manifest_path

FORMAT_NAME = "rldata"
FORMAT_VERSION = "1.8.0"
"""Semantic version of the on-disk format. A reader accepts any ``1.x.y``; a newer major is refused."""

SELF_SUM = "manifest_sha256"
"""The manifest's own checksum: sha256 of its canonical JSON without this field, so a flipped
byte anywhere in the manifest is detected (docs/FORMAT.md, "Integrity")."""


@functools.cache  # importlib.metadata scans every installed distribution: milliseconds
def rldata_version() -> str:
    """The installed rldata version, for provenance."""
    try:
        return metadata.version("rldata")
    except metadata.PackageNotFoundError:  # a source checkout that is not pip-installed
        import rldata

        return str(getattr(rldata, "__version__", "0.0.0+unknown"))


def new(
    *,
    backend: str,
    capacity: int | None,
    specs: dict | None,
    env_id: str | None,
    env_kwargs: dict | None,
    provenance: dict | None,
    commit_every: int | None,
    allow_nonfinite: bool,
) -> dict[str, Any]:
    """The manifest of a freshly created, empty store."""
    prov = {
        "policy": None,
        "seed": None,
        "rldata_version": rldata_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    prov.update(provenance or {})
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "backend": backend,
        "generation": 0,
        "schema": None,
        "specs": specs,
        "env": {"id": env_id, "kwargs": dict(env_kwargs or {})},
        "capacity": capacity,
        "written": 0,
        "length": 0,
        "cursor": 0,
        "max_traj_id": -1,
        "commit_every": commit_every,
        "allow_nonfinite": allow_nonfinite,
        "payload": {},
        "checksums": {"algorithm": "sha256", "chunk_rows": None, "chunks": {}},
        "episodes": None,
        "stats": [] if capacity is None else None,
        "provenance": prov,
    }


def check_version(found: Any, where: object) -> None:
    """Refuse a manifest whose format major version is newer than this reader's.

    Raises:
        FormatVersionError: the store was written by a newer, incompatible rldata.
        CorruptStoreError: the version is not a ``MAJOR.MINOR.PATCH`` string.
    """
    try:
        major = int(str(found).split(".")[0])
    except ValueError:
        raise CorruptStoreError(
            f"{where}: format_version must be 'MAJOR.MINOR.PATCH', got {found!r}"
        ) from None
    ours = int(FORMAT_VERSION.split(".")[0])
    if major > ours:
        raise FormatVersionError(
            f"{where}: store format version {found} is newer than this rldata reads "
            f"({ours}.x); upgrade rldata to open it"
        )


def read(root: Path) -> dict[str, Any]:
    """Read and check the manifest of the store at ``root``.

    Raises:
        StoreNotFoundError: there is no ``rldata.json`` at ``root``.
        CorruptStoreError: it is not JSON, not an rldata manifest, its checksum does not
            match, or a field is missing or out of range (:mod:`manifest_check`).
        FormatVersionError: it was written by a newer major format version.
    """
    path = manifest_path(root)
    try:
        text = untrusted.read_bytes(path, "manifest", error=CorruptStoreError)
    except FileNotFoundError:
        raise StoreNotFoundError(f"no rldata store at {root} (missing {path.name})") from None
    except NotADirectoryError:
        raise StoreNotFoundError(f"no rldata store at {root} (not a directory)") from None
    except IsADirectoryError:
        raise CorruptStoreError(f"{path}: manifest is a directory, not a file") from None
    except PermissionError:
        raise StoreNotFoundError(f"{path}: manifest is not readable (permission denied)") from None
    return parse(text, path)


def parse(text: bytes, path: object) -> dict[str, Any]:
    """Check manifest bytes read from ``path`` (see :func:`read`) and return the manifest."""
    data = untrusted.loads_json(text, path, "manifest", error=CorruptStoreError, finite=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CorruptStoreError(f"{path}: expected format {FORMAT_NAME!r}, got {found!r}")
    check_version(data.get("format_version"), path)
    claimed = data.pop(SELF_SUM, None)
    if claimed != _self_sum(data):
        what = "has no checksum" if claimed is None else "does not match its checksum"
        raise CorruptStoreError(f"{path}: manifest {what} (field {SELF_SUM!r}); it was altered")
    manifest_check.check(data, path)
    return data


def _self_sum(data: dict[str, Any]) -> str:
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(body.encode()).hexdigest()


def dumps(data: dict[str, Any]) -> bytes:
    """The bytes of a manifest as written: ``data`` plus its own checksum."""
    body = {k: v for k, v in data.items() if k != SELF_SUM}
    return json.dumps({**body, SELF_SUM: _self_sum(body)}, separators=(",", ":")).encode()


def write(root: Path, data: dict[str, Any], *, durable: bool = True) -> None:
    """Replace the manifest atomically (temp file, fsync, rename, fsync directory)."""
    atomic_write(manifest_path(root), dumps(data), durable=durable)
