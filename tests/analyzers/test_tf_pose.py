"""TfPose: TF gaps, transforms missing or stale at frame time, and pose jumps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from bagscope import open_log
from bagscope.analyzers.tf_pose import TfPose, header_frame_id, parse_odometry, parse_tf
from bagscope.errors import BagscopeError
from tests.analyzers._drives import (
    CAMERA,
    LIDAR,
    SCENARIOS,
    START_NS,
    clean_drive,
    draw_figures,
    problems,
    real_logs,
    real_sync_topics,
    run,
    showcase_drive,
)
from tests.logwriter import T0, camera_lidar_spec, tf_message, write_log

if TYPE_CHECKING:
    from pathlib import Path

TF = "/tf"
ODOM = "/odom"
EDGE = "odom -> base_link"


def _tf_log_times(path: Path) -> dict[int, int]:
    """Transform stamp -> log time of the /tf message that carried it."""
    with open_log(path) as log:
        out = {}
        for msg in log.messages(topics=[TF]):
            for ts in msg.payload.transforms:  # type: ignore[attr-defined]
                stamp = ts.header.stamp
                out[stamp.sec * 1_000_000_000 + stamp.nanosec] = msg.log_time_ns
        return out


def _analyse(log: Path, **kwargs: Any) -> Any:
    topics = kwargs.pop("topics", (LIDAR, CAMERA))
    return run(log, [TfPose(**kwargs)], topics=topics).results["tf"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clean_drives_know_where_they_are(scenario: str) -> None:
    result = _analyse(clean_drive(scenario))
    assert problems(result) == []
    assert result.events == []
    assert {c.status for c in result.checks} == {"pass"}
    names = {(c.name, c.topic) for c in result.checks}
    assert (f"TF gaps: {EDGE}", TF) in names
    assert (f"pose jumps: {ODOM}", ODOM) in names
    assert ("transform to odom", LIDAR) in names
    assert ("transform to odom", CAMERA) in names
    assert (f"TF age at frame time: {EDGE}", TF) in names
    assert result.metrics.value("rate_hz", topic=TF, label=EDGE) == 50.0
    assert result.metrics.value("frames") == 30
    assert draw_figures(result) == 1


def test_a_tf_stream_that_goes_quiet_is_a_gap_and_stale_frames() -> None:
    # stale_tf:1.2s+0.5s: no /tf stamped in [1.2 s, 1.7 s); the last sample before is 1.18 s
    log = showcase_drive()
    result = _analyse(log)
    (gap,) = [e for e in result.events if e.kind == "tf_gap"]
    log_time = _tf_log_times(log)
    assert gap.severity == "warning"
    assert gap.topic == TF
    assert gap.evidence["gap_ns"] == 520_000_000
    assert gap.evidence["period_ns"] == 20_000_000
    assert gap.evidence["last_stamp_ns"] == START_NS + 1_180_000_000
    assert gap.evidence["next_stamp_ns"] == START_NS + 1_700_000_000
    assert gap.t_ns == log_time[START_NS + 1_180_000_000]
    assert gap.end_ns == log_time[START_NS + 1_700_000_000]
    # The sweeps of 1.3 ... 1.6 s (and their images 7 ms later) saw a sample more than 60 ms
    # old; the oldest: the image of 1.607 s, 427 ms after the sample of 1.18 s.
    (stale,) = [e for e in result.events if e.kind == "tf_stale"]
    assert (stale.t_ns, stale.end_ns) == (START_NS + 1_300_000_000, START_NS + 1_600_000_000)
    assert stale.evidence["frames"] == 4
    assert stale.evidence["oldest_age_ns"] == 427_000_000
    assert stale.evidence["limit_ns"] == 60_000_000
    assert [e for e in result.events if e.kind == "tf_missing"] == []


def test_a_pose_jump_is_found_in_odometry_and_tf() -> None:
    # pose_jump:/odom=6s+6m: odometry and odom -> base_link are 6 m off from 6 s on
    result = _analyse(showcase_drive())
    jumps = [e for e in result.events if e.kind == "pose_jump"]
    assert sorted(e.topic for e in jumps) == [ODOM, TF]
    for event in jumps:
        assert event.severity == "error"
        assert event.evidence["from_stamp_ns"] == START_NS + 5_980_000_000
        assert event.evidence["to_stamp_ns"] == START_NS + 6_000_000_000
        assert 6.0 <= event.evidence["jump_m"] <= 6.5  # the jump plus 20 ms of driving
        assert event.evidence["allowed_m"] < 1.5
    by_topic = {e.topic: e for e in jumps}
    assert by_topic[ODOM].evidence["also_on"] == [TF]
    assert by_topic[TF].evidence["also_on"] == [ODOM]
    assert by_topic[ODOM].evidence["source"] == "odometry"
    kinds = sorted(e.kind for e in problems(result))
    assert kinds == ["pose_jump", "pose_jump", "tf_gap", "tf_stale"]
    assert draw_figures(result) == 1


def test_a_sensor_frame_outside_the_tree_is_missing(tmp_path: Path) -> None:
    # 1 s of 10 Hz sweeps and a 30 Hz camera (3 ms after each sweep); /tf_static mounts only
    # the lidar, so the camera's frame "camera" has no transform to odom at all.
    log = write_log(tmp_path / "drive", camera_lidar_spec(), "mcap")
    result = _analyse(log)
    (event,) = problems(result)
    assert (event.kind, event.topic) == ("tf_missing", CAMERA)
    assert event.evidence["frames"] == 10
    assert event.evidence["frame_ids"] == ["camera"]
    assert event.evidence["target"] == "odom"
    assert "unknown frame 'camera'" in event.evidence["error"]
    assert (event.t_ns, event.end_ns) == (T0 + 3_000_000, T0 + 903_000_000)
    statuses = {(c.name, c.topic): c.status for c in result.checks}
    assert statuses[("transform to odom", LIDAR)] == "pass"
    assert statuses[("transform to odom", CAMERA)] == "warn"


def test_frames_before_the_first_transform_are_missing(tmp_path: Path) -> None:
    # the camera mounted too, but /tf (odom -> base_link, 50 Hz) only from 0.5 s: lookups
    # before 0.45 s (0.5 s less the buffer's 50 ms tolerance) fail
    spec = camera_lidar_spec()
    spec.entries = [e for e in spec.entries if e.topic != TF or e.log_time_ns >= T0 + 500_000_000]
    spec.add(
        "/tf_static",
        "tf2_msgs/msg/TFMessage",
        T0,
        lambda ts: tf_message(ts, T0, "base_link", "camera", (1.0, 0.0, 1.2)),
    )
    result = _analyse(write_log(tmp_path / "late.bag", spec, "bag"))
    found = sorted((e.kind, e.topic, e.t_ns, e.end_ns) for e in problems(result))
    assert found == [
        ("tf_missing", CAMERA, T0 + 3_000_000, T0 + 403_000_000),
        ("tf_missing", LIDAR, T0, T0 + 400_000_000),
    ]
    assert all(e.evidence["frames"] == 5 for e in problems(result))
    assert "cannot extrapolate" in problems(result)[0].evidence["error"]


def test_messages_alone_are_judged_without_frames() -> None:
    result = _analyse(showcase_drive(), topics=None)
    kinds = sorted(e.kind for e in problems(result))
    assert kinds == ["pose_jump", "pose_jump", "tf_gap"]
    assert "frames" not in {key[0] for key, _ in result.metrics.groups()}


def test_the_byte_parsers_agree_with_rosbags(shared_data: Path) -> None:
    logs = [
        clean_drive("urban"),
        shared_data / "ros1" / "turtlesim_lz4.bag",  # legacy tf/tfMessage
        shared_data / "ros1" / "tf_example.bag",
        shared_data / "ros2" / "tf_example_sqlite3",
        shared_data / "ros1" / "sick_lms1xx_rms_radar.bag",  # frame ids with a leading slash
        shared_data / "ros1" / "realsense_t265_fisheye.bag",  # ROS1 odometry
    ]
    transforms = odometry = 0
    for path in logs:
        with open_log(path) as log:
            for msg in log.messages(topics=log.tf_topics()):
                expected = [
                    (
                        ts.header.frame_id,
                        ts.child_frame_id,
                        ts.header.stamp.sec * 1_000_000_000 + ts.header.stamp.nanosec,
                        ts.transform.translation.x,
                        ts.transform.translation.y,
                        ts.transform.translation.z,
                    )
                    for ts in msg.payload.transforms  # type: ignore[attr-defined]
                ]
                assert parse_tf(msg.data, msg.connection.serialization) == expected
                transforms += len(expected)
            for topic in log.topics:
                if log.msgtype(topic) != "nav_msgs/msg/Odometry":
                    continue
                for msg in log.messages(topics=[topic]):
                    sample = msg.decode()
                    parsed = parse_odometry(msg.data, msg.connection.serialization)
                    assert parsed == (
                        sample.stamp_ns,  # type: ignore[attr-defined]
                        tuple(sample.position),  # type: ignore[attr-defined]
                        tuple(sample.linear),  # type: ignore[attr-defined]
                    )
                    odometry += 1
            for topic in log.topics:
                for msg in log.messages(topics=[topic]):
                    if msg.header_stamp_ns is not None and msg.msgtype.startswith("sensor_msgs"):
                        frame_id = header_frame_id(msg.data, msg.connection.serialization)
                        assert frame_id == msg.payload.header.frame_id  # type: ignore[attr-defined]
                    break
    assert transforms > 3000
    assert odometry == 150 + 19
    assert parse_tf(b"\x00\x01\x00\x00\x05\x00\x00\x00", "cdr") is None  # cut short


@pytest.mark.parametrize(
    "kwargs",
    [
        {"gap_factor": 1.0},
        {"stale_factor": 0.5},
        {"jump_factor": float("inf")},
        {"max_age_ns": 0},
        {"max_accel": -1.0},
        {"min_jump_m": 0.0},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(BagscopeError, match=next(iter(kwargs))):
        TfPose(**kwargs)  # type: ignore[arg-type]


def test_real_logs_are_clean(shared_data: Path) -> None:
    for path in real_logs(shared_data):
        result = _analyse(path, topics=real_sync_topics(path))
        assert problems(result) == [], path.name
    # tf_example: a real robot's odom -> base_footprint at 10 Hz for 51 s
    result = _analyse(shared_data / "ros1" / "tf_example.bag", topics=None)
    checks = {(c.name, c.topic): c for c in result.checks}
    assert checks[("TF gaps: odom -> base_footprint", TF)].status == "pass"
    assert checks[("pose jumps: odom -> base_footprint", TF)].status == "pass"
    assert result.metrics.value("samples", topic=TF, label="odom -> base_footprint") == 517
    # turtlesim's legacy tf/tfMessage: two turtles at 62.5 Hz
    result = _analyse(shared_data / "ros1" / "turtlesim_bz2.bag", topics=None)
    assert {c.status for c in result.checks} == {"pass"}
    assert len(result.checks) == 4
    # the SICK scanner's cloud and scan, synced: both are stamped in frame "cloud", the root of
    # the log's only tree (cloud -> radar), so no dynamic edge lies on their path
    path = shared_data / "ros1" / "sick_lms1xx_rms_radar.bag"
    result = _analyse(path, topics=real_sync_topics(path))
    statuses = {(c.name, c.topic): c.status for c in result.checks}
    assert statuses[("transform to cloud", "/cloud")] == "pass"
    assert statuses[("transform to cloud", "/sick_lms_1xx/scan")] == "pass"
    assert not any(name.startswith("TF age") for name, _ in statuses)
