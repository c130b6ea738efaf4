"""Devices: a checked device name, and batches that reach the GPU without stalling it.

Sampling from a CPU or disk store costs CPU time (index math, gathers, page faults);
a GPU waiting on it idles. :class:`BatchStream` samples in a background thread into
pinned (page-locked) memory, and issues the copy of the next batch with
``non_blocking=True`` before the current one is used, so gathers, the host-to-device
copy and the update overlap. A replay that already lives on the GPU is sampled in
place (no thread, no copy).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from rldata.errors import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``name`` as a ``torch.device``, or one clear :class:`ConfigError` if it is not here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {str(name)!r} is not a device name ({err})") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ConfigError(f"device {str(name)!r}: only 'cpu' and 'cuda[:N]' are supported")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {str(name)!r} asked for, but CUDA is not available on this machine "
            f"(torch {torch.__version__}); use --device cpu"
        )
    count = torch.cuda.device_count()
    index = 0 if device.index is None else device.index
    if index >= count:
        raise ConfigError(
            f"device {str(name)!r} does not exist: this machine has {count} CUDA device(s) "
            f"(cuda:0 .. cuda:{count - 1})"
        )
    return torch.device("cuda", index)


class BatchStream:
    """Batches from ``sample()`` on ``device``, prepared ``depth`` ahead in a background thread.

    On a CUDA device each batch is pinned in the thread and copied with
    ``non_blocking=True``; on the CPU the thread only samples ahead.

    Args:
        sample: draws one batch (on the CPU).
        device: where batches are used.
        depth: batches sampled ahead (at least 1).
    """

    def __init__(
        self,
        sample: Callable[[], TensorDictBase],
        device: torch.device,
        depth: int = 2,
    ) -> None:
        self.sample = sample
        self.device = device
        self.depth = max(1, int(depth))
        self._queue: queue.Queue = queue.Queue(maxsize=self.depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next: TensorDictBase | None = None

    def _work(self) -> None:
        pin = self.device.type == "cuda"
        while not self._stop.is_set():
            try:
                batch = self.sample()
                if pin:
                    batch = batch.pin_memory()
            except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
                self._queue.put(err)
                return
            while not self._stop.is_set():
                try:
                    self._queue.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _take(self) -> TensorDictBase:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="rldata-batches", daemon=True)
            self._thread.start()
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        if self.device.type == "cuda":
            return item.to(self.device, non_blocking=True)
        return item

    def next(self) -> TensorDictBase:
        """The next batch on ``device`` (the copy of the one after it is already issued)."""
        if self._next is None:
            self._next = self._take()
        batch, self._next = self._next, self._take()
        return batch

    def close(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            while not self._queue.empty():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
            self._thread = None
