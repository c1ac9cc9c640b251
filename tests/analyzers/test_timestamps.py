"""Timestamp anomalies: zero stamps, stamps on another clock, clocks set back or jumping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from matplotlib.figure import Figure
from rosbags.rosbag1 import Writer as Writer1

from bagscope.analyzers.timestamps import TimestampAnomalies
from bagscope.errors import BagscopeError
from tests.analyzers.conftest import MS, T0, imu_message, loud, run, truth, write
from tests.logwriter import ROS1

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bagscope.pipeline.stage import StageResult

IMU_TYPE = "sensor_msgs/msg/Imu"
S = 1_000_000_000
LATENCY = 2 * MS


def stamps(path: Path, **params: Any) -> StageResult:
    return run(path, TimestampAnomalies(**params)).results["timestamps"]


def imus(stamp: Callable[[int], int], n: int = 40) -> list[Any]:
    """10 Hz IMU messages logged on the grid; ``stamp(k)`` says what message k is stamped."""
    return [
        (
            "/imu",
            IMU_TYPE,
            T0 + k * 100 * MS + LATENCY,
            lambda ts, k=k: imu_message(ts, stamp(k), k),
        )
        for k in range(n)
    ]


@pytest.mark.parametrize("fmt", ["mcap", "bag"])
def test_zero_stamps_are_errors_grouped_within_a_second(tmp_path: Path, fmt: str) -> None:
    entries = imus(lambda k: 0 if k in (5, 6, 30) else T0 + k * 100 * MS)
    result = stamps(write(tmp_path, fmt, entries))

    pair, single = result.events
    assert (pair.kind, pair.severity, pair.evidence["count"]) == ("zero_stamp", "error", 2)
    assert (pair.t_ns, pair.end_ns) == (T0 + 500 * MS + LATENCY, T0 + 600 * MS + LATENCY)
    assert (single.evidence["count"], single.t_ns) == (1, T0 + 3000 * MS + LATENCY)
    assert single.message == "/imu: 1 message with a zero (unset) header stamp at 3.000 s"
    assert result.checks[0].value == "3 zero, 0 off-clock, 0 set back, 0 jumps"
    assert result.checks[0].status == "fail"


def test_a_topic_on_another_clock_is_one_finding(tmp_path: Path) -> None:
    # stamped with the device's uptime (1000 s after boot), logged on the epoch
    result = stamps(write(tmp_path, "mcap", imus(lambda k: 1000 * S + k * 100 * MS)))

    (event,) = result.events
    assert (event.kind, event.severity) == ("stamp_far_from_log_time", "warning")
    assert event.evidence["median_skew_ns"] == T0 - 1000 * S + LATENCY
    assert event.evidence["share"] == 1.0
    assert "on another clock" in event.message


def test_a_stray_stamp_far_off_is_found_alone(tmp_path: Path) -> None:
    entries = imus(lambda k: T0 + k * 100 * MS + (5 * S if k == 10 else 0))
    (event,) = stamps(write(tmp_path, "mcap", entries)).events
    assert (event.kind, event.evidence["count"]) == ("stamp_far_from_log_time", 1)
    assert event.evidence["worst_skew_ns"] == LATENCY - 5 * S
    assert event.t_ns == T0 + 1000 * MS + LATENCY


def test_a_clock_set_back_is_non_monotonic(tmp_path: Path) -> None:
    entries = imus(lambda k: T0 + k * 100 * MS - (1500 * MS if k >= 20 else 0))
    (event,) = stamps(write(tmp_path, "mcap", entries)).events
    assert (event.kind, event.severity) == ("non_monotonic", "warning")
    assert event.evidence["back_ns"] == 1400 * MS
    assert (event.t_ns, event.end_ns) == (T0 + 1900 * MS + LATENCY, T0 + 2000 * MS + LATENCY)


def test_a_clock_jumping_forward_is_a_jump(tmp_path: Path) -> None:
    entries = imus(lambda k: T0 + k * 100 * MS + (1500 * MS if k >= 20 else 0))
    (event,) = stamps(write(tmp_path, "mcap", entries)).events
    assert (event.kind, event.evidence["shift_ns"]) == ("stamp_jump", 1500 * MS)
    assert (
        event.message
        == "/imu: the stamp clock jumps forward by 1.500 s against the log clock at 2.000 s"
    )


def test_late_delivery_is_not_a_clock_problem(tmp_path: Path) -> None:
    entries = imus(lambda k: T0 + k * 100 * MS)
    topic, msgtype, log_ns, build = entries[12]
    entries[12] = (topic, msgtype, log_ns + 150 * MS, build)  # arrives after message 13
    assert stamps(write(tmp_path, "mcap", entries)).events == []


def test_each_publisher_of_a_topic_is_its_own_stream(tmp_path: Path) -> None:
    # two nodes on one ROS1 topic, one stamping 1.5 s behind the other: interleaved, the
    # stamps step back and forth; per publisher they are steady
    path = tmp_path / "two.bag"
    with Writer1(path) as writer:
        conns = [
            writer.add_connection("/status", IMU_TYPE, typestore=ROS1, callerid=name)
            for name in ("/a", "/b")
        ]
        for k in range(40):
            for i, conn in enumerate(conns):
                stamp = T0 + k * 100 * MS - i * 1500 * MS
                data = ROS1.serialize_ros1(imu_message(ROS1, stamp, k), IMU_TYPE)
                writer.write(conn, T0 + k * 100 * MS + LATENCY + i * MS, data)
    assert stamps(path).events == []


@pytest.mark.parametrize("scenario", ["urban", "highway", "parking"])
def test_a_clean_drive_has_sound_stamps(message_drives: dict[str, Path], scenario: str) -> None:
    result = stamps(message_drives[scenario])
    assert result.events == []
    assert {c.status for c in result.checks} == {"pass"}
    assert "/tf_static" not in {c.topic for c in result.checks}


def test_zero_stamps_are_found_and_nothing_else(message_drives: dict[str, Path]) -> None:
    log = message_drives["stamps"]
    zeroed = truth(log)["zero_stamps:/camera/camera_info=0.05"]["stamps_ns"]
    result = stamps(log)

    assert {(e.kind, e.topic) for e in result.events} == {("zero_stamp", "/camera/camera_info")}
    assert sum(e.evidence["count"] for e in result.events) == len(zeroed)
    # jitter (5 ms on 20 ms odometry) and drift are no clock jumps or resets
    assert all(c.status == "pass" for c in result.checks if c.topic != "/camera/camera_info")


def test_reordered_delivery_is_left_to_topic_health(message_drives: dict[str, Path]) -> None:
    assert stamps(message_drives["delivery"]).events == []


def test_every_real_log_has_sound_stamps(real_log_paths: list[Path]) -> None:
    for path in real_log_paths:
        result = stamps(path)
        # turtlesim's /rosout relays stamps 2 s old (not judged), its /tf interleaves two
        # broadcasters 5 us apart (below 1 ms): nothing to report anywhere
        assert result.events == [], path.name
    sick = stamps(real_log_paths[2])
    assert "/rosout" not in {c.topic for c in sick.checks}
    assert "/diagnostics" not in {c.topic for c in sick.checks}


def test_figure_draws(tmp_path: Path) -> None:
    result = stamps(write(tmp_path, "mcap", imus(lambda k: 0 if k == 3 else T0 + k * 100 * MS)))
    (spec,) = result.figures
    spec.draw(Figure(figsize=spec.size))


def test_bad_parameters_are_one_line_errors() -> None:
    with pytest.raises(BagscopeError, match="max_skew_s"):
        TimestampAnomalies(max_skew_s=0)
    with pytest.raises(BagscopeError, match="other_clock_share"):
        TimestampAnomalies(other_clock_share=2)
    assert loud([]) == []
