"""The cadence rule the message analyzers share: which topics are periodic, at what period."""

from __future__ import annotations

import numpy as np

from bagscope.analyzers.streams import cadence, int_median

T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000


def test_a_lossy_stream_is_still_periodic_at_its_own_period() -> None:
    rng = np.random.default_rng(5)
    kept = np.flatnonzero(rng.random(200) >= 0.3)  # 30 % of the sweeps lost
    times = T0 + kept.astype(np.int64) * PERIOD
    found = cadence(times, None)
    assert found is not None
    assert found.periodic
    assert found.period_ns == PERIOD
    singles = np.mean(np.diff(kept) == 1)
    assert singles < 0.75  # by single periods alone it would not pass the 75 % rule


def test_random_arrivals_are_not_periodic() -> None:
    rng = np.random.default_rng(6)
    times = T0 + np.cumsum(rng.exponential(PERIOD, size=300)).astype(np.int64)
    found = cadence(times, None)
    assert found is not None
    assert not found.periodic


def test_bursts_with_long_pauses_are_not_a_cadence_of_multiples() -> None:
    # three messages 10 ms apart, then 1 s of silence, repeated: never "missed messages"
    bursts = [T0 + k * 1_000_000_000 + i * 10_000_000 for k in range(20) for i in range(3)]
    found = cadence(np.array(bursts, dtype=np.int64), None)
    assert found is not None
    assert found.period_ns == 10_000_000
    assert not found.periodic


def test_the_median_of_epoch_nanoseconds_is_exact() -> None:
    values = np.array([T0 + 1, T0 + 2, T0 + 4, T0 + 7], dtype=np.int64)
    assert int_median(values) == T0 + 3
