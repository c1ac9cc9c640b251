"""The direct CDR parsers must agree with rosbags' deserializer field for field."""

from __future__ import annotations

import numpy as np
import pytest
import simplejpeg
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import decode_compressed_image, decode_pointcloud
from bagscope.replay.decode.cdr import (
    check_compressed_image,
    check_pointcloud2,
    parse_compressed_image,
    parse_pointcloud2,
)
from bagscope.replay.errors import DecodeError

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


# -- structural checks give decode()'s verdict without building the record -----------------


def _cloud(**change: object) -> bytes:
    fields = [
        T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)
        for i, n in enumerate("xyz")
    ]
    values: dict[str, object] = {
        "header": _header("lidar"),
        "height": 1,
        "width": 5,
        "fields": fields,
        "is_bigendian": False,
        "point_step": 12,
        "row_step": 60,
        "data": np.zeros(60, dtype=np.uint8),
        "is_dense": True,
    }
    values.update(change)
    msg = T["sensor_msgs/msg/PointCloud2"](**values)
    return bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"))


def _image(data: bytes, fmt: str = "jpeg") -> bytes:
    msg = T["sensor_msgs/msg/CompressedImage"](
        header=_header("cam"), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
    )
    return bytes(TS.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage"))


JPEG = bytes(simplejpeg.encode_jpeg(np.zeros((8, 8, 3), dtype=np.uint8), colorspace="RGB"))
PF = T["sensor_msgs/msg/PointField"]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (_cloud(), None),
        (_cloud(data=np.zeros(48, dtype=np.uint8)), r"data has 48 bytes, expected row_step 60"),
        (_cloud(row_step=40, data=np.zeros(40, dtype=np.uint8)), r"row_step 40 < width 5"),
        (
            _cloud(point_step=8, row_step=40, data=np.zeros(40, dtype=np.uint8)),
            r"beyond point_step",
        ),
        (
            _cloud(fields=[PF(name="x", offset=0, datatype=9, count=1)]),
            r"unknown datatype 9",
        ),
        (
            _cloud(fields=[PF(name="x", offset=0, datatype=7, count=1)] * 2),
            r"'x' appears twice",
        ),
    ],
)
def test_cloud_check_agrees_with_decode(raw: bytes, error: str | None) -> None:
    if error is None:
        assert check_pointcloud2(raw) is True
        decode_pointcloud(parse_pointcloud2(raw))
        return
    with pytest.raises(DecodeError, match=error):
        decode_pointcloud(parse_pointcloud2(raw))
    for _ in range(2):  # the layout verdict is cached: the second check must agree too
        with pytest.raises(DecodeError, match=error):
            check_pointcloud2(raw)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (_image(JPEG), None),
        (_image(JPEG[: len(JPEG) // 2]), r"corrupt JPEG"),
        (_image(b"GIF89a" + bytes(20)), r"neither JPEG nor PNG"),
        (_image(JPEG, "16UC1; compressedDepth rvl"), r"RVL images are not supported"),
    ],
)
def test_image_check_agrees_with_decode(raw: bytes, error: str | None) -> None:
    if error is None:
        assert check_compressed_image(raw) is True
        assert decode_compressed_image(parse_compressed_image(raw)).pixels.shape == (8, 8, 3)
        return
    with pytest.raises(DecodeError, match=error):
        decode_compressed_image(parse_compressed_image(raw))
    with pytest.raises(DecodeError, match=error):
        check_compressed_image(raw)


def test_checks_defer_when_they_cannot_tell() -> None:
    cut = _cloud()[:-30]  # cut inside the points: decoding gives the authoritative error
    assert check_pointcloud2(cut) is False
    big = TS.serialize_cdr(
        T["sensor_msgs/msg/CompressedImage"](
            header=_header("cam"), format="jpeg", data=np.frombuffer(JPEG, dtype=np.uint8)
        ),
        "sensor_msgs/msg/CompressedImage",
        little_endian=False,
    )
    assert check_compressed_image(big) is False
