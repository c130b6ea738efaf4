"""A test's guard against a read that blocks forever (a FIFO where a file belongs)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_hang(seconds: int, what: str = "the call") -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread if the block runs past ``seconds``
    (``SIGALRM``: a blocked ``open`` of a FIFO is interrupted, where a thread could not be)."""

    def _raise(*_: object) -> None:
        raise TimeoutError(f"{what} blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
