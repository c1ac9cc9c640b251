"""Frozen sensors: fresh stamps on content that stopped changing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from bagscope.analyzers.freeze import Freeze, body_offset, header_stamp_ns
from bagscope.errors import BagscopeError
from tests.analyzers._drives import START_NS, showcase_drive, times_by_stamp
from tests.analyzers.conftest import MS, T0, imu_message, run, truth, write
from tests.logwriter import ROS1, ROS2, cloud, header

if TYPE_CHECKING:
    from pathlib import Path

    from bagscope.pipeline.stage import Check, StageResult

CLOUD, IMU_TYPE = "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Imu"
IMAGE = "sensor_msgs/msg/Image"
LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
LATENCY = 2 * MS


def freeze(path: Path, **params: Any) -> StageResult:
    return run(path, Freeze(**params)).results["freeze"]


def check(result: StageResult, topic: str) -> Check:
    (found,) = [c for c in result.checks if c.topic == topic]
    return found


def sweeps(content: dict[int, int], *, n: int = 30, points: int = 100) -> list[Any]:
    """10 Hz dense clouds (``points`` x 16 bytes); sweep k shows the scene of ``content[k]``
    (default: its own), stamped freshly."""
    out = []
    for k in range(n):
        xyz = np.random.default_rng(content.get(k, k)).normal(size=(points, 3)).astype(np.float32)
        stamp = T0 + k * 100 * MS
        out.append((LIDAR, CLOUD, stamp + LATENCY, lambda ts, s=stamp, p=xyz: cloud(ts, s, p)))
    return out


def test_the_header_is_skipped_in_both_encodings() -> None:
    msg = cloud(ROS2, T0, np.zeros((2, 3), dtype=np.float32), frame_id="velodyne")
    cdr = ROS2.serialize_cdr(msg, CLOUD)
    # 4 encapsulation + 8 stamp + 4 length + "velodyne\0"
    assert body_offset(cdr, ros1=False) == 25
    ros1 = ROS1.serialize_ros1(cloud(ROS1, T0, np.zeros((2, 3), np.float32), "velodyne"), CLOUD)
    assert body_offset(ros1, ros1=True) == 24  # 4 seq + 8 stamp + 4 length + "velodyne"


def test_the_header_stamp_is_read_in_both_encodings() -> None:
    stamp = T0 + 123_456_789
    msg = cloud(ROS2, stamp, np.zeros((2, 3), dtype=np.float32))
    cdr = ROS2.serialize_cdr(msg, CLOUD)
    assert header_stamp_ns(cdr, ros1=False) == stamp
    assert header_stamp_ns(cdr, ros1=False, stamp=bytes(cdr[4:12])) == stamp
    big = ROS2.serialize_cdr(msg, CLOUD, little_endian=False)
    assert big[1] & 1 == 0
    assert header_stamp_ns(big, ros1=False) == stamp
    ros1 = ROS1.serialize_ros1(cloud(ROS1, stamp, np.zeros((2, 3), np.float32)), CLOUD)
    assert header_stamp_ns(ros1, ros1=True) == stamp


@pytest.mark.parametrize("fmt", ["mcap", "db3", "bag"])
def test_a_repeating_cloud_is_frozen_from_its_first_repeat_to_its_last(
    tmp_path: Path, fmt: str
) -> None:
    # sweeps 10..19 show sweep 9's scene again (10 repeats); 25, 26 repeat 24 (too short)
    content = dict.fromkeys(range(10, 20), 9) | {25: 24, 26: 24}
    result = freeze(write(tmp_path, fmt, sweeps(content)))

    (event,) = result.events
    assert (event.kind, event.topic) == ("freeze", LIDAR)
    assert (event.t_ns, event.end_ns) == (T0 + 1000 * MS + LATENCY, T0 + 1900 * MS + LATENCY)
    assert event.evidence["repeats"] == 10
    assert event.evidence["frozen_ns"] == 1000 * MS  # sweep 9's scene shown for 1 s
    # the message repeated: sweep 9, its log time and its stamp; the last repeat's stamp
    assert event.evidence["original_t_ns"] == T0 + 900 * MS + LATENCY
    assert event.evidence["original_stamp_ns"] == T0 + 900 * MS
    assert event.evidence["last_stamp_ns"] == T0 + 1900 * MS
    assert event.severity == "error"  # >= error_s
    assert event.message == (
        "/lidar/points: content frozen for 1.000 s from 1.000 s (10 messages identical to the "
        "one before, apart from the header)"
    )
    assert check(result, LIDAR).value == "12 repeated of 30"
    assert result.metrics.value("repeats", topic=LIDAR) == 12


def test_a_short_freeze_warns_and_duplicates_do_not_count(tmp_path: Path) -> None:
    entries = [
        (
            "/imu",
            IMU_TYPE,
            T0 + k * 10 * MS + LATENCY,
            lambda ts, k=k: imu_message(ts, T0 + k * 10 * MS, float(min(k, 40) if k < 90 else k)),
        )
        for k in range(100)
    ]
    # message 60 delivered twice (same stamp, same bytes): topic health's duplicate, which
    # neither counts as a repeat nor breaks the run
    entries.append(("/imu", IMU_TYPE, T0 + 600 * MS + LATENCY + 100_000, entries[60][3]))
    result = freeze(write(tmp_path, "mcap", entries))
    assert check(result, "/imu").value == "49 repeated of 101"
    (event,) = result.events
    # 41..89 repeat message 40: 49 repeats, 0.49 s + one period
    assert event.evidence["repeats"] == 49
    assert event.severity == "warning"
    assert (event.t_ns, event.end_ns) == (T0 + 410 * MS + LATENCY, T0 + 890 * MS + LATENCY)
    assert event.evidence["original_stamp_ns"] == T0 + 400 * MS
    assert event.evidence["last_stamp_ns"] == T0 + 890 * MS


def _texture(seed: int) -> np.ndarray:
    """A 60 x 80 mono8 frame of random 8-pixel cells plus sensor noise."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 210, size=(8, 10))
    grey = np.kron(cells, np.ones((8, 8)))[:60, :80] + rng.normal(0.0, 4.0, size=(60, 80))
    return np.clip(grey, 0, 255).astype(np.uint8)


