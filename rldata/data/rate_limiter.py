"""A sample-to-insert rate limiter: holds an update-to-data ratio when collection is async.

When a collector inserts rows from its own thread (or process) while a learner samples,
nothing ties their speeds together: a fast learner overfits a few rows, a fast
collector wastes them. :class:`SampleToInsertRatio` follows the semantics of Reverb's
rate limiter of the same name (Cassirer et al. 2021, ``reverb/rate_limiters.py``): it
counts inserts and samples and blocks whichever side would push
``inserts * samples_per_insert - samples`` out of a band around its target.

The loop it serves::

    limiter = SampleToInsertRatio(samples_per_insert=4.0, min_size_to_sample=1000,
                                  error_buffer=400.0)
    # collector thread                      # learner
    limiter.await_can_insert(n)             limiter.await_can_sample(1)
    buffer.extend(batch)                    batch = buffer.sample()
    limiter.inserted(n)                     limiter.sampled(1)

Examples:
    >>> limiter = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=2,
    ...                               error_buffer=4.0)
    >>> limiter.can_sample(1)
    False
    >>> limiter.inserted(2); limiter.can_sample(1)
    True
"""

from __future__ import annotations

import threading
import time

from rldata.errors import ConfigError


class RateLimiterTimeout(ConfigError, TimeoutError):
    """A wait on the rate limiter ran past its timeout (the other side stopped)."""


class SampleToInsertRatio:
    """Block inserts or samples to keep ``samples / inserts`` near ``samples_per_insert``.

    Sampling waits until ``min_size_to_sample`` rows were inserted. After that, with
    ``diff = inserts * samples_per_insert - samples`` and
    ``offset = samples_per_insert * min_size_to_sample``, a sample is allowed while
    ``diff - n >= offset - error_buffer`` and an insert while
    ``diff + samples_per_insert <= offset + error_buffer`` (a batch lands whole).

    Args:
        samples_per_insert: target samples (rows drawn by the learner, counted in calls
            to :meth:`sampled`) per inserted row.
        min_size_to_sample: rows inserted before the first sample.
        error_buffer: half-width of the allowed band around the target ``diff``.

    Raises:
        ConfigError: a setting that could deadlock: the band is narrower than
            ``2 * max(1, samples_per_insert)`` (one insert or one sample could jump over
            it, leaving neither side allowed), or a non-positive value.
    """

    def __init__(
        self, samples_per_insert: float, min_size_to_sample: int, error_buffer: float
    ) -> None:
        if samples_per_insert <= 0:
            raise ConfigError(f"samples_per_insert must be > 0, got {samples_per_insert}")
        if min_size_to_sample < 1:
            raise ConfigError(f"min_size_to_sample must be >= 1, got {min_size_to_sample}")
        if error_buffer < 0:
            raise ConfigError(f"error_buffer must be >= 0, got {error_buffer}")
        need = 2.0 * max(1.0, samples_per_insert)
        if 2.0 * error_buffer < need:
            raise ConfigError(
                f"error_buffer={error_buffer} would deadlock with samples_per_insert="
                f"{samples_per_insert}: the band (2 * error_buffer) must be >= "
                f"2 * max(1, samples_per_insert) = {need} (give error_buffer >= {need / 2})"
            )
        self.samples_per_insert = float(samples_per_insert)
        self.min_size_to_sample = int(min_size_to_sample)
        self.error_buffer = float(error_buffer)
        offset = self.samples_per_insert * self.min_size_to_sample
        self.min_diff = offset - self.error_buffer
        self.max_diff = offset + self.error_buffer
        self.inserts = 0
        self.samples = 0
        self.insert_blocked_s = 0.0
        self.sample_blocked_s = 0.0
        self._closed = False
        self._cond = threading.Condition()

    # --- the rule -------------------------------------------------------------------
    def _diff(self) -> float:
        return self.inserts * self.samples_per_insert - self.samples

    def can_sample(self, n: int = 1) -> bool:
        """Whether ``n`` samples may be taken now."""
        if self.inserts < self.min_size_to_sample:
            return False
        return self._diff() - n >= self.min_diff

    def can_insert(self, n: int = 1) -> bool:
        """Whether a batch of ``n`` rows may be inserted now.

        Always until the minimum size is met; after that, when the batch's first row fits
        in the band. A batch lands whole (it may overshoot the band by ``n - 1`` rows,
        which the learner then samples down): requiring the whole batch to fit would
        deadlock whenever ``n * samples_per_insert`` is wider than the band.
        """
        if self.inserts < self.min_size_to_sample:
            return True
        return self._diff() + self.samples_per_insert <= self.max_diff

    # --- counting ---------------------------------------------------------------------
    def inserted(self, n: int = 1) -> None:
        """Count ``n`` inserted rows and wake a waiting sampler."""
        with self._cond:
            self.inserts += n
            self._cond.notify_all()

    def sampled(self, n: int = 1) -> None:
        """Count ``n`` samples and wake a waiting inserter."""
        with self._cond:
            self.samples += n
            self._cond.notify_all()

    def close(self) -> None:
        """Release every waiter: inserts stop; samples drain what the band still allows."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- blocking ---------------------------------------------------------------------
    def await_can_insert(self, n: int = 1, timeout: float | None = None) -> bool:
        """Block until ``n`` inserts are allowed; add the wait to ``insert_blocked_s``.

        Returns False once the limiter is closed (the run is over: stop inserting).
        """
        return self._await(lambda: self.can_insert(n), "insert", timeout) and not self._closed

    def await_can_sample(self, n: int = 1, timeout: float | None = None) -> bool:
        """Block until ``n`` samples are allowed; add the wait to ``sample_blocked_s``.

        After :meth:`close` (the collector finished) it returns whether a sample is still
        allowed, so the learner drains the rows inserted last, then stops.
        """
        return self._await(lambda: self.can_sample(n), "sample", timeout) and self.can_sample(n)

    def _await(self, ready, side: str, timeout: float | None) -> bool:
        start = time.perf_counter()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._closed or ready(), timeout)
        waited = time.perf_counter() - start
        if side == "insert":
            self.insert_blocked_s += waited
        else:
            self.sample_blocked_s += waited
        if not ok:
            raise RateLimiterTimeout(
                f"rate limiter: waited {timeout}s to {side} (inserts={self.inserts}, "
                f"samples={self.samples}, band [{self.min_diff}, {self.max_diff}])"
            )
        return True

    def __repr__(self) -> str:
        return (
            f"SampleToInsertRatio(samples_per_insert={self.samples_per_insert}, "
            f"min_size_to_sample={self.min_size_to_sample}, error_buffer={self.error_buffer})"
        )
