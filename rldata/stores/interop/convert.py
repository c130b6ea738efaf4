"""``convert(src, dst)``: copy a dataset between rldata backends, Minari, D4RL and TorchRL.

Sources: an rldata store of any backend, ``minari:NAMESPACE/NAME-vN`` (resolved through
``MINARI_DATASETS_PATH`` as Minari does), ``d4rl:FILE.hdf5``, or a TorchRL memmap storage
directory. Destinations: a new rldata store (``backend`` defaults to the source's, else
memmap) or ``minari:NAMESPACE/NAME-vN``.

Between rldata stores a conversion is lossless: every key with its dtype and shape, the
flags, trajectory ids, extras, specs, env and provenance (with this conversion appended
to ``provenance.conversions``); rows keep their order (oldest first), so the content
digest of source and copy agree. The destination goes through the one destination
policy (:func:`rldata.stores.location.destination.plan_destination`): a ``dst`` that is, lies
inside, or contains ``src`` is refused, an existing ``dst`` is replaced only with
``force`` and only if it is provably a store (a Minari dataset rldata exported), and the
copy is built in a staging sibling and swapped in at the end, so a failed or killed
conversion leaves ``dst`` absent or as it was (a rerun removes the stale staging).
A source store gets the integrity check ``stores.open`` runs, on a second handle in a
thread while the copy is made; the copy is placed only once that check passed.

Examples:
    >>> convert("datasets/pendulum", "datasets/pendulum-zarr", backend="zarr")  # doctest: +SKIP
    >>> convert("datasets/pendulum", "minari:rldata/pendulum-v0")                # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensordict import TensorDict

from rldata import stores
from rldata.errors import ConfigError, StoreNotFoundError
from rldata.stores.backend.blocks import row_blocks
from rldata.stores.backend.opening import refuse_corrupt
from rldata.stores.format import manifest as mf
from rldata.stores.interop import foreign, minari_export, minari_io
from rldata.stores.location.destination import inspect_destination, plan_destination
from rldata.stores.location.places import local_dir

Progress = Callable[[int, int], None]
"""``progress(rows_done, rows_total)`` after each block."""

BLOCK_ROWS = 1 << 16
COMMIT_ROWS = 1 << 20


@dataclass(frozen=True)
class ConvertSummary:
    """What a conversion wrote."""

    src: str
    dst: str
    backend: str
    rows: int
    episodes: int
    seconds: float


@dataclass
class _Source:
    rows: int
    batches: Callable[[], Iterator[TensorDict]]
    specs: Any
    env: tuple[str | None, dict]
    provenance: dict
    backend: str | None = None
    capacity: int | None = None
    allow_nonfinite: bool = False
    store: Any = None
    kind: str = "rldata"
    verifier: _Verifier | None = None

    def checked(self) -> None:
        """Raise if the source store failed its integrity check (waits for the check)."""
        if self.verifier is not None:
            self.verifier.result()

    def close(self) -> None:
        if self.verifier is not None:  # a daemon thread still in torch at exit aborts the process
            self.verifier.wait()
        if self.store is not None:
            self.store.close()


class _Verifier:
    """The source store's integrity check (what ``stores.open`` runs before handing a store
    out), run on its own read-only handle in a thread while the copy is made: hashing
    releases the GIL, so it overlaps the copy on a second core. The copy is built in a
    temporary sibling and placed only after :meth:`result` passed, so nothing read from a
    corrupted store is ever published."""

    def __init__(self, path: Path) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="rldata-convert-verify", daemon=True
        )
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            store = stores.open(path, verify=False)
            try:
                refuse_corrupt(store, "open")  # closes the store when it raises
            finally:
                store.close()
        except BaseException as exc:  # handed to the converting thread by result()
            self._error = exc

    def wait(self) -> None:
        """Let the check finish, keeping its outcome unread (the caller is failing already)."""
        self._thread.join()

    def result(self) -> None:
        """Wait for the check; raise what it raised (``CorruptStoreError`` naming the fault)."""
        self._thread.join()
        if self._error is not None:
            raise self._error


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    backend: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    metadata: dict | None = None,
) -> ConvertSummary:
    """Copy the dataset at ``src`` to the new ``dst`` (see the module docstring for the forms).

    Args:
        src: an rldata store path, ``minari:NS/NAME-vN``, ``d4rl:FILE.hdf5`` or a TorchRL
            memmap storage directory.
        dst: a new rldata store path, or ``minari:NS/NAME-vN``.
        backend: the destination store's backend (default: the source's, else memmap).
        progress: called with (rows done, rows total) after each block.
        force: replace an existing ``dst`` that is provably an rldata store (or a Minari
            dataset rldata exported).
        metadata: descriptive fields that replace the source's in ``dst``'s provenance
            (:func:`rldata.stores.interop.described.described` makes them).

    Raises:
        StoreExistsError: ``dst`` exists (nothing is changed).
        DestinationOverlapError: ``dst`` is, lies inside, or contains ``src``.
        ConfigError: ``backend`` is given for a Minari destination.
        StoreNotFoundError: nothing readable at ``src``.
    """
    started = time.perf_counter()
    src_text, dst_text = os.fspath(src), os.fspath(dst)
    to_minari = dst_text.startswith(minari_io.PREFIX)
    target = minari_io.dataset_dir(dst_text) if to_minari else local_dir(dst_text)
    kind = "minari" if to_minari else "store"
    sources = [_source_path(src_text)]
    inspect_destination(target, kind=kind, sources=sources, force=force, what="convert")
    if to_minari and backend is not None:
        raise ConfigError(
            f"--backend {backend!r} is for rldata stores; {dst_text} is a Minari dataset"
        )
    if backend is not None:
        stores.backend.registry.load(backend)  # an unknown backend fails before anything is read
    if to_minari:  # Minari's files need h5py: a missing extra fails before anything is written
        from rldata.stores.backend import _hdf5  # noqa: F401
    source = _open_source(src_text)
    if metadata:
        source.provenance = {**source.provenance, **metadata}
    try:
        with plan_destination(
            target, kind=kind, sources=sources, force=force, what="convert"
        ) as stage:
            if to_minari:
                rows, episodes, name = _to_minari(source, src_text, dst_text, stage, progress)
            else:
                chosen = backend or _default_backend(source)
                rows, episodes = _to_store(source, src_text, stage, chosen, progress)
        if to_minari:
            minari_export.write_namespaces(name)
            return ConvertSummary(
                src_text, dst_text, "minari", rows, episodes, time.perf_counter() - started
            )
        return ConvertSummary(
            src_text, dst_text, chosen, rows, episodes, time.perf_counter() - started
        )
    except Exception:
        source.checked()  # a corrupted source explains a failed copy: say that instead
        raise
    finally:
        source.close()


# --- sources ------------------------------------------------------------------------------
def _open_source(text: str) -> _Source:
    if text.startswith(minari_io.PREFIX):
        m = minari_io.MinariSource(minari_io.dataset_dir(text))
        return _Source(m.rows, m.batches, m.specs(), m.env, m.provenance, kind="minari")
    if text.startswith(foreign.D4RL_PREFIX):
        d = foreign.D4RLSource(local_dir(text[len(foreign.D4RL_PREFIX) :]))
        return _Source(d.rows, d.batches, None, d.env, d.provenance, kind="d4rl")
    path = local_dir(text)
    if (path / "rldata.json").exists():
        store: Any = stores.open(path, verify=False)  # checked by the verifier, in parallel
        return _Source(
            len(store),
            lambda: _store_batches(store),
            store.specs,
            (store.env_id, store.env_kwargs),
            store.provenance,
            backend=store.backend,
            capacity=store.capacity,
            allow_nonfinite=store.allow_nonfinite,
            store=store,
            verifier=_Verifier(path),
        )
    if foreign.is_torchrl_dir(path):
        t = foreign.TorchRLSource(path)
        return _Source(t.rows, t.batches, None, t.env, t.provenance, kind="torchrl")
    raise StoreNotFoundError(
        f"{text}: not an rldata store, a TorchRL memmap storage, minari:NS/NAME-vN or d4rl:FILE.hdf5"
    )


def _store_batches(store: Any) -> Iterator[TensorDict]:
    """The source's rows, oldest first, one bounded block at a time (never every position)."""
    for block in row_blocks(store, BLOCK_ROWS):
        yield block.rows


