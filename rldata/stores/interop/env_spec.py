"""Gymnasium's EnvSpec JSON of an env id, as Minari's ``env_spec`` holds it.

Kept apart from the Minari reader and writer, which need h5py (the ``hdf5`` extra): every
recording stores this JSON in its provenance, and recording needs only the runtime
dependencies (a plain ``pip install rldata`` then ``rldata collect`` failed on h5py).
"""

from __future__ import annotations

import dataclasses
import re

ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Z]\w*$")
"""An environment class as Minari and gymnasium name one: ``module.path:ClassName``."""


def env_spec_json(env_id: str, kwargs: dict) -> str | None:
    """Gymnasium's EnvSpec JSON for ``env_id`` with ``kwargs`` over its registered ones, as
    Minari's ``env_spec`` holds it; None when the id is not registered, its entry point is a
    class no import reaches (made in a function), or the kwargs are not JSON. ``env_id`` is
    looked up, never imported: callers pass an id the user gave, or one checked as data."""
    try:
        import gymnasium

        spec = gymnasium.spec(env_id)
        entry = spec.entry_point
        if callable(entry):  # registered with a class: named module:Class, as Minari makes it
            entry = f"{entry.__module__}:{getattr(entry, '__qualname__', entry)}"
            if not ENTRY_POINT.match(entry):  # a class no import reaches (made in a function)
                return None
        # replace(): EnvSpec(**fields) fails on its derived fields, which dropped env_spec
        return dataclasses.replace(
            spec, entry_point=entry, kwargs={**spec.kwargs, **kwargs}
        ).to_json()
    except Exception:  # not registered here, or kwargs that are not JSON: Minari allows none
        return None
