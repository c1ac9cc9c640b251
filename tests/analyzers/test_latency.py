"""Latency and clocks: offsets, drift, jitter and the sibling comparisons that tell a slow
transport from an offset clock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from matplotlib.figure import Figure

from bagscope.analyzers.latency import Latency, theil_sen
from bagscope.errors import BagscopeError
from tests.analyzers.conftest import MS, T0, imu_message, loud, run, write
from tests.logwriter import cloud, tf_message

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.pipeline.stage import Check, StageResult

CLOUD, IMU_TYPE = "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Imu"
TF = "tf2_msgs/msg/TFMessage"


def latency(path: Path, **params: Any) -> StageResult:
    return run(path, Latency(**params)).results["latency"]


def check(result: StageResult, name: str, topic: str) -> Check:
    (found,) = [c for c in result.checks if c.name == name and c.topic == topic]
    return found


def imus(
    topic: str, *, n: int, period_ns: int, latency_ns: int, stamp_scale: float = 1.0
) -> list[Any]:
    """``n`` IMU messages, logged on a ``period_ns`` grid ``latency_ns`` after a stamp that
    runs ``stamp_scale`` times as fast as the log clock."""
    out = []
    for k in range(n):
        stamp = T0 + round(k * period_ns * stamp_scale)
        log_ns = T0 + k * period_ns + latency_ns
        out.append((topic, IMU_TYPE, log_ns, lambda ts, s=stamp, v=k: imu_message(ts, s, v)))
    return out


def sweeps(topic: str, *, n: int, stamp_offset_ns: int, latency_ns: int) -> list[Any]:
    """10 Hz clouds logged ``latency_ns`` after the sweep, stamped ``stamp_offset_ns`` off it."""
    out = []
    for k in range(n):
        sweep = T0 + k * 100 * MS
        xyz = np.full((3, 3), float(k), dtype=np.float32)
        out.append(
            (
                topic,
                CLOUD,
                sweep + latency_ns,
                lambda ts, s=sweep + stamp_offset_ns, p=xyz: cloud(ts, s, p),
            )
        )
    return out


def test_theil_sen_ignores_spikes() -> None:
    x = np.arange(100, dtype=np.float64)
    y = 3.0 + 0.5 * x
    y[::7] += 1000.0
    slope, intercept = theil_sen(x, y)
    assert slope == pytest.approx(0.5)
    assert intercept == pytest.approx(3.0)


def test_a_steady_topic_has_its_offset_and_no_drift(tmp_path: Path) -> None:
    result = latency(
        write(tmp_path, "mcap", imus("/imu", n=300, period_ns=10 * MS, latency_ns=3 * MS))
    )

    assert result.events == []
    assert result.metrics.value("offset_ms", topic="/imu") == 3.0
    assert result.metrics.value("drift_ppm", topic="/imu") == 0.0
    assert result.metrics.value("latency_p99_ms", topic="/imu") == 3.0
    assert check(result, "clock", "/imu").value == "offset 3.0 ms, drift 0 ppm"
    assert check(result, "stamp_jitter", "/imu").value == "0.0 ms (0.0% of period)"


@pytest.mark.parametrize("fmt", ["mcap", "bag"])
def test_a_fast_clock_is_drift(tmp_path: Path, fmt: str) -> None:
    # stamps run 1000 ppm fast: the latency falls by 1 ms per second, 2.99 ms over the log
    entries = imus("/imu", n=300, period_ns=10 * MS, latency_ns=5 * MS, stamp_scale=1.001)
    result = latency(write(tmp_path, fmt, entries))

    (drift,) = result.events
    assert (drift.kind, drift.severity, drift.topic) == ("clock_drift", "warning", "/imu")
    assert drift.evidence["drift_ppm"] == -1000.0
    assert drift.evidence["moved_ns"] == 2_990_000
    assert drift.message == (
        "/imu: the sensor clock runs fast by 1000 ppm (latency moves 3.0 ms over 2.990 s)"
    )
    assert check(result, "clock", "/imu").status == "warn"


def test_a_short_log_does_not_resolve_drift(tmp_path: Path) -> None:
    # the same clock for 0.9 s: under min_drift_span_s, not judged
    entries = imus("/imu", n=90, period_ns=10 * MS, latency_ns=5 * MS, stamp_scale=1.003)
    assert latency(write(tmp_path, "mcap", entries)).events == []


def test_stamps_ahead_of_the_log_are_a_clock_offset_but_tf_may_be_post_dated(
    tmp_path: Path,
) -> None:
    entries = imus("/imu", n=50, period_ns=10 * MS, latency_ns=-30 * MS)
    # ROS1 static_transform_publisher stamps one period ahead of now
    entries += [
        (
            "/tf",
            TF,
            T0 + k * 100 * MS,
            lambda ts, s=T0 + (k + 1) * 100 * MS: tf_message(ts, s, "a", "b", (0.0, 0.0, 0.0)),
        )
        for k in range(20)
    ]
    result = latency(write(tmp_path, "bag", entries))

    (offset,) = result.events
    assert (offset.kind, offset.severity, offset.topic) == ("clock_offset", "error", "/imu")
    assert offset.evidence["median_latency_ns"] == -30 * MS
    assert result.metrics.value("offset_ms", topic="/tf") == -100.0
    assert check(result, "clock", "/tf").status == "pass"


def test_siblings_tell_a_delay_from_a_clock_offset(tmp_path: Path) -> None:
    entries = imus("/imu", n=300, period_ns=10 * MS, latency_ns=1 * MS)
    # a camera and its info share stamps; the info arrives 40 ms later
    for k in range(90):
        stamp = T0 + k * 33_333_333
        for topic, extra in (("/camera/image", 0), ("/camera/info", 40 * MS)):
            entries.append(
                (
                    topic,
                    IMU_TYPE,
                    stamp + 2 * MS + extra,
                    lambda ts, s=stamp, v=k: imu_message(ts, s, v),
                )
            )
    # the detections and the cloud arrive together; the cloud is stamped 80 ms early
    entries += sweeps("/lidar/points", n=30, stamp_offset_ns=-80 * MS, latency_ns=3 * MS)
    entries += sweeps("/detections", n=30, stamp_offset_ns=0, latency_ns=3 * MS)
    result = latency(write(tmp_path, "mcap", entries))

    late, offset = sorted(result.events, key=lambda e: e.kind, reverse=True)
    assert (late.kind, late.topic, late.severity) == ("latency_high", "/camera/info", "warning")
    assert late.evidence["late_ns"] == 40 * MS
    assert late.evidence["sibling"] == "/camera/image"
    assert (offset.kind, offset.topic, offset.severity) == (
        "clock_offset",
        "/lidar/points",
        "warning",
    )
    assert offset.evidence["offset_ns"] == -80 * MS
    assert offset.evidence["sibling"] == "/detections"
    assert check(result, "latency", "/camera/info").status == "warn"
    assert check(result, "clock", "/lidar/points").status == "warn"


def test_a_late_message_is_a_spike(tmp_path: Path) -> None:
    entries = imus("/imu", n=300, period_ns=10 * MS, latency_ns=2 * MS)
    topic, msgtype, log_ns, build = entries[150]
    entries[150] = (topic, msgtype, log_ns + 200 * MS, build)
    (spike,) = latency(write(tmp_path, "mcap", entries)).events
    assert (spike.kind, spike.severity, spike.evidence["count"]) == ("latency_spike", "warning", 1)
    assert spike.evidence["worst_ns"] == 202 * MS
    assert spike.t_ns == T0 + 1500 * MS + 202 * MS


@pytest.mark.parametrize("scenario", ["urban", "highway", "parking"])
def test_a_clean_drive_has_no_latency_findings(
    message_drives: dict[str, Path], scenario: str
) -> None:
    result = latency(message_drives[scenario])
    assert loud(result.events) == []
    assert all(c.status in ("pass", "skip") for c in result.checks)
    # the simulator's transport latency is 1 to 5 ms on every topic
    for topic in ("/imu", "/odom", "/lidar/points", "/camera/image/compressed", "/tf"):
        assert 1.0 <= result.metrics.value("latency_p50_ms", topic=topic) <= 5.0


def test_delay_and_clock_offset_are_found_on_their_topics(message_drives: dict[str, Path]) -> None:
    result = latency(message_drives["delivery"])
    found = sorted((e.kind, e.topic) for e in result.events if e.severity != "info")
    assert found == [
        ("clock_offset", "/lidar/points"),  # clock_offset:/lidar/points=-80ms
        ("latency_high", "/camera/camera_info"),  # delay:/camera/camera_info=40ms
    ]
    offset = next(e for e in result.events if e.kind == "clock_offset")
    assert offset.evidence["offset_ns"] == -80 * MS
    assert offset.evidence["sibling"] == "/ground_truth/objects"
    late = next(e for e in result.events if e.kind == "latency_high")
    assert late.evidence["late_ns"] == pytest.approx(40 * MS, abs=4.5 * MS)


def test_jitter_and_drift_are_found(message_drives: dict[str, Path]) -> None:
    result = latency(message_drives["stamps"])
    found = sorted((e.kind, e.topic) for e in result.events if e.severity != "info")
    assert found == [("clock_drift", "/imu"), ("stamp_jitter", "/odom")]
    drift = next(e for e in result.events if e.kind == "clock_drift")
    assert drift.evidence["drift_ppm"] == pytest.approx(-2000, abs=20)  # drift:/imu=2000ppm
    jitter = next(e for e in result.events if e.kind == "stamp_jitter")
    assert jitter.evidence["stamp_sigma_ns"] == pytest.approx(5 * MS, rel=0.25)  # jitter 5ms
    assert result.metrics.value("stamp_jitter_ms", topic="/imu") < 0.01


def test_every_real_log(real_log_paths: list[Path]) -> None:
    for path in real_log_paths:
        result = latency(path)
        assert loud(result.events) == [], path.name
        if path.name.startswith("raspicam"):
            # camera frames logged 0.16-0.42 s after their stamps (a Pi on the network): worth
            # knowing, nothing else in the log to call it a fault against
            (note,) = result.events
            assert (note.kind, note.severity) == ("latency_high", "info")
            assert note.topic == "/raspicam_node/camera_info"
        else:
            assert result.events == [], path.name


def test_real_logs_measure_what_they_hold(shared_data: Path) -> None:
    sick = latency(shared_data / "ros1" / "sick_lms1xx_rms_radar.bag")
    # tf1's static_transform_publisher post-dates by its 100 ms period: not an offset
    assert sick.metrics.value("offset_ms", topic="/tf") == pytest.approx(-99.6, abs=0.1)
    assert check(sick, "latency", "/rosout").status == "skip"
    assert sick.metrics.value("latency_p50_ms", topic="/cloud") == pytest.approx(35.46, abs=0.01)
    realsense = latency(shared_data / "ros1" / "realsense_t265_fisheye.bag")
    # the T265's gyro is stamped ~3 ms ahead of the host: within the tolerance
    assert realsense.metrics.value("latency_p50_ms", topic="/camera/gyro/sample") < 0
    cdr = latency(shared_data / "ros2" / "cdr_test_mcap")
    assert cdr.checks == []  # custom types without a header: nothing to measure


def test_figures_draw(message_drives: dict[str, Path]) -> None:
    result = latency(message_drives["delivery"])
    assert [f.name for f in result.figures] == ["latency_hist", "latency_timeline"]
    for spec in result.figures:
        spec.draw(Figure(figsize=spec.size))


@pytest.mark.parametrize(
    ("param", "value"), [("drift_ppm", 0), ("jitter_fraction", -1), ("max_skew_s", float("nan"))]
)
def test_bad_parameters_are_one_line_errors(param: str, value: float) -> None:
    params: dict[str, Any] = {param: value}
    with pytest.raises(BagscopeError, match=param):
        Latency(**params)
