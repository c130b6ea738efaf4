"""The walkthrough's import path: ``from rldata.data.replay_buffers import ReplayBuffer, ...``."""

from __future__ import annotations

from rldata.data import *  # noqa: F403
from rldata.data import __all__  # noqa: F401
