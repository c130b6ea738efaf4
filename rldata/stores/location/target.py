"""Where a recording writes, local or at a URL: one entry point that picks the protocol.

A local path goes to :mod:`rldata.stores.location.destination` (the one destination policy: new,
resumed, or replaced atomically; never overlapping a source);
a URL to :mod:`rldata.stores.location.remote_commit` (new or resumed; numbered manifests).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from rldata.stores.location import destination, remote_commit
from rldata.stores.location.paths import local_dir
from rldata.stores.location.places import is_url, redact


def check_destination(
    path: str | os.PathLike[str],
    *,
    resume: bool,
    force: bool,
    backend: str = "memmap",
    sources: tuple[str | os.PathLike[str], ...] = (),
) -> None:
    """Fail before anything is built if ``path`` cannot be written as asked (see
    :func:`rldata.stores.location.destination.check_destination` and
    :func:`rldata.stores.location.remote_commit.check_destination`)."""
    if is_url(path):
        destination.refuse_overlap(path, sources, what="store")
        remote_commit.check_destination(
            os.fspath(path), resume=resume, force=force, backend=backend
        )
    else:
        destination.check_destination(path, resume=resume, force=force, sources=sources)


@contextlib.contextmanager
def recording_store(
    path: str | os.PathLike[str],
    *,
    backend: str = "memmap",
    resume: bool = False,
    force: bool = False,
    **create_kwargs: Any,
) -> Iterator[Any]:
    """The store a recording writes into, closed (committed; published at a URL) at the end."""
    if is_url(path):
        with remote_commit.recording_store(
            os.fspath(path), backend=backend, resume=resume, **create_kwargs
        ) as store:
            yield store
        return
    with destination.recording_store(
        path, backend=backend, resume=resume, force=force, **create_kwargs
    ) as store:
        yield store


def shown(path: str | os.PathLike[str]) -> str:
    """How a store's place is shown to a user: the URL without credentials, or the local
    directory."""
    return redact(os.fspath(path)) if is_url(path) else str(local_dir(path))
