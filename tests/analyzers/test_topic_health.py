"""Topic health: rates, gaps, drops, duplicates and order, on hand-made, simulated and real logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from bagscope.analyzers.topic_health import TopicHealth
from bagscope.errors import BagscopeError
from tests.analyzers.conftest import MS, T0, imu_message, loud, run, truth, write
from tests.logwriter import cloud

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.pipeline.stage import Check, Event, StageResult

LIDAR, IMU = "/lidar/points", "/imu"
CLOUD, IMU_TYPE = "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Imu"
LATENCY = 2 * MS
FORMATS = ("mcap", "db3", "bag")


def health(path: Path, **params: Any) -> StageResult:
    return run(path, TopicHealth(**params)).results["topic_health"]


def check(result: StageResult, name: str, topic: str) -> Check:
    (found,) = [c for c in result.checks if c.name == name and c.topic == topic]
    return found


def kinds(events: list[Event], topic: str | None = None) -> list[str]:
    return [e.kind for e in events if topic is None or e.topic == topic]


def sweep(i: int) -> Any:
    xyz = np.full((4, 3), float(i), dtype=np.float32)
    return lambda ts, s=T0 + i * 100 * MS: cloud(ts, s, xyz)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_outage_is_one_gap_from_the_last_message_before_to_the_first_after(
    tmp_path: Path, fmt: str
) -> None:
    # 10 Hz for 4 s, sweeps 10..24 lost: 1.6 s between sweep 9 and sweep 25
    kept = [i for i in range(40) if not 10 <= i < 25]
    entries = [(LIDAR, CLOUD, T0 + i * 100 * MS + LATENCY, sweep(i)) for i in kept]
    result = health(write(tmp_path, fmt, entries))

    (gap,) = result.events
    assert gap.kind == "gap"
    assert gap.severity == "error"  # >= 10 periods
    assert (gap.t_ns, gap.end_ns) == (T0 + 900 * MS + LATENCY, T0 + 2500 * MS + LATENCY)
    assert gap.evidence["gap_ns"] == 1600 * MS
    assert gap.evidence["period_ns"] == 100 * MS
    assert gap.evidence["missed"] == 15
    assert (
        gap.message
        == "/lidar/points: no message for 1.600 s (16x its 100.0 ms period) from 0.900 s"
    )
    rate = check(result, "rate", LIDAR)
    assert rate.status == "fail"
    assert rate.value == "6.15 Hz"  # 24 intervals over 3.9 s
    assert result.metrics.value("missed", topic=LIDAR) == 15
    assert result.metrics.value("dropped", topic=LIDAR) == 0


def test_short_gaps_warn_and_a_few_missing_messages_are_drops(tmp_path: Path) -> None:
    # 100 Hz: 4 periods silent (40 ms) is below the 100 ms floor of a gap: 3 messages dropped
    lost = {20, 50, 51, 180, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310}
    entries = [
        (
            IMU,
            IMU_TYPE,
            T0 + i * 10 * MS + LATENCY,
            lambda ts, i=i: imu_message(ts, T0 + i * 10 * MS, i, seq=i),
        )
        for i in range(400)
        if i not in lost
    ]
    result = health(write(tmp_path, "bag", entries))

    gap, first, second = sorted(result.events, key=lambda e: (e.kind != "gap", e.t_ns))
    # 300..310 lost: 120 ms silent, 12 periods -> a gap, and an error (>= 10 periods)
    assert (gap.kind, gap.severity, gap.evidence["missed"]) == ("gap", "error", 11)
    assert (gap.t_ns, gap.end_ns) == (T0 + 2990 * MS + LATENCY, T0 + 3110 * MS + LATENCY)
    # holes at 20 and 50-51 are within a second of each other: one event of 3 missed
    assert (first.kind, first.evidence["missed"], first.evidence["holes"]) == ("drop", 3, 2)
    assert (first.t_ns, first.end_ns) == (T0 + 190 * MS + LATENCY, T0 + 520 * MS + LATENCY)
    assert (second.kind, second.evidence["missed"]) == ("drop", 1)
    assert (second.t_ns, second.end_ns) == (T0 + 1790 * MS + LATENCY, T0 + 1810 * MS + LATENCY)
    # 4 dropped of 400 expected: 1% >= 0.1% -> warning
    assert first.severity == second.severity == "warning"
    assert first.evidence["topic_drop_ratio"] == 0.01
    assert result.metrics.value("missed", topic=IMU) == 15
    assert result.metrics.value("seq_missing", topic=IMU) == 15  # ROS1 header seq agrees
    assert check(result, "rate", IMU).status == "fail"


def test_duplicates_and_reordered_delivery(tmp_path: Path) -> None:
    entries: list[Any] = []
    for i in range(30):
        stamp = T0 + i * 10 * MS
        log_ns = stamp + LATENCY
        if i == 12:  # delivered after its successor
            log_ns = stamp + 10 * MS + LATENCY + 100_000
        entries.append((IMU, IMU_TYPE, log_ns, lambda ts, s=stamp, v=i: imu_message(ts, s, v)))
        if i in (5, 6):  # the same bytes again, 0.1 ms later
            entries.append(
                (IMU, IMU_TYPE, log_ns + 100_000, lambda ts, s=stamp, v=i: imu_message(ts, s, v))
            )
    # same stamp, other content: a second measurement, not a duplicate
    entries.append(
        (
            IMU,
            IMU_TYPE,
            T0 + 200 * MS + LATENCY + 50_000,
            lambda ts: imu_message(ts, T0 + 200 * MS, -1),
        )
    )
    result = health(write(tmp_path, "mcap", entries))

    dup, order = sorted(result.events, key=lambda e: e.kind)
    assert (dup.kind, dup.severity, dup.evidence["count"]) == ("duplicate", "warning", 2)
    assert (dup.t_ns, dup.end_ns) == (
        T0 + 50 * MS + LATENCY + 100_000,
        T0 + 60 * MS + LATENCY + 100_000,
    )
    assert (order.kind, order.evidence["count"], order.evidence["max_back_ns"]) == (
        "out_of_order",
        1,
        10 * MS,
    )
    assert order.t_ns == T0 + 130 * MS + LATENCY + 100_000
    assert check(result, "duplicates", IMU).value == "2"
    assert check(result, "order", IMU).status == "warn"
    assert check(result, "rate", IMU).status == "pass"  # nothing was lost


def test_irregular_few_and_relayed_topics_are_not_judged(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    irregular = np.cumsum(rng.uniform(5, 500, size=40)).astype(int) * MS
    entries = [
        ("/events", IMU_TYPE, T0 + int(t), lambda ts, s=T0 + int(t): imu_message(ts, s, 0.0))
        for t in irregular
    ]
    entries += [(LIDAR, CLOUD, T0 + i * 100 * MS, sweep(i)) for i in (0, 1, 2, 30)]
    result = health(write(tmp_path, "mcap", entries))

    assert loud(result.events) == []
    assert check(result, "rate", "/events").status == "skip"
    assert check(result, "rate", "/events").threshold == "irregular: not judged"
    assert check(result, "rate", LIDAR).threshold == "4 messages: not judged"


@pytest.mark.parametrize("scenario", ["urban", "highway", "parking"])
def test_a_clean_drive_is_healthy(message_drives: dict[str, Path], scenario: str) -> None:
    result = health(message_drives[scenario])

    assert loud(result.events) == []
    judged = {c.topic for c in result.checks if c.name == "rate" and c.status == "pass"}
    assert judged == {
        "/tf",
        "/odom",
        "/imu",
        LIDAR,
        "/ground_truth/objects",
        "/camera/image/compressed",
        "/camera/camera_info",
    }
    assert check(result, "rate", "/tf_static").status == "skip"
    assert result.metrics.value("period_ms", topic=IMU) == pytest.approx(10.0, abs=0.5)
    assert result.metrics.value("period_ms", topic=LIDAR) == pytest.approx(100.0, abs=0.5)


def test_delivery_faults_are_found_where_they_were_injected(
    message_drives: dict[str, Path],
) -> None:
    log = message_drives["delivery"]
    faults = truth(log)
    result = health(log)
    events = result.events

    # drop:/imu=0.05 - every lost IMU message counted (the drive's first and last were kept)
    lost = faults["drop:/imu=0.05"]["stamps_ns"]
    assert lost
    assert result.metrics.value("missed", topic=IMU) == len(lost)
    assert set(kinds(events, IMU)) <= {"drop", "gap"}
    assert "drop" in kinds(events, IMU)
    # duplicate:/odom=0.1
    dups = faults["duplicate:/odom=0.1"]["stamps_ns"]
    assert result.metrics.value("duplicates", topic="/odom") == len(dups)
    assert set(kinds(events, "/odom")) == {"duplicate"}
    # reorder:/tf=0.1
    swapped = faults["reorder:/tf=0.1"]["stamps_ns"]
    assert result.metrics.value("out_of_order", topic="/tf") == len(swapped)
    assert set(kinds(events, "/tf")) == {"out_of_order"}
    # outage:/camera/image/compressed=1s+0.5s: one gap over the window, nothing else
    (gap,) = [e for e in events if e.topic == "/camera/image/compressed"]
    start, end = faults["outage:/camera/image/compressed=1s+0.5s"]["window_ns"]
    assert gap.kind == "gap"
    assert gap.t_ns < start < end < gap.end_ns < end + 40 * MS
    assert gap.evidence["missed"] == len(
        faults["outage:/camera/image/compressed=1s+0.5s"]["stamps_ns"]
    )
    # delay and clock offset are the latency analyzer's: no health finding there
    assert kinds(events, "/camera/camera_info") == kinds(events, LIDAR) == []


def test_every_real_log_is_healthy(real_log_paths: list[Path]) -> None:
    for path in real_log_paths:
        result = health(path)
        assert loud(result.events) == [], path.name
        if path.name.startswith("turtlesim"):
            # teleop's cmd_vel: bursts at the keyboard's repeat rate while a key is held
            (burst,) = result.events
            assert (burst.kind, burst.topic) == ("intermittent", "/turtle1/cmd_vel")
            assert burst.evidence["pauses"] == 14
            assert check(result, "rate", "/turtle1/pose").status == "pass"
            assert check(result, "rate", "/rosout").status == "skip"
        else:
            assert result.events == [], path.name


def test_real_logs_judge_periodic_topics_by_their_own_cadence(shared_data: Path) -> None:
    sick = health(shared_data / "ros1" / "sick_lms1xx_rms_radar.bag")
    # delivered in bursts, stamped every 20 ms: periodic by its stamps
    assert check(sick, "rate", "/cloud").status == "pass"
    assert sick.metrics.value("period_ms", topic="/cloud") == pytest.approx(20.0, abs=0.1)
    assert check(sick, "rate", "/diagnostics").threshold == "3 messages: not judged"
    raspicam = health(shared_data / "ros1" / "raspicam_aruco_compressed.bag")
    assert check(raspicam, "rate", "/raspicam_node/camera_info").status == "pass"
    tf = health(shared_data / "ros1" / "tf_example.bag")
    assert check(tf, "rate", "/tf").value == "10.00 Hz"


def test_figures_draw(message_drives: dict[str, Path]) -> None:
    result = health(message_drives["delivery"])
    assert [f.name for f in result.figures] == ["topic_rates", "inter_arrival"]
    for spec in result.figures:
        spec.draw(Figure(figsize=spec.size))


@pytest.mark.parametrize(
    ("param", "value"),
    [("gap_factor", 1.0), ("gap_factor", -3), ("outage_s", 0), ("regular_fraction", 1.5)],
)
def test_bad_parameters_are_one_line_errors(param: str, value: float) -> None:
    params: dict[str, Any] = {param: value}
    with pytest.raises(BagscopeError, match=param):
        TopicHealth(**params)
