"""PointCloud2 decoding: every datatype, both byte orders, padding, organized clouds, zero-copy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from bagscope.replay.decode import DECODERS, PointCloud, decode_pointcloud
from bagscope.replay.errors import DecodeError

if TYPE_CHECKING:
    from pathlib import Path

TS = get_typestore(Stores.ROS2_HUMBLE)
PC2 = "sensor_msgs/msg/PointCloud2"
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
PointField = TS.types["sensor_msgs/msg/PointField"]
PointCloud2 = TS.types[PC2]

CODES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def make_cloud(
    array: np.ndarray,
    *,
    fields: list[tuple[str, int, int, int]],
    height: int = 1,
    row_step: int | None = None,
    bigendian: bool = False,
    data: bytes | None = None,
    roundtrip: bool = True,
) -> Any:
    """A PointCloud2 message over ``array``'s bytes, as rosbags hands it back after CDR."""
    point_step = array.dtype.itemsize
    width = array.size // height
    if row_step is None:
        row_step = width * point_step
    if data is None:
        rows = array.reshape(height, width).tobytes()
        pad = row_step - width * point_step
        data = b"".join(
            rows[r * width * point_step : (r + 1) * width * point_step] + b"\xee" * pad
            for r in range(height)
        )
    msg = PointCloud2(
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id="lidar"),
        height=height,
        width=width,
        fields=[PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in fields],
        is_bigendian=bigendian,
        point_step=point_step,
        row_step=row_step,
        data=np.frombuffer(data, dtype=np.uint8),
        is_dense=False,
    )
    if not roundtrip:
        return msg
    return TS.deserialize_cdr(TS.serialize_cdr(msg, PC2), PC2)


@pytest.mark.parametrize("bigendian", [False, True])
def test_every_datatype_with_padding_and_byte_order(bigendian: bool) -> None:
    order = ">" if bigendian else "<"
    names = [f"f{datatype}" for datatype in CODES]
    offsets = [0, 1, 3, 5, 7, 11, 15, 19]  # packed and deliberately misaligned
    dtype = np.dtype(
        {
            "names": names,
            "formats": [order + code for code in CODES.values()],
            "offsets": offsets,
            "itemsize": 40,  # 13 bytes of padding after the last field
        }
    )
    array = np.zeros(5, dtype=dtype)
    rng = np.random.default_rng(7)
    for name, code in zip(names, CODES.values(), strict=True):
        info = np.iinfo(code) if code[0] in "iu" else None
        if info is not None:
            array[name] = rng.integers(info.min, info.max, size=5, dtype=code, endpoint=True)
        else:
            array[name] = rng.normal(size=5) * 1e3
    array["f8"][2] = -1.5e300  # only representable as FLOAT64
    msg = make_cloud(
        array,
        fields=[(n, o, d, 1) for n, o, d in zip(names, offsets, CODES, strict=True)],
        bigendian=bigendian,
    )
    cloud = decode_pointcloud(msg)
    assert cloud.point_step == 40
    assert cloud.field_names == tuple(names)
    for name, code in zip(names, CODES.values(), strict=True):
        values = cloud.field(name)
        assert values.shape == (5,)
        assert values.dtype.newbyteorder("=") == np.dtype(code)
        np.testing.assert_array_equal(values, array[name])
    assert np.shares_memory(cloud.points, msg.data)


def test_count_gt_one_gives_a_subarray_axis() -> None:
    dtype = np.dtype(
        {"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 3 + [("u1", (3,))], "itemsize": 16}
    )
    array = np.zeros(4, dtype=dtype)
    array["x"] = [1, 2, 3, 4]
    array["rgb"] = [[10, 20, 30], [40, 50, 60], [70, 80, 90], [1, 2, 3]]
    msg = make_cloud(
        array, fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 2, 3)]
    )
    cloud = decode_pointcloud(msg)
    assert cloud.fields["rgb"].shape == (4, 3)
    np.testing.assert_array_equal(cloud.fields["rgb"], array["rgb"])
    np.testing.assert_array_equal(cloud.xyz[:, 0], [1, 2, 3, 4])


