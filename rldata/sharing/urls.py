"""Where a shared store lives: re-exported from :mod:`rldata.stores.location.places`, where the
store layer resolves URLs too (one place checks schemes and keeps credentials out)."""

from __future__ import annotations

from rldata.stores.location.places import ALLOWED, Location, is_url, location, redact

__all__ = ["ALLOWED", "Location", "is_url", "location", "redact"]
