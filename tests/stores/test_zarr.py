"""The zarr backend: the store contract, plus what only zarr promises."""

from __future__ import annotations

from rldata.testing.store_contract import StoreContract


class TestZarrContract(StoreContract):
    backend = "zarr"