def test_organized_cloud_with_row_padding() -> None:
    height, width = 3, 4
    dtype = np.dtype(
        {
            "names": ["x", "y", "z", "intensity"],
            "formats": ["<f4", "<f4", "<f4", "<u2"],
            "offsets": [0, 4, 8, 12],
            "itemsize": 16,
        }
    )
    array = np.zeros(height * width, dtype=dtype)
    array["x"] = np.arange(12)
    array["y"] = np.arange(12) * 10
    array["z"] = np.arange(12) * 100
    array["intensity"] = np.arange(12) + 1000
    array["x"][5] = np.nan  # "no return" as drivers write it
    msg = make_cloud(
        array,
        fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("intensity", 12, 4, 1)],
        height=height,
        row_step=width * 16 + 24,
    )
    cloud = decode_pointcloud(msg)
    assert cloud.shape == (3, 4)
    assert len(cloud) == 12
    assert cloud.points.shape == (3, 4)
    assert cloud.fields["intensity"].shape == (3, 4)
    np.testing.assert_array_equal(cloud.fields["intensity"][2], [1008, 1009, 1010, 1011])
    assert np.shares_memory(cloud.points, msg.data)
    xyz = cloud.xyz
    assert xyz.shape == (12, 3)
    assert xyz.dtype == np.float32
    assert xyz.flags.c_contiguous
    assert cloud.xyz is xyz  # computed once
    np.testing.assert_array_equal(xyz[7], [7, 70, 700])  # row-major: row 1, column 3
    mask = cloud.finite_mask
    assert mask.sum() == 11
    assert not mask[5]
    assert cloud.xyz_finite.shape == (11, 3)
    assert np.isfinite(cloud.xyz_finite).all()


def test_xyz_keeps_float64_and_reads_big_endian() -> None:
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": [">f8"] * 3, "itemsize": 32})
    array = np.zeros(3, dtype=dtype)
    array["x"] = [1.0 + 1e-12, 2.0, 3.0]
    array["y"] = [-1.0, -2.0, -3.0]
    array["z"] = [0.5, 0.25, 0.125]
    msg = make_cloud(
        array, fields=[("x", 0, 8, 1), ("y", 8, 8, 1), ("z", 16, 8, 1)], bigendian=True
    )
    cloud = decode_pointcloud(msg)
    assert cloud.xyz.dtype == np.float64
    assert cloud.xyz.dtype.isnative
    np.testing.assert_array_equal(cloud.xyz[0], [1.0 + 1e-12, -1.0, 0.5])


