"""Real recorded logs: what we read agrees with /work/shared/data/README.md (and rosbags)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bagscope.replay.storage import header_stamp_ns, open_storage
from bagscope.replay.types import MessageTypes

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# file: (messages, duration s to 3 decimals, {topic: count} for a few topics)
EXPECTED: dict[str, tuple[int, float, dict[str, int]]] = {
    "ros1/sick_lms1xx_rms_radar.bag": (
        518,
        1.879,
        {
            "/cloud": 89,
            "/sick_lms_1xx/scan": 89,
            "/cloud_radar_rawtarget": 139,
            "/cloud_radar_track": 108,
            "/radar": 34,
            "/tf": 17,
            "/diagnostics": 3,
        },
    ),
    "ros1/raspicam_aruco_compressed.bag": (
        16,
        0.856,
        {"/raspicam_node/image/compressed": 1, "/raspicam_node/camera_info": 15},
    ),
    "ros1/realsense_t265_fisheye.bag": (
        50,
        0.090,
        {
            "/camera/fisheye1/image_raw": 3,
            "/camera/fisheye2/image_raw": 3,
            "/camera/odom/sample": 19,
        },
    ),
    "ros1/tf_example.bag": (518, 51.685, {"/tf": 517, "/tf_static": 1}),
    "ros2/tf_example_sqlite3": (518, 51.685, {"/tf": 517, "/tf_static": 1}),
    "ros1/turtlesim_bz2.bag": (8647, 21.700, {"/tf": 2688}),
    "ros1/turtlesim_lz4.bag": (8647, 21.700, {"/tf": 2688}),
    "ros2/cdr_test_sqlite3": (7, 0.151, {"/test_topic": 3, "/array_topic": 4}),
    "ros2/cdr_test_mcap": (7, 0.151, {"/test_topic": 3, "/array_topic": 4}),
}


def _path(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"shared test data not present: {path}")
    return path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_info_matches_the_readme(name: str) -> None:
    count, duration, topics = EXPECTED[name]
    storage = open_storage([_path(name)])
    info = storage.info
    assert info.complete
    assert info.message_count == count
    assert round((info.end_ns - info.start_ns) / 1e9, 3) == pytest.approx(duration)
    per_topic = Counter[str]()
    for conn in storage.connections:
        per_topic[conn.topic] += conn.count
    for topic, n in topics.items():
        assert per_topic[topic] == n, topic
    times = [m.log_time_ns for m in storage.messages()]
    assert len(times) == count
    assert times == sorted(times)
    assert (times[0], times[-1]) == (info.start_ns, info.end_ns)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_message_decodes(name: str) -> None:
    storage = open_storage([_path(name)])
    types = MessageTypes(storage.definitions)
    for message in storage.messages():
        conn = message.connection
        msg = types.deserialize(message.data, conn.msgtype, conn.serialization)
        if types.starts_with_header(conn.msgtype, conn.serialization):
            stamp = msg.header.stamp  # type: ignore[attr-defined]
            want = stamp.sec * 1_000_000_000 + stamp.nanosec
            assert header_stamp_ns(message.data, conn.serialization) == want


def test_cdr_test_figures_of_ros2_bag_info() -> None:
    """rosbag2's own end-to-end test prints these for the same recording."""
    for name in ("ros2/cdr_test_sqlite3", "ros2/cdr_test_mcap"):
        info = open_storage([_path(name)]).info
        assert info.start_ns == 1586406456763032325
        assert info.end_ns == 1586406456914169506
        assert info.end_ns - info.start_ns == 151137181


def test_sick_diagnostics_has_two_connections_and_custom_radar_type() -> None:
    storage = open_storage([_path("ros1/sick_lms1xx_rms_radar.bag")])
    diagnostics = sorted(c.count for c in storage.connections if c.topic == "/diagnostics")
    assert diagnostics == [1, 2]
    radar = next(c for c in storage.connections if c.topic == "/radar")
    assert radar.msgtype == "sick_scan/msg/RadarScan"
    assert {c.topic for c in storage.connections if c.topic.startswith("/tf")} == {"/tf"}
    got = [
        m.connection.topic
        for m in storage.messages(c for c in storage.connections if c.topic == "/diagnostics")
    ]
    assert got == ["/diagnostics"] * 3


def test_same_recording_in_ros1_and_ros2() -> None:
    ros1 = open_storage([_path("ros1/tf_example.bag")])
    ros2 = open_storage([_path("ros2/tf_example_sqlite3")])
    a = [(m.connection.topic, m.log_time_ns) for m in ros1.messages()]
    b = [(m.connection.topic, m.log_time_ns) for m in ros2.messages()]
    assert a == b
    both = open_storage([_path("ros1/tf_example.bag"), _path("ros2/tf_example_sqlite3")])
    assert both.info.storage == "rosbag1+sqlite3"
    assert both.info.message_count == 2 * 518
    merged = [m.log_time_ns for m in both.messages()]
    assert merged == sorted(merged)
