"""Decoders from rosbags message objects to bagscope records.

``DECODERS`` holds the four types a :class:`~bagscope.replay.frame.Frame` carries decoded
(clouds, images, camera models); every other type stays a rosbags object so that nothing pays
for decoding it does not use. ``RECORD_DECODERS`` turns the small sensor messages analyzers stack
over time into numpy records, on request.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bagscope.replay.decode.camera import CameraModel, decode_camera_info
from bagscope.replay.decode.cdr import parse_compressed_image, parse_pointcloud2
from bagscope.replay.decode.compressed import decode_compressed_image
from bagscope.replay.decode.image import CameraImage, decode_image
from bagscope.replay.decode.pointcloud import PointCloud, decode_pointcloud
from bagscope.replay.decode.records import (
    GnssFix,
    ImuSample,
    OdometrySample,
    ScanPoints,
    decode_imu,
    decode_laserscan,
    decode_navsatfix,
    decode_odometry,
)
from bagscope.replay.decode.stamp import stamp_to_ns

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# Parsers that read a type straight from its CDR bytes, skipping the generic deserializer; each
# returns None when it cannot, and the caller then decodes through rosbags as usual.
CDR_PARSERS: Mapping[str, Callable[[bytes | memoryview], object | None]] = MappingProxyType(
    {
        "sensor_msgs/msg/PointCloud2": parse_pointcloud2,
        "sensor_msgs/msg/CompressedImage": parse_compressed_image,
    }
)

DECODERS: Mapping[str, Callable[[Any], object]] = MappingProxyType(
    {
        "sensor_msgs/msg/PointCloud2": decode_pointcloud,
        "sensor_msgs/msg/Image": decode_image,
        "sensor_msgs/msg/CompressedImage": decode_compressed_image,
        "sensor_msgs/msg/CameraInfo": decode_camera_info,
    }
)

RECORD_DECODERS: Mapping[str, Callable[[Any], object]] = MappingProxyType(
    {
        "sensor_msgs/msg/Imu": decode_imu,
        "sensor_msgs/msg/NavSatFix": decode_navsatfix,
        "nav_msgs/msg/Odometry": decode_odometry,
        "sensor_msgs/msg/LaserScan": decode_laserscan,
    }
)

__all__ = [
    "CDR_PARSERS",
    "DECODERS",
    "RECORD_DECODERS",
    "CameraImage",
    "CameraModel",
    "GnssFix",
    "ImuSample",
    "OdometrySample",
    "PointCloud",
    "ScanPoints",
    "decode_camera_info",
    "decode_compressed_image",
    "decode_image",
    "decode_imu",
    "decode_laserscan",
    "decode_navsatfix",
    "decode_odometry",
    "decode_pointcloud",
    "stamp_to_ns",
]
