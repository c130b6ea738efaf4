"""SampleToInsertRatio: Reverb's semantics, deadlocking settings refused, ratio held across threads."""

from __future__ import annotations

import threading

import pytest

from rldata.data import SampleToInsertRatio
from rldata.data.rate_limiter import RateLimiterTimeout
from rldata.errors import ConfigError


@pytest.mark.parametrize(
    "spi, error_buffer",
    [(1.0, 0.5), (4.0, 3.0), (0.5, 0.9), (10.0, 9.99)],
    ids=["spi1-band1", "spi4-band6", "spi0.5-band1.8", "spi10-band19.98"],
)
def test_a_band_one_step_could_jump_is_refused_at_construction(spi, error_buffer):
    with pytest.raises(ConfigError, match="would deadlock"):
        SampleToInsertRatio(
            samples_per_insert=spi, min_size_to_sample=10, error_buffer=error_buffer
        )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (
            {"samples_per_insert": 0, "min_size_to_sample": 1, "error_buffer": 5},
            "samples_per_insert",
        ),
        (
            {"samples_per_insert": 1, "min_size_to_sample": 0, "error_buffer": 5},
            "min_size_to_sample",
        ),
        ({"samples_per_insert": 1, "min_size_to_sample": 1, "error_buffer": -1}, "error_buffer"),
    ],
)
def test_out_of_range_values_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        SampleToInsertRatio(**kwargs)


def test_sampling_waits_for_the_minimum_size_and_inserts_never_do_before_it():
    limiter = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=5, error_buffer=2.0)
    for _ in range(4):
        assert limiter.can_insert(1) and not limiter.can_sample(1)
        limiter.inserted(1)
    limiter.inserted(1)
    assert limiter.can_sample(1)


def test_the_band_bounds_samples_per_insert():
    limiter = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=1, error_buffer=2.0)
    limiter.inserted(1)  # diff = 2 = offset; band [0, 4]
    assert limiter.can_insert(1)  # 2 + 2 <= 4
    limiter.inserted(1)
    assert not limiter.can_insert(1)  # 4 + 2 > 4: the learner must sample first
    for _ in range(4):
        assert limiter.can_sample(1)
        limiter.sampled(1)
    assert not limiter.can_sample(1)  # 0 - 1 < 0: the collector must insert first
    assert limiter.can_insert(1)


def test_a_wait_past_its_timeout_raises_and_is_counted():
    limiter = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=3, error_buffer=1.0)
    with pytest.raises(RateLimiterTimeout, match="to sample"):
        limiter.await_can_sample(1, timeout=0.05)
    assert limiter.sample_blocked_s >= 0.05


def test_threads_hold_the_ratio_inside_the_band():
    spi, band = 3.0, 6.0
    limiter = SampleToInsertRatio(samples_per_insert=spi, min_size_to_sample=10, error_buffer=band)
    diffs = []

    def insert():
        for _ in range(300):
            if not limiter.await_can_insert(1, timeout=10):
                return
            limiter.inserted(1)
        limiter.close()

    thread = threading.Thread(target=insert)
    thread.start()
    while limiter.await_can_sample(1, timeout=10):
        limiter.sampled(1)
        diffs.append(limiter.inserts * spi - limiter.samples)
    thread.join()
    offset = spi * 10
    assert limiter.inserts == 300
    assert all(offset - band <= d <= offset + band + spi for d in diffs)
    assert abs(limiter.samples - 300 * spi) <= offset + band


def test_a_batch_larger_than_the_band_lands_whole_and_is_sampled_down():
    limiter = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=4, error_buffer=2.0)
    limiter.inserted(100)  # one collector batch
    assert not limiter.can_insert(100)
    while limiter.can_sample(1):
        limiter.sampled(1)
    assert limiter.samples == 98  # down to the band's floor, offset 4 - error_buffer 2
    assert limiter.can_insert(100)
