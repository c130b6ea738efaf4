"""Sharing stores between teams: push / pull to object storage, remote reads, diff, merge, report.

Everything here works through the public store API (``rldata.stores``) and fsspec URLs;
see ``docs/FORMAT.md`` ("Remote stores") for the push protocol.
"""

from __future__ import annotations

from rldata.sharing.cache import cache_root, open_url
from rldata.sharing.diff import StoreDiff, diff
from rldata.sharing.merge import MergeSummary, merge
from rldata.sharing.report import report
from rldata.sharing.transfer import TransferSummary, pull, push
from rldata.sharing.urls import is_url

__all__ = [
    "MergeSummary",
    "StoreDiff",
    "TransferSummary",
    "cache_root",
    "diff",
    "is_url",
    "merge",
    "open_url",
    "pull",
    "push",
    "report",
]
