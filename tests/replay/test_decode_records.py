"""Imu, NavSatFix, Odometry and LaserScan records, and the shared stamp helper."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import (
    DECODERS,
    GnssFix,
    ImuSample,
    OdometrySample,
    ScanPoints,
    decode_laserscan,
    stamp_to_ns,
)

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types


def header(frame_id: str = "base_link") -> Any:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=1_600_000_000, nanosec=999_999_999),
        frame_id=frame_id,
    )


def roundtrip(msg: Any) -> Any:
    msgtype = msg.__msgtype__
    return TS.deserialize_cdr(TS.serialize_cdr(msg, msgtype), msgtype)


def vector3(x: float, y: float, z: float) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def quaternion(x: float, y: float, z: float, w: float) -> Any:
    return T["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)


def test_stamp_to_ns_is_exact() -> None:
    stamp = T["builtin_interfaces/msg/Time"](sec=1_700_000_000, nanosec=123_456_789)
    assert stamp_to_ns(stamp) == 1_700_000_000_123_456_789  # a float would round this


def test_imu() -> None:
    msg = roundtrip(
        T["sensor_msgs/msg/Imu"](
            header=header("imu_link"),
            orientation=quaternion(0.0, 0.0, 0.6, 0.8),
            orientation_covariance=np.zeros(9),
            angular_velocity=vector3(0.1, -0.2, 0.3),
            angular_velocity_covariance=np.zeros(9),
            linear_acceleration=vector3(0.0, 0.5, 9.81),
            linear_acceleration_covariance=np.zeros(9),
        )
    )
    sample = DECODERS["sensor_msgs/msg/Imu"].decode(msg)
    assert isinstance(sample, ImuSample)
    assert sample.stamp_ns == 1_600_000_000_999_999_999
    assert sample.frame_id == "imu_link"
    np.testing.assert_array_equal(sample.orientation, [0.0, 0.0, 0.6, 0.8])
    np.testing.assert_array_equal(sample.angular_velocity, [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(sample.linear_acceleration, [0.0, 0.5, 9.81])


def test_navsatfix() -> None:
    covariance = np.diag([4.0, 9.0, 16.0]).ravel()
    msg = roundtrip(
        T["sensor_msgs/msg/NavSatFix"](
            header=header("gps"),
            status=T["sensor_msgs/msg/NavSatStatus"](status=2, service=1),
            latitude=48.1173,
            longitude=11.5167,
            altitude=545.4,
            position_covariance=covariance,
            position_covariance_type=2,
        )
    )
    fix = DECODERS["sensor_msgs/msg/NavSatFix"].decode(msg)
    assert isinstance(fix, GnssFix)
    assert (fix.latitude, fix.longitude, fix.altitude) == (48.1173, 11.5167, 545.4)
    assert (fix.status, fix.covariance_type) == (2, 2)
    np.testing.assert_array_equal(fix.covariance, np.diag([4.0, 9.0, 16.0]))


def test_odometry() -> None:
    pose = T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
        orientation=quaternion(0.0, 0.0, 0.0, 1.0),
    )
    twist = T["geometry_msgs/msg/Twist"](linear=vector3(0.5, 0, 0), angular=vector3(0, 0, 0.1))
    msg = roundtrip(
        T["nav_msgs/msg/Odometry"](
            header=header("odom"),
            child_frame_id="base_link",
            pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
        )
    )
    odom = DECODERS["nav_msgs/msg/Odometry"].decode(msg)
    assert isinstance(odom, OdometrySample)
    assert (odom.frame_id, odom.child_frame_id) == ("odom", "base_link")
    np.testing.assert_array_equal(odom.position, [1, 2, 3])
    np.testing.assert_array_equal(odom.orientation, [0, 0, 0, 1])
    np.testing.assert_array_equal(odom.linear, [0.5, 0, 0])
    np.testing.assert_array_equal(odom.angular, [0, 0, 0.1])


def laserscan(ranges: list[float], intensities: list[float]) -> Any:
    return roundtrip(
        T["sensor_msgs/msg/LaserScan"](
            header=header("laser"),
            angle_min=-math.pi / 2,
            angle_max=math.pi,
            angle_increment=math.pi / 4,
            time_increment=0.0,
            scan_time=0.1,
            range_min=0.05,
            range_max=25.0,
            ranges=np.array(ranges, dtype=np.float32),
            intensities=np.array(intensities, dtype=np.float32),
        )
    )


RANGES = [1.0, math.nan, 0.01, 2.0, 100.0, math.inf, 3.0, 25.0]


def test_laserscan_drops_invalid_ranges() -> None:
    scan = DECODERS["sensor_msgs/msg/LaserScan"].decode(
        laserscan(RANGES, [10, 11, 12, 13, 14, 15, 16, 17])
    )
    assert isinstance(scan, ScanPoints)
    assert len(scan) == 4
    np.testing.assert_array_equal(scan.ranges, [1.0, 2.0, 3.0, 25.0])
    np.testing.assert_array_equal(scan.intensities, [10, 13, 16, 17])
    # Beams 0, 3, 6, 7 at −90°, 45°, 180°, 225°.
    np.testing.assert_allclose(
        scan.angles, [-math.pi / 2, math.pi / 4, math.pi, 5 * math.pi / 4], rtol=1e-6
    )
    s = math.sqrt(0.5)
    want = np.array([[0, -1, 0], [2 * s, 2 * s, 0], [-3, 0, 0], [-25 * s, -25 * s, 0]])
    assert scan.points.dtype == np.float32
    np.testing.assert_allclose(scan.points, want, atol=1e-5)


@pytest.mark.parametrize("intensities", [[], [1.0, 2.0]])
def test_laserscan_without_matching_intensities(intensities: list[float]) -> None:
    scan = decode_laserscan(laserscan(RANGES, intensities))
    assert scan.intensities.shape == (0,)
    assert scan.points.shape == (4, 3)
