"""The parquet backend: the store contract (rings refused), plus what only parquet promises."""

from __future__ import annotations

from rldata.testing.store_contract import StoreContract


class TestParquetContract(StoreContract):
    backend = "parquet"
