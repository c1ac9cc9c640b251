"""Every decodable message of the real recorded logs in ../shared/data, pixels included."""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from bagscope.replay.decode import (
    DECODERS,
    CameraImage,
    CameraModel,
    ImuSample,
    OdometrySample,
    PointCloud,
    ScanPoints,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
BAGS = [
    "ros1/sick_lms1xx_rms_radar.bag",
    "ros1/raspicam_aruco_compressed.bag",
    "ros1/realsense_t265_fisheye.bag",
    "ros1/tf_example.bag",
    "ros1/turtlesim_bz2.bag",
    "ros1/turtlesim_lz4.bag",
    "ros2/tf_example_sqlite3",
    "ros2/cdr_test_sqlite3",
    "ros2/cdr_test_mcap",
]
ALL_DECODERS = {name: entry.decode for name, entry in DECODERS.items()}

Decoded = dict[str, list[tuple[Any, object]]]  # topic -> [(rosbags message, our record)]


def bag_path(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real test data not available: {path}")
    return path


@cache
def decode_all(name: str) -> Decoded:
    """Decode every message of a type we decode, forcing the lazy pixels too."""
    out: Decoded = defaultdict(list)
    with AnyReader([bag_path(name)]) as reader:
        connections = [c for c in reader.connections if c.msgtype in ALL_DECODERS]
        if not connections:  # rosbags reads every connection when given none
            return out
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            record = ALL_DECODERS[connection.msgtype](msg)
            if isinstance(record, CameraImage):
                _ = record.pixels
            out[connection.topic].append((msg, record))
    return out


def records(name: str, topic: str) -> list[object]:
    return [record for _, record in decode_all(name)[topic]]


@pytest.mark.parametrize("name", BAGS)
def test_every_message_decodes_to_a_sane_record(name: str) -> None:
    for topic, pairs in decode_all(name).items():
        for msg, record in pairs:
            if isinstance(record, PointCloud):
                assert record.xyz.shape == (len(record), 3), topic
                assert np.shares_memory(record.points, msg.data)
            elif isinstance(record, CameraImage):
                assert record.pixels.shape[:2] == (record.height, record.width), topic
                assert record.pixels.ndim in (2, 3)
            elif isinstance(record, CameraModel):
                assert record.K.shape == (3, 3)
                assert record.P.shape == (3, 4)
            elif isinstance(record, ScanPoints):
                assert record.points.shape == (len(record), 3)
                assert np.isfinite(record.points).all()
            elif isinstance(record, ImuSample | OdometrySample):
                assert np.isfinite(record.orientation).all()
            stamp = getattr(record, "stamp_ns", None)
            assert stamp is None or stamp > 0, topic


def test_raspicam_jpeg_and_camera_info() -> None:
    name = "ros1/raspicam_aruco_compressed.bag"
    (image,) = records(name, "/raspicam_node/image/compressed")
    assert isinstance(image, CameraImage)
    assert image.compressed
    assert image.encoding == "jpg"
    assert image.pixels.shape == (960, 1280, 3)
    assert image.pixels.dtype == np.uint8
    assert 20 < image.pixels.mean() < 235  # a real picture, not a flat frame
    infos = records(name, "/raspicam_node/camera_info")
    assert len(infos) == 15
    camera = infos[0]
    assert isinstance(camera, CameraModel)
    assert (camera.width, camera.height, camera.distortion_model) == (1280, 960, "plumb_bob")
    assert camera.frame_id == image.frame_id == "raspicam"
    assert camera.D.shape == (5,)
    # Every pixel of the real calibration unprojects and projects back to itself.
    u, v = np.meshgrid(np.linspace(0.5, 1279.5, 9), np.linspace(0.5, 959.5, 7))
    pixels = np.stack([u.ravel(), v.ravel()], axis=1)
    back, valid = camera.project(camera.undistort_points(pixels) * 3.0)
    assert valid.all()
    np.testing.assert_allclose(back, pixels, atol=1e-6)


def test_t265_fisheye_images_imu_and_odometry() -> None:
    name = "ros1/realsense_t265_fisheye.bag"
    for topic in ("/camera/fisheye1/image_raw", "/camera/fisheye2/image_raw"):
        images = records(name, topic)
        assert len(images) == 3
        for image in images:
            assert isinstance(image, CameraImage)
            assert image.encoding == "mono8"
            assert image.pixels.shape == (800, 848)
    odometry = records(name, "/camera/odom/sample")
    assert len(odometry) == 19
    assert all(isinstance(o, OdometrySample) for o in odometry)
    first = odometry[0]
    assert isinstance(first, OdometrySample)
    assert first.child_frame_id == "camera_pose_frame"
    assert abs(np.linalg.norm(first.orientation) - 1.0) < 1e-3
    gyro = records(name, "/camera/gyro/sample")
    assert len(gyro) == 19
    stamps = [g.stamp_ns for g in gyro if isinstance(g, ImuSample)]
    assert stamps == sorted(stamps)


def test_sick_cloud_matches_its_laserscan() -> None:
    name = "ros1/sick_lms1xx_rms_radar.bag"
    clouds = {c.stamp_ns: c for c in records(name, "/cloud") if isinstance(c, PointCloud)}
    assert len(clouds) == 89
    assert {len(c) for c in clouds.values()} == {541}
    assert {c.field_names for c in clouds.values()} == {("x", "y", "z", "intensity")}
    scans = decode_all(name)["/sick_lms_1xx/scan"]
    assert len(scans) == 89
    matched = 0
    for msg, scan in scans:
        assert isinstance(scan, ScanPoints)
        cloud = clouds.get(scan.stamp_ns)
        if cloud is None:
            continue
        # The driver publishes every beam as a point; the scan keeps only valid ranges.
        ranges = np.asarray(msg.ranges)
        keep = (
            np.isfinite(ranges)
            & (ranges >= np.float32(msg.range_min))
            & (ranges <= np.float32(msg.range_max))
        )
        np.testing.assert_allclose(scan.points, cloud.xyz[keep], atol=1e-5)
        matched += 1
    assert matched == 89
    for topic, count in (("/cloud_radar_rawtarget", 139), ("/cloud_radar_track", 108)):
        radar = records(name, topic)
        assert len(radar) == count
        assert all(isinstance(c, PointCloud) and c.xyz.shape[1] == 3 for c in radar)
