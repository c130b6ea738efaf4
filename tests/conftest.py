"""The whole suite's machine-local state (copies of stores, streamed units, proof records)
goes to a fresh directory, never the user's ``~/.cache/rldata``: a test neither sees what an
earlier run left nor leaves anything behind."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "RLDATA_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="rldata-test-cache-")
    os.environ["RLDATA_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
