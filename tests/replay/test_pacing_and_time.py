"""Playback pacing and the time strings people type."""

from __future__ import annotations

import pytest

from bagscope.replay.errors import DurationError, ReplayError
from bagscope.replay.pacing import Pacer
from bagscope.replay.timeparse import format_duration, parse_duration, parse_time_point


class FakeClock:
    """A wall clock that only moves when something sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_as_fast_as_possible_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=None, clock=clock, sleep=clock.sleep)
    for t in range(0, 10_000_000_000, 1_000_000_000):
        assert pacer.wait(t) == 0.0
    assert clock.slept == []


@pytest.mark.parametrize(("rate", "expected"), [(1.0, 0.5), (2.0, 0.25), (0.5, 1.0)])
def test_real_time_times_rate(rate: float, expected: float) -> None:
    clock = FakeClock()
    pacer = Pacer(rate=rate, clock=clock, sleep=clock.sleep)
    pacer.wait(1_000_000_000)  # anchors log time to now
    pacer.wait(1_500_000_000)
    assert clock.slept == [pytest.approx(expected)]


def test_a_late_replay_does_not_sleep_to_catch_up_and_reset_reanchors() -> None:
    clock = FakeClock()
    pacer = Pacer(rate=1.0, clock=clock, sleep=clock.sleep)
    pacer.wait(0)
    clock.now += 2.0  # a slow stage took 2 s of wall time
    assert pacer.wait(1_000_000_000) == 0.0
    pacer.reset()
    pacer.wait(50_000_000_000)  # e.g. after a seek: new anchor, no sleep
    assert pacer.wait(50_100_000_000) == pytest.approx(0.1)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ReplayError, match="positive"):
        Pacer(rate=0.0)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("50ms", 50_000_000),
        ("1.5s", 1_500_000_000),
        ("2", 2_000_000_000),
        ("-80ms", -80_000_000),
        ("250us", 250_000),
        ("2m", 120_000_000_000),
        ("7ns", 7),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "fast", "5 parsecs", "1.2.3s", "ms"])
def test_bad_durations_name_the_text(text: str) -> None:
    with pytest.raises(DurationError, match=r"duration|unit"):
        parse_duration(text)


def test_time_points_are_offsets_unless_they_look_like_epoch_seconds() -> None:
    start = 1_586_406_456_000_000_000
    assert parse_time_point("5", log_start_ns=start) == start + 5_000_000_000
    assert parse_time_point("1586406456.5", log_start_ns=start) == start + 500_000_000


def test_format_duration() -> None:
    assert format_duration(3_000_000) == "3.0 ms"
    assert format_duration(12_345_000_000) == "12.345 s"
    assert format_duration(185_200_000_000) == "3 min 05.2 s"
