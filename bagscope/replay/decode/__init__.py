"""Decoders from rosbags message objects to bagscope records: one table, one entry per type.

:data:`DECODERS` is the only place a supported type is declared: its decoder, the direct CDR
parser that skips rosbags on the hot path (optional), and the slot a
:class:`~bagscope.replay.frame.Frame` carries it in. ``Message.decode()`` and the frame stream
both read this table, so adding a decoder is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from bagscope.replay.decode.boxes import Boxes, decode_detection3d_array
from bagscope.replay.decode.camera import CameraModel, decode_camera_info
from bagscope.replay.decode.cdr import (
    check_compressed_image,
    check_pointcloud2,
    parse_compressed_image,
    parse_pointcloud2,
)
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

Slot = Literal["cloud", "image", "camera", "record"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoder:
    """How one message type becomes a bagscope record, and where a frame keeps it.

    ``decode`` takes the rosbags-shaped message and checks the payload's structure (sizes,
    image markers) without decoding pixels; ``parse_cdr`` reads the few fields ``decode`` needs
    straight from little-endian CDR bytes and returns None when it cannot (rosbags then
    deserializes). ``check_cdr`` gives ``decode``'s verdict on the payload's structure straight
    from CDR bytes without building the record (True: fine; False: cannot tell, decode to
    find out; DecodeError: corrupt). ``slot``: ``cloud``/``image`` are frame members,
    ``camera`` is the CameraInfo a frame attaches to its image, ``record`` is a small sensor
    sample analyzers stack over time.
    """

    decode: Callable[[Any], object]
    slot: Slot
    parse_cdr: Callable[[bytes | memoryview], object | None] | None = None
    check_cdr: Callable[[bytes | memoryview], bool] | None = None


DECODERS: Mapping[str, Decoder] = MappingProxyType(
    {
        "sensor_msgs/msg/PointCloud2": Decoder(
            decode=decode_pointcloud,
            slot="cloud",
            parse_cdr=parse_pointcloud2,
            check_cdr=check_pointcloud2,
        ),
        "sensor_msgs/msg/Image": Decoder(decode=decode_image, slot="image"),
        "sensor_msgs/msg/CompressedImage": Decoder(
            decode=decode_compressed_image,
            slot="image",
            parse_cdr=parse_compressed_image,
            check_cdr=check_compressed_image,
        ),
        "sensor_msgs/msg/CameraInfo": Decoder(decode=decode_camera_info, slot="camera"),
        "sensor_msgs/msg/Imu": Decoder(decode=decode_imu, slot="record"),
        "sensor_msgs/msg/NavSatFix": Decoder(decode=decode_navsatfix, slot="record"),
        "nav_msgs/msg/Odometry": Decoder(decode=decode_odometry, slot="record"),
        "sensor_msgs/msg/LaserScan": Decoder(decode=decode_laserscan, slot="record"),
        "vision_msgs/msg/Detection3DArray": Decoder(decode=decode_detection3d_array, slot="record"),
    }
)


def types_in_slot(slot: Slot) -> frozenset[str]:
    """The message types a frame carries in ``slot`` (derived from :data:`DECODERS`)."""
    return frozenset(name for name, entry in DECODERS.items() if entry.slot == slot)


__all__ = [
    "DECODERS",
    "Boxes",
    "CameraImage",
    "CameraModel",
    "Decoder",
    "GnssFix",
    "ImuSample",
    "OdometrySample",
    "PointCloud",
    "ScanPoints",
    "Slot",
    "decode_camera_info",
    "decode_compressed_image",
    "decode_detection3d_array",
    "decode_image",
    "decode_imu",
    "decode_laserscan",
    "decode_navsatfix",
    "decode_odometry",
    "decode_pointcloud",
    "stamp_to_ns",
    "types_in_slot",
]