def _image(ts: Any, stamp: int, pixels: np.ndarray) -> Any:
    return ts.types[IMAGE](
        header=header(ts, stamp, "camera"),
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding="mono8",
        is_bigendian=0,
        step=pixels.shape[1],
        data=np.frombuffer(pixels.tobytes(), dtype=np.uint8),
    )


@pytest.mark.parametrize("fmt", ["mcap", "bag"])
def test_a_raw_camera_repeating_its_pixels_is_frozen(tmp_path: Path, fmt: str) -> None:
    # 30 Hz mono8 frames; 22..24 show frame 21's pixels again under fresh stamps
    frame_ns = 33_333_333
    frames = [_texture(k) for k in range(30)]
    for k in (22, 23, 24):
        frames[k] = frames[21]
    entries = [
        (
            "/camera/image_raw",
            IMAGE,
            T0 + k * frame_ns + LATENCY,
            lambda ts, s=T0 + k * frame_ns, g=grey: _image(ts, s, g),
        )
        for k, grey in enumerate(frames)
    ]
    result = freeze(write(tmp_path, fmt, entries))
    (event,) = result.events
    assert (event.kind, event.topic, event.severity) == ("freeze", "/camera/image_raw", "warning")
    assert (event.t_ns, event.end_ns) == (
        T0 + 22 * frame_ns + LATENCY,
        T0 + 24 * frame_ns + LATENCY,
    )
    assert event.evidence["repeats"] == 3
    assert event.evidence["original_t_ns"] == T0 + 21 * frame_ns + LATENCY
    assert event.evidence["original_stamp_ns"] == T0 + 21 * frame_ns
    assert event.evidence["last_stamp_ns"] == T0 + 24 * frame_ns
    assert check(result, "/camera/image_raw").value == "3 repeated of 30"


def test_sparse_clouds_are_not_judged(tmp_path: Path) -> None:
    # a radar's target list: 3 points, the same every cycle on a static scene
    same = dict.fromkeys(range(30), 0)
    entries = [("/radar", *e[1:]) for e in sweeps(same, points=3)]
    result = freeze(write(tmp_path, "mcap", entries))
    assert result.events == []
    assert check(result, "/radar").status == "skip"


def test_a_measurement_published_in_parts_is_not_judged(tmp_path: Path) -> None:
    entries = []
    for k in range(20):  # six dense parts per 100 ms cycle, all with the cycle's stamp
        for part in range(6):
            stamp = T0 + k * 100 * MS
            xyz = np.random.default_rng(part).normal(size=(100, 3)).astype(np.float32)
            entries.append(
                (LIDAR, CLOUD, stamp + part * MS, lambda ts, s=stamp, p=xyz: cloud(ts, s, p))
            )
    result = freeze(write(tmp_path, "mcap", entries))
    assert result.events == []
    assert check(result, LIDAR).threshold == "one measurement in parts: not judged"


