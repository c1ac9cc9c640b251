"""Small sensor messages (IMU, GNSS, odometry, 2D scans) as plain numpy records.

Analyzers want these as arrays they can stack over time; a frozen record with int-ns stamps
and fixed-shape float64 arrays is what they can stack without knowing about rosbags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.decode.stamp import header_fields

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    FloatArray = NDArray[np.float64]


def _vector(values: ArrayLike, dtype: type[np.floating[Any]] = np.float64) -> NDArray[Any]:
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


def _xyz(vector: Any) -> FloatArray:
    return _vector([vector.x, vector.y, vector.z])


def _xyzw(quaternion: Any) -> FloatArray:
    return _vector([quaternion.x, quaternion.y, quaternion.z, quaternion.w])


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ImuSample:
    """One ``sensor_msgs/Imu``; orientation is ``(x, y, z, w)`` (all zero when not provided)."""

    stamp_ns: int
    frame_id: str
    orientation: FloatArray
    angular_velocity: FloatArray
    linear_acceleration: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class GnssFix:
    """One ``sensor_msgs/NavSatFix``; ``status`` is ``NavSatStatus.status`` (-1 means no fix)."""

    stamp_ns: int
    frame_id: str
    latitude: float
    longitude: float
    altitude: float
    status: int
    covariance: FloatArray  # (3, 3) ENU position covariance, m²
    covariance_type: int


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class OdometrySample:
    """One ``nav_msgs/Odometry``: pose in ``frame_id``, twist in ``child_frame_id``."""

    stamp_ns: int
    frame_id: str
    child_frame_id: str
    position: FloatArray
    orientation: FloatArray  # (x, y, z, w)
    linear: FloatArray
    angular: FloatArray


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ScanPoints:
    """The valid returns of one ``sensor_msgs/LaserScan`` as points in the scan frame.

    Ranges outside ``[range_min, range_max]`` or not finite are dropped; ``ranges``,
    ``angles`` and ``intensities`` are filtered the same way (``intensities`` is empty when the
    scan carries none).
    """

    stamp_ns: int
    frame_id: str
    points: NDArray[np.float32]  # (N, 3), z = 0
    ranges: NDArray[np.float32]
    angles: NDArray[np.float32]
    intensities: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.ranges.shape[0])


def decode_imu(msg: Any) -> ImuSample:
    """Decode a rosbags ``sensor_msgs/Imu``."""
    stamp_ns, frame_id = header_fields(msg)
    return ImuSample(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        orientation=_xyzw(msg.orientation),
        angular_velocity=_xyz(msg.angular_velocity),
        linear_acceleration=_xyz(msg.linear_acceleration),
    )


def decode_navsatfix(msg: Any) -> GnssFix:
    """Decode a rosbags ``sensor_msgs/NavSatFix``."""
    stamp_ns, frame_id = header_fields(msg)
    covariance = np.array(msg.position_covariance, dtype=np.float64).reshape(3, 3)
    covariance.flags.writeable = False
    return GnssFix(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        latitude=float(msg.latitude),
        longitude=float(msg.longitude),
        altitude=float(msg.altitude),
        status=int(msg.status.status),
        covariance=covariance,
        covariance_type=int(msg.position_covariance_type),
    )


def decode_odometry(msg: Any) -> OdometrySample:
    """Decode a rosbags ``nav_msgs/Odometry``."""
    stamp_ns, frame_id = header_fields(msg)
    pose, twist = msg.pose.pose, msg.twist.twist
    return OdometrySample(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        child_frame_id=str(msg.child_frame_id),
        position=_xyz(pose.position),
        orientation=_xyzw(pose.orientation),
        linear=_xyz(twist.linear),
        angular=_xyz(twist.angular),
    )


def decode_laserscan(msg: Any) -> ScanPoints:
    """Decode a rosbags ``sensor_msgs/LaserScan`` into its valid points."""
    stamp_ns, frame_id = header_fields(msg)
    ranges = np.asarray(msg.ranges, dtype=np.float32).reshape(-1)
    count = ranges.size
    # Angles in float64 so that the last beam of a long scan does not drift.
    angles = float(msg.angle_min) + float(msg.angle_increment) * np.arange(count)
    with np.errstate(invalid="ignore"):
        keep = (
            np.isfinite(ranges)
            & (ranges >= np.float32(msg.range_min))
            & (ranges <= np.float32(msg.range_max))
        )
    kept_ranges = ranges[keep]
    kept_angles = angles[keep]
    points = np.zeros((kept_ranges.size, 3), dtype=np.float32)
    points[:, 0] = kept_ranges * np.cos(kept_angles)
    points[:, 1] = kept_ranges * np.sin(kept_angles)
    intensities = np.asarray(msg.intensities, dtype=np.float32).reshape(-1)
    kept_intensities = intensities[keep] if intensities.size == count else intensities[:0]
    return ScanPoints(
        stamp_ns=stamp_ns,
        frame_id=frame_id,
        points=_vector(points, np.float32),
        ranges=_vector(kept_ranges, np.float32),
        angles=_vector(kept_angles, np.float32),
        intensities=_vector(kept_intensities, np.float32),
    )
