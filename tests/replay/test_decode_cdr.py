"""The direct CDR parsers must agree with rosbags' deserializer field for field."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import decode_compressed_image, decode_pointcloud
from bagscope.replay.decode.cdr import parse_compressed_image, parse_pointcloud2

TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types


def _header(frame_id: str) -> object:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=1_700_000_123, nanosec=456_789),
        frame_id=frame_id,
    )


@pytest.mark.parametrize("frame_id", ["", "l", "lidar", "lidar_top_xyz"])  # every padding case
@pytest.mark.parametrize("names", [["x", "y", "z"], ["x", "y", "z", "intensity", "ring", "t"]])
def test_pointcloud2_matches_rosbags(frame_id: str, names: list[str]) -> None:
    rng = np.random.default_rng(len(frame_id) + len(names))
    step = 4 * len(names) + 3  # odd point_step: nothing after the data is aligned by accident
    data = rng.integers(0, 255, size=7 * step, dtype=np.uint8)
    fields = [
        T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
        for i, n in enumerate(names)
    ]
    msg = T["sensor_msgs/msg/PointCloud2"](
        header=_header(frame_id),
        height=1,
        width=7,
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=7 * step,
        data=data,
        is_dense=True,
    )
    raw = TS.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2")
    fast = parse_pointcloud2(raw)
    slow = TS.deserialize_cdr(raw, "sensor_msgs/msg/PointCloud2")
    assert fast is not None
    assert (fast.header.stamp.sec, fast.header.stamp.nanosec) == (1_700_000_123, 456_789)
    assert fast.header.frame_id == slow.header.frame_id
    assert [(f.name, f.offset, f.datatype, f.count) for f in fast.fields] == [
        (f.name, f.offset, f.datatype, f.count) for f in slow.fields
    ]
    assert (fast.height, fast.width, fast.point_step, fast.row_step, fast.is_dense) == (
        slow.height,
        slow.width,
        slow.point_step,
        slow.row_step,
        slow.is_dense,
    )
    np.testing.assert_array_equal(fast.data, slow.data)
    assert np.shares_memory(fast.data, np.frombuffer(raw, dtype=np.uint8))
    np.testing.assert_array_equal(decode_pointcloud(fast).xyz, decode_pointcloud(slow).xyz)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "png"])
def test_compressed_image_matches_rosbags(fmt: str) -> None:
    payload = np.frombuffer(b"\xff\xd8\xff" + bytes(range(40)), dtype=np.uint8)
    msg = T["sensor_msgs/msg/CompressedImage"](header=_header("cam"), format=fmt, data=payload)
    raw = TS.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")
    fast = parse_compressed_image(raw)
    assert fast is not None
    assert fast.format == fmt
    assert fast.header.frame_id == "cam"
    np.testing.assert_array_equal(fast.data, payload)


def test_truncated_or_big_endian_payloads_fall_back() -> None:
    msg = T["sensor_msgs/msg/CompressedImage"](
        header=_header("cam"), format="jpeg", data=np.zeros(10, dtype=np.uint8)
    )
    raw = TS.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage")
    assert parse_compressed_image(raw[:-4]) is None
    big = TS.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage", little_endian=False)
    assert parse_compressed_image(big) is None
    with pytest.raises(Exception, match="neither JPEG nor PNG"):
        decode_compressed_image(parse_compressed_image(raw))