@pytest.mark.parametrize("scenario", ["urban", "highway", "parking"])
def test_a_clean_drive_never_repeats(message_drives: dict[str, Path], scenario: str) -> None:
    result = freeze(message_drives[scenario])
    assert result.events == []
    assert {c.topic for c in result.checks} == {"/imu", LIDAR, "/camera/image/compressed"}
    assert all(result.metrics.value("repeats", topic=c.topic) == 0 for c in result.checks)


def test_the_frozen_camera_is_found(message_drives: dict[str, Path]) -> None:
    log = message_drives["stamps"]
    fault = truth(log)["freeze:/camera/image/compressed=5s+3s"]
    (event,) = freeze(log).events
    start, end = fault["window_ns"]
    assert (event.kind, event.topic, event.severity) == (
        "freeze",
        "/camera/image/compressed",
        "error",
    )
    assert event.evidence["repeats"] == len(fault["stamps_ns"]) == 90
    assert start <= event.t_ns < start + 40 * MS
    assert end - 40 * MS < event.end_ns <= end + 10 * MS
    assert event.evidence["frozen_ns"] == pytest.approx(3 * 1_000_000_000, abs=2 * MS)
    log_time = times_by_stamp(log, CAMERA)
    assert (event.t_ns, event.end_ns) == (
        log_time[fault["stamps_ns"][0]],
        log_time[fault["stamps_ns"][-1]],
    )
    # the image repeated: the last one the camera really took before the freeze
    assert event.evidence["original_stamp_ns"] == fault["frozen_content_ns"]
    assert event.evidence["original_t_ns"] == log_time[fault["frozen_content_ns"]]
    assert event.evidence["last_stamp_ns"] == fault["stamps_ns"][-1]


def test_a_frozen_camera_and_a_frozen_lidar_are_each_found_once() -> None:
    # freeze:/camera/image/compressed=2s+1s: the 30 frames stamped in [2 s, 3 s) repeat the
    # image of 1.974 s; freeze:/lidar/points=1s+1s: the sweeps stamped 1.0 ... 1.9 s repeat the
    # one of 0.9 s. The image and point cloud analyzers leave both to this one.
    log = showcase_drive()
    camera_fault = truth(log)["freeze:/camera/image/compressed=2s+1s"]
    assert camera_fault["stamps_ns"][0] == START_NS + 2_007_000_000
    lidar_time, camera_time = times_by_stamp(log, LIDAR), times_by_stamp(log, CAMERA)
    result = freeze(log)
    lidar, camera = sorted(result.events, key=lambda e: e.t_ns)
    assert (lidar.kind, lidar.topic, lidar.severity) == ("freeze", LIDAR, "error")
    assert lidar.evidence["repeats"] == 10
    assert lidar.t_ns == lidar_time[START_NS + 1_000_000_000]
    assert lidar.end_ns == lidar_time[START_NS + 1_900_000_000]
    assert lidar.evidence["original_stamp_ns"] == START_NS + 900_000_000
    assert lidar.evidence["original_t_ns"] == lidar_time[START_NS + 900_000_000]
    assert lidar.evidence["last_stamp_ns"] == START_NS + 1_900_000_000
    # 1 s frozen, right at error_s: a warning or an error by a few microseconds of delivery
    assert (camera.kind, camera.topic) == ("freeze", CAMERA)
    assert camera.evidence["frozen_ns"] == pytest.approx(1_000_000_000, abs=2 * MS)
    assert camera.evidence["repeats"] == len(camera_fault["stamps_ns"]) == 30
    assert camera.t_ns == camera_time[camera_fault["stamps_ns"][0]]
    assert camera.end_ns == camera_time[camera_fault["stamps_ns"][-1]]
    assert camera.evidence["original_stamp_ns"] == camera_fault["frozen_content_ns"]
    assert camera.evidence["last_stamp_ns"] == camera_fault["stamps_ns"][-1]


def test_every_real_log_is_live(real_log_paths: list[Path], shared_data: Path) -> None:
    for path in real_log_paths:
        assert freeze(path).events == [], path.name
    sick = freeze(shared_data / "ros1" / "sick_lms1xx_rms_radar.bag")
    assert check(sick, "/cloud").status == "pass"
    assert check(sick, "/sick_lms_1xx/scan").status == "pass"
    # 6-point radar target clouds, the same on the log's static scene ("movement_off")
    assert check(sick, "/cloud_radar_track").status == "skip"
    realsense = freeze(shared_data / "ros1" / "realsense_t265_fisheye.bag")
    assert "/camera/odom/sample" not in {c.topic for c in realsense.checks}


def test_bad_parameters_are_one_line_errors() -> None:
    with pytest.raises(BagscopeError, match="min_repeats"):
        Freeze(min_repeats=0)
    with pytest.raises(BagscopeError, match="error_s"):
        Freeze(error_s=-1)