def test_header_and_registry() -> None:
    array = np.zeros(2, dtype=np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    msg = make_cloud(array, fields=[("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)])
    cloud = DECODERS[PC2].decode(msg)
    assert isinstance(cloud, PointCloud)
    assert cloud.stamp_ns == 1_700_000_000_123_456_789
    assert cloud.frame_id == "lidar"
    assert not cloud.is_dense


def test_missing_field_names_the_fields_there_are() -> None:
    array = np.zeros(2, dtype=np.dtype([("x", "<f4"), ("y", "<f4")]))
    cloud = decode_pointcloud(make_cloud(array, fields=[("x", 0, 7, 1), ("y", 4, 7, 1)]))
    with pytest.raises(DecodeError, match=r"no field 'z' \(fields: x, y\)"):
        _ = cloud.xyz
    with pytest.raises(DecodeError, match="no field 'ring'"):
        cloud.field("ring")


def test_empty_cloud() -> None:
    array = np.zeros(0, dtype=np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    msg = PointCloud2(
        header=Header(stamp=Time(sec=0, nanosec=5), frame_id="lidar"),
        height=1,
        width=0,
        fields=[
            PointField(name=n, offset=o, datatype=7, count=1)
            for n, o in (("x", 0), ("y", 4), ("z", 8))
        ],
        is_bigendian=False,
        point_step=12,
        row_step=0,
        data=np.frombuffer(array.tobytes(), dtype=np.uint8),
        is_dense=True,
    )
    cloud = decode_pointcloud(TS.deserialize_cdr(TS.serialize_cdr(msg, PC2), PC2))
    assert len(cloud) == 0
    assert cloud.xyz.shape == (0, 3)
    assert cloud.xyz_finite.shape == (0, 3)


XYZ = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data": b"\x00" * 20}, r"20 bytes, expected row_step 24 × height 1 = 24"),
        ({"row_step": 12}, r"row_step 12 < width 2 × point_step 12"),
        ({"fields": [*XYZ[:2], ("z", 8, 8, 1)]}, r"'z' ends at byte 16, beyond point_step 12"),
        ({"fields": [*XYZ[:2], ("z", 4, 7, 3)]}, r"'z' ends at byte 16"),
        ({"fields": [*XYZ[:2], ("z", 8, 9, 1)]}, r"'z' has unknown datatype 9"),
        ({"fields": [*XYZ[:2], ("x", 8, 7, 1)]}, r"'x' appears twice"),
    ],
)
def test_corrupt_payloads_raise_decode_error(kwargs: dict[str, Any], match: str) -> None:
    array = np.zeros(2, dtype=np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    fields = kwargs.pop("fields", XYZ)
    msg = make_cloud(array, fields=fields, roundtrip=False, **kwargs)
    with pytest.raises(DecodeError, match=match):
        decode_pointcloud(msg)


def _write_and_read(tmp_path: Path, storage: str, cloud_bytes: bytes) -> list[Any]:
    """Write one cloud with rosbags' own writer, read it back through AnyReader."""
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    n = len(cloud_bytes) // dtype.itemsize
    msg = PointCloud2(
        header=Header(stamp=Time(sec=10, nanosec=20), frame_id="velodyne"),
        height=1,
        width=n,
        fields=[
            PointField(name=name, offset=4 * i, datatype=7, count=1)
            for i, name in enumerate(dtype.names or ())
        ],
        is_bigendian=False,
        point_step=16,
        row_step=16 * n,
        data=np.frombuffer(cloud_bytes, dtype=np.uint8),
        is_dense=True,
    )
    if storage == "ros1":
        path = tmp_path / "cloud.bag"
        with Writer1(path) as writer:
            conn = writer.add_connection("/points", PC2, typestore=TS)
            writer.write(conn, 10_000_000_030, TS.serialize_ros1(msg, PC2))
    else:
        path = tmp_path / "cloud"
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        with Writer2(path, version=9, storage_plugin=plugin) as writer:
            conn = writer.add_connection("/points", PC2, typestore=TS)
            writer.write(conn, 10_000_000_030, TS.serialize_cdr(msg, PC2))
    with AnyReader([path], default_typestore=TS) as reader:
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["ros1", "sqlite3", "mcap"])
def test_zero_copy_through_each_storage(tmp_path: Path, storage: str) -> None:
    points = np.arange(40, dtype=np.float32).reshape(10, 4)
    (msg,) = _write_and_read(tmp_path, storage, points.tobytes())
    cloud = decode_pointcloud(msg)
    assert cloud.stamp_ns == 10_000_000_020
    assert np.shares_memory(cloud.points, msg.data)
    np.testing.assert_array_equal(cloud.xyz, points[:, :3])
    np.testing.assert_array_equal(cloud.fields["intensity"], points[:, 3])


def test_adjacent_native_xyz_is_a_view_over_the_message_bytes() -> None:
    dtype = np.dtype(
        {"names": ["x", "y", "z", "ring"], "formats": ["<f4", "<f4", "<f4", "<u2"], "itemsize": 24}
    )
    array = np.zeros(5, dtype=dtype)
    array["x"], array["y"], array["z"] = np.arange(5), -np.arange(5), 0.5
    fields = [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("ring", 12, 4, 1)]
    msg = make_cloud(array, fields=fields)
    cloud = decode_pointcloud(msg)
    assert np.shares_memory(cloud.xyz, msg.data)
    assert not cloud.xyz.flags.writeable
    np.testing.assert_array_equal(cloud.xyz[3], [3.0, -3.0, 0.5])
    # Row padding in an organized cloud breaks the uniform stride: then xyz is a copy.
    padded = make_cloud(np.concatenate([array, array[:1]]), fields=fields, height=2, row_step=80)
    cloud = decode_pointcloud(padded)
    assert not np.shares_memory(cloud.xyz, padded.data)
    np.testing.assert_array_equal(cloud.xyz[4], [4.0, -4.0, 0.5])