def _default_backend(source: _Source) -> str:
    if source.backend in (None, "sharded"):
        return "memmap"
    return str(source.backend)


# --- destinations -----------------------------------------------------------------------
def _source_path(text: str) -> Path:
    """Where the source lives on disk (what the destination may not overlap)."""
    if text.startswith(minari_io.PREFIX):
        return minari_io.dataset_dir(text)
    if text.startswith(foreign.D4RL_PREFIX):
        return local_dir(text[len(foreign.D4RL_PREFIX) :])
    return local_dir(text)


def _provenance(source: _Source, src_text: str, to: str) -> dict:
    prov = dict(source.provenance)
    history = list(prov.get("conversions") or [])
    history.append(
        {
            "from": src_text,
            "from_backend": source.backend or source.kind,
            "to_backend": to,
            "rldata_version": mf.rldata_version(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    prov["conversions"] = history
    return prov


def _to_store(
    source: _Source, src_text: str, target: Path, backend: str, progress: Progress | None
) -> tuple[int, int]:
    cls = stores.backend.registry.load(backend)
    capacity = source.capacity if getattr(cls, "supports_overwrite_rings", True) else None
    tmp = target
    try:
        env_id, env_kwargs = source.env
        store = stores.create(
            tmp,
            backend=backend,
            capacity=capacity,
            specs=source.specs,
            env_id=env_id,
            env_kwargs=env_kwargs,
            provenance=_provenance(source, src_text, backend),
            allow_nonfinite=source.allow_nonfinite,
        )
        try:
            done = since = 0
            for rows in source.batches():
                store.append(rows)
                done += rows.batch_size[0]
                since += rows.batch_size[0]
                if since >= COMMIT_ROWS:  # what a writer holds until its commit stays bounded
                    store.commit()
                    since = 0
                if progress is not None:
                    progress(done, source.rows)
            store.commit()
            episodes = int(store.episodes().batch_size[0])
        finally:
            store.close()
        source.checked()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return done, episodes


def _to_minari(
    source: _Source, src_text: str, dst_text: str, target: Path, progress: Progress | None
) -> tuple[int, int, str]:
    name = minari_io.dataset_id(dst_text)
    tmp = target
    scratch = None
    try:
        store = source.store
        if store is None:  # not an rldata store: land it in a scratch memmap store first
            scratch = Path(tempfile.mkdtemp(prefix="rldata-convert-"))
            _to_store(source, src_text, scratch / "rows", "memmap", None)
            store = stores.open(scratch / "rows", verify=False)
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], len(store))

        episodes = minari_export.export(
            store,
            tmp / "data",
            name,
            progress=step,
            provenance=_provenance(source, src_text, "minari"),
        )
        rows = len(store)
        if scratch is not None:
            store.close()
        source.checked()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if scratch is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    return rows, episodes, name
