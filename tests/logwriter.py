"""Write small camera + lidar logs with rosbags' own writers, with hand-picked stamps.

Tests describe *what* is in the log (topic, stamps, payload shape); this module knows how each
format wants it serialised (ROS1 headers carry a ``seq``, ROS2 ones do not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


def ros1_store() -> Any:
    """Noetic's store plus ``tf2_msgs/msg/TFMessage``: the Noetic store lacks tf2_msgs, while
    real ROS1 bags carry its definition."""
    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(
        get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage")
    )
    return ts


ROS2 = get_typestore(Stores.ROS2_HUMBLE)
ROS1 = ros1_store()

LIDAR = "/lidar/points"
CAMERA = "/camera/image/compressed"
CAMERA_INFO = "/camera/camera_info"


@dataclass
class Entry:
    """One message to write: the log time and a builder that makes the object for a typestore."""

    topic: str
    msgtype: str
    log_time_ns: int
    build: Any  # Callable[[typestore], message object]


@dataclass
class LogSpec:
    entries: list[Entry] = field(default_factory=list)

    def add(self, topic: str, msgtype: str, log_time_ns: int, build: Any) -> None:
        self.entries.append(Entry(topic, msgtype, log_time_ns, build))


def header(ts: Any, stamp_ns: int, frame_id: str, *, seq: int = 0) -> Any:
    """A Header for the store's ROS version (ROS1's carries a ``seq``)."""
    stamp = ts.types["builtin_interfaces/msg/Time"](
        sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
    )
    cls = ts.types["std_msgs/msg/Header"]
    if "seq" in cls.__dataclass_fields__:
        return cls(seq=seq, stamp=stamp, frame_id=frame_id)
    return cls(stamp=stamp, frame_id=frame_id)


def cloud(ts: Any, stamp_ns: int, xyz: np.ndarray, frame_id: str = "lidar") -> Any:
    pts = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    pts["x"], pts["y"], pts["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    pts["intensity"] = np.arange(len(xyz), dtype=np.float32)
    field_cls = ts.types["sensor_msgs/msg/PointField"]
    fields = [
        field_cls(name=n, offset=4 * i, datatype=7, count=1)
        for i, n in enumerate(("x", "y", "z", "intensity"))
    ]
    return ts.types["sensor_msgs/msg/PointCloud2"](
        header=header(ts, stamp_ns, frame_id),
        height=1,
        width=len(xyz),
        fields=fields,
        is_bigendian=False,
        point_step=16,
        row_step=16 * len(xyz),
        data=np.frombuffer(pts.tobytes(), dtype=np.uint8),
        is_dense=True,
    )


def jpeg(ts: Any, stamp_ns: int, rgb: np.ndarray, frame_id: str = "camera", *, seq: int = 0) -> Any:
    data = simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=90, colorspace="RGB")
    return ts.types["sensor_msgs/msg/CompressedImage"](
        header=header(ts, stamp_ns, frame_id, seq=seq),
        format="jpeg",
        data=np.frombuffer(data, dtype=np.uint8),
    )


def camera_info(ts: Any, stamp_ns: int, width: int, height: int, f: float = 100.0) -> Any:
    cls = ts.types["sensor_msgs/msg/CameraInfo"]
    k = np.array([f, 0, width / 2, 0, f, height / 2, 0, 0, 1], dtype=np.float64)
    p = np.array([f, 0, width / 2, 0, 0, f, height / 2, 0, 0, 0, 1, 0], dtype=np.float64)
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    names = cls.__dataclass_fields__
    kw = {
        "header": header(ts, stamp_ns, "camera"),
        "height": height,
        "width": width,
        "distortion_model": "plumb_bob",
        "binning_x": 0,
        "binning_y": 0,
        "roi": roi,
    }
    for key, value in {"d": np.zeros(5), "k": k, "r": np.eye(3).ravel(), "p": p}.items():
        kw[key if key in names else key.upper()] = value
    return cls(**kw)


def tf_message(
    ts: Any, stamp_ns: int, parent: str, child: str, xyz: tuple[float, ...], *, seq: int = 0
) -> Any:
    vec = ts.types["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2])
    rot = ts.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)
    stamped = ts.types["geometry_msgs/msg/TransformStamped"](
        header=header(ts, stamp_ns, parent, seq=seq),
        child_frame_id=child,
        transform=ts.types["geometry_msgs/msg/Transform"](translation=vec, rotation=rot),
    )
    return ts.types["tf2_msgs/msg/TFMessage"](transforms=[stamped])


def write_log(path: Path, spec: LogSpec, fmt: str) -> Path:
    """Write ``spec`` as ``fmt`` (``bag``, ``mcap`` or ``db3``) and return the path to open."""
    entries = sorted(spec.entries, key=lambda e: e.log_time_ns)
    if fmt == "bag":
        with Writer1(path) as writer:
            conns: dict[str, Any] = {}
            for e in entries:
                if e.topic not in conns:
                    conns[e.topic] = writer.add_connection(e.topic, e.msgtype, typestore=ROS1)
                data = ROS1.serialize_ros1(e.build(ROS1), e.msgtype)
                writer.write(conns[e.topic], e.log_time_ns, data)
        return path
    plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
    with Writer2(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for e in entries:
            if e.topic not in conns:
                conns[e.topic] = writer.add_connection(e.topic, e.msgtype, typestore=ROS2)
            data = ROS2.serialize_cdr(e.build(ROS2), e.msgtype)
            writer.write(conns[e.topic], e.log_time_ns, data)
    return path


T0 = 1_700_000_000_000_000_000


def camera_lidar_spec(
    *, seconds: float = 1.0, camera_offset_ns: int = 3_000_000, latency_ns: int = 2_000_000
) -> LogSpec:
    """Lidar at 10 Hz, a 32×24 JPEG camera at 30 Hz, CameraInfo, static and dynamic TF.

    Header stamps are exact multiples of the sensor periods (camera shifted by
    ``camera_offset_ns``); every message is logged ``latency_ns`` after its stamp.
    """
    spec = LogSpec()
    rng = np.random.default_rng(7)
    n_lidar = round(seconds * 10)
    n_cam = round(seconds * 30)
    spec.add(
        "/tf_static",
        "tf2_msgs/msg/TFMessage",
        T0,
        lambda ts: tf_message(ts, T0, "base_link", "lidar", (0.0, 0.0, 1.5)),
    )
    for i in range(n_lidar):
        stamp = T0 + i * 100_000_000
        xyz = rng.normal(size=(64, 3)).astype(np.float32) + np.float32(i)
        spec.add(
            LIDAR,
            "sensor_msgs/msg/PointCloud2",
            stamp + latency_ns,
            lambda ts, s=stamp, p=xyz: cloud(ts, s, p),
        )
    for i in range(n_cam):
        stamp = T0 + camera_offset_ns + round(i * 1e9 / 30)
        rgb = np.full((24, 32, 3), (200, 30, 30), dtype=np.uint8)
        spec.add(
            CAMERA,
            "sensor_msgs/msg/CompressedImage",
            stamp + latency_ns,
            lambda ts, s=stamp, im=rgb: jpeg(ts, s, im),
        )
        spec.add(
            CAMERA_INFO,
            "sensor_msgs/msg/CameraInfo",
            stamp + latency_ns,
            lambda ts, s=stamp: camera_info(ts, s, 32, 24),
        )
    for i in range(round(seconds * 50)):
        stamp = T0 + i * 20_000_000
        spec.add(
            "/tf",
            "tf2_msgs/msg/TFMessage",
            stamp + latency_ns,
            lambda ts, s=stamp, k=i: tf_message(ts, s, "odom", "base_link", (k * 0.2, 0.0, 0.0)),
        )
    return spec
