"""Turn simulated sensor data into serialized ROS messages, ROS2 (CDR) or ROS1.

One :class:`MessageEncoder` per output log: it owns the typestore whose definitions the writer
embeds in the log, so every message we serialize is described by exactly the schema a reader
will find next to it. ``vision_msgs`` is in none of rosbags' stores; we register the ROS2 Humble
definitions from their ``.msg`` text, which is why a plain ``AnyReader`` can decode our ground
truth without knowing the package. For ROS1 the same definitions are registered on top of the
Noetic store (whose ``std_msgs/Header`` carries ``seq``), so the ROS1 log is self-consistent too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import simplejpeg
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from bagscope.replay.msgdefs import DETECTIONS, VISION_MSGS
from bagscope.replay.rotation import matrix_to_quat

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rosbags.typesys.store import Typestore

__all__ = [
    "CAMERA_INFO",
    "COMPRESSED_IMAGE",
    "DETECTIONS",
    "IMAGE",
    "IMU",
    "ODOMETRY",
    "POINT_CLOUD",
    "POINT_DTYPE",
    "TF",
    "VISION_MSGS",
    "BoxTruth",
    "MessageEncoder",
    "encode_jpeg",
    "pack_points",
]

POINT_CLOUD = "sensor_msgs/msg/PointCloud2"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF = "tf2_msgs/msg/TFMessage"
ODOMETRY = "nav_msgs/msg/Odometry"
IMU = "sensor_msgs/msg/Imu"

# x, y, z, intensity, ring, t: 4-byte aligned like Ouster/Hesai drivers, so a reader can view
# the buffer with one structured dtype; 2 pad bytes after ``ring`` keep ``t`` aligned.
POINT_DTYPE = np.dtype(
    {
        "names": ["x", "y", "z", "intensity", "ring", "t"],
        "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
        "offsets": [0, 4, 8, 12, 16, 20],
        "itemsize": 24,
    }
)
_FLOAT32, _UINT16 = 7, 4  # sensor_msgs/PointField datatype codes
_POINT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, _FLOAT32),
    ("y", 4, _FLOAT32),
    ("z", 8, _FLOAT32),
    ("intensity", 12, _FLOAT32),
    ("ring", 16, _UINT16),
    ("t", 20, _FLOAT32),
)

_GRAVITY = 9.81


def pack_points(
    *, xyz: np.ndarray, intensity: np.ndarray, ring: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """One :data:`POINT_DTYPE` record per point, pad bytes zeroed so equal clouds are equal
    bytes; done where the sweep is simulated, so only one buffer travels between processes."""
    points = np.zeros(len(xyz), dtype=POINT_DTYPE)
    points["x"] = xyz[:, 0]
    points["y"] = xyz[:, 1]
    points["z"] = xyz[:, 2]
    points["intensity"] = intensity
    points["ring"] = ring
    points["t"] = t
    return points


def encode_jpeg(rgb: np.ndarray, *, quality: int) -> bytes:
    """libjpeg-turbo JPEG of an (H, W, 3) uint8 RGB image, chroma subsampled 4:2:0 as camera
    drivers and image_transport write it (and twice as fast to encode as 4:4:4)."""
    jpeg: bytes = simplejpeg.encode_jpeg(
        np.ascontiguousarray(rgb), quality=quality, colorspace="RGB", colorsubsampling="420"
    )
    return jpeg


@dataclass(frozen=True, slots=True, kw_only=True)
class BoxTruth:
    """One ground-truth object for :meth:`MessageEncoder.detections`: pose in the header frame."""

    track_id: int
    cls: str
    pose: np.ndarray
    size: tuple[float, float, float]


class MessageEncoder:
    """Builds and serializes every message type the simulator writes, for one ROS version.

    Methods take plain numbers and numpy arrays (time in int ns) and return the serialized
    bytes, so the simulation loop never touches message classes and the ROS1/ROS2 differences
    (``seq`` in headers, ``D/K/R/P`` vs ``d/k/r/p``) live only here.
    """

    def __init__(self, *, ros1: bool = False) -> None:
        self.ros1 = ros1
        store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
        types: dict[str, Any] = {}
        for name, text in VISION_MSGS.items():
            types.update(get_types_from_msg(text, name))
        if ros1:  # rosbags' Noetic store lacks tf2_msgs; its definition is one line
            types.update(get_types_from_msg("geometry_msgs/TransformStamped[] transforms\n", TF))
        store.register(types)
        self.typestore: Typestore = store
        self._t = store.types
        self._serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
        self._identity9 = np.eye(3).reshape(9)

    # -- building blocks -------------------------------------------------------------------

    def _header(self, stamp_ns: int, frame_id: str, seq: int) -> Any:
        t = self._t
        stamp = t["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        if self.ros1:
            return t["std_msgs/msg/Header"](seq=seq, stamp=stamp, frame_id=frame_id)
        return t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def _vector(self, values: Sequence[float] | np.ndarray) -> Any:
        x, y, z = (float(v) for v in values)
        return self._t["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)

    def _quaternion(self, rotation: np.ndarray) -> Any:
        x, y, z, w = (float(v) for v in matrix_to_quat(rotation))
        return self._t["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w)

    def _pose(self, matrix: np.ndarray) -> Any:
        x, y, z = (float(v) for v in matrix[:3, 3])
        point = self._t["geometry_msgs/msg/Point"](x=x, y=y, z=z)
        return self._t["geometry_msgs/msg/Pose"](
            position=point, orientation=self._quaternion(matrix[:3, :3])
        )

    def _transform(self, matrix: np.ndarray, *, stamp_ns: int, parent: str, child: str) -> Any:
        t = self._t
        transform = t["geometry_msgs/msg/Transform"](
            translation=self._vector(matrix[:3, 3]), rotation=self._quaternion(matrix[:3, :3])
        )
        return t["geometry_msgs/msg/TransformStamped"](
            header=self._header(stamp_ns, parent, 0), child_frame_id=child, transform=transform
        )

    # -- messages --------------------------------------------------------------------------

    def point_cloud(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        xyz: np.ndarray,
        intensity: np.ndarray,
        ring: np.ndarray,
        t: np.ndarray,
        seq: int = 0,
        corrupt: bool = False,
    ) -> bytes:
        """An unorganized cloud (height 1) of the given fields; see :meth:`packed_point_cloud`."""
        return self.packed_point_cloud(
            stamp_ns=stamp_ns,
            frame_id=frame_id,
            points=pack_points(xyz=xyz, intensity=intensity, ring=ring, t=t),
            seq=seq,
            corrupt=corrupt,
        )

    def packed_point_cloud(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        points: np.ndarray,
        seq: int = 0,
        corrupt: bool = False,
    ) -> bytes:
        """An unorganized cloud of :data:`POINT_DTYPE` ``points`` (see :func:`pack_points`);
        ``corrupt`` truncates ``data`` behind the header.

        The truncated cloud still deserializes: only ``len(data) != row_step * height`` (and a
        length that is not a whole number of points) gives it away, as with a real cut-off
        driver buffer.
        """
        data = points.view(np.uint8).reshape(-1)
        if corrupt:
            data = data[: max(len(data) // 2 - 1, 0)]
        fields = [
            self._t["sensor_msgs/msg/PointField"](name=n, offset=o, datatype=d, count=1)
            for n, o, d in _POINT_FIELDS
        ]
        msg = self._t[POINT_CLOUD](
            header=self._header(stamp_ns, frame_id, seq),
            height=1,
            width=len(points),
            fields=fields,
            is_bigendian=False,
            point_step=POINT_DTYPE.itemsize,
            row_step=POINT_DTYPE.itemsize * len(points),
            data=data,
            is_dense=True,
        )
        return bytes(self._serialize(msg, POINT_CLOUD))

    def compressed_image(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        rgb: np.ndarray,
        quality: int,
        seq: int = 0,
        corrupt: bool = False,
    ) -> bytes:
        """JPEG as image_transport writes it; see :meth:`jpeg_image`."""
        return self.jpeg_image(
            stamp_ns=stamp_ns,
            frame_id=frame_id,
            jpeg=encode_jpeg(rgb, quality=quality),
            seq=seq,
            corrupt=corrupt,
        )

    def jpeg_image(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        jpeg: bytes,
        seq: int = 0,
        corrupt: bool = False,
    ) -> bytes:
        """A CompressedImage of already encoded ``jpeg`` (see :func:`encode_jpeg`), so the
        encoding can run where the frame was rendered; ``corrupt`` cuts it before its EOI."""
        data = np.frombuffer(jpeg, dtype=np.uint8)
        if corrupt:
            data = data[: len(data) // 2]
        msg = self._t[COMPRESSED_IMAGE](
            header=self._header(stamp_ns, frame_id, seq),
            format="rgb8; jpeg compressed bgr8",
            data=data,
        )
        return bytes(self._serialize(msg, COMPRESSED_IMAGE))

    def raw_image(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        rgb: np.ndarray,
        seq: int = 0,
        corrupt: bool = False,
    ) -> bytes:
        """``rgb8`` pixels; ``corrupt`` leaves ``len(data) != step * height``."""
        height, width = rgb.shape[:2]
        data = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1)
        if corrupt:
            data = data[: len(data) // 2]
        msg = self._t[IMAGE](
            header=self._header(stamp_ns, frame_id, seq),
            height=height,
            width=width,
            encoding="rgb8",
            is_bigendian=0,
            step=3 * width,
            data=data,
        )
        return bytes(self._serialize(msg, IMAGE))

    def camera_info(
        self,
        *,
        stamp_ns: int,
        frame_id: str,
        width: int,
        height: int,
        k: np.ndarray,
        d: Sequence[float] | np.ndarray,
        seq: int = 0,
    ) -> bytes:
        """plumb_bob model, R = I (monocular), P = [K | 0]."""
        kmat = np.asarray(k, dtype=np.float64).reshape(3, 3)
        p = np.zeros((3, 4))
        p[:, :3] = kmat
        arrays = {
            "d": np.asarray(d, dtype=np.float64),
            "k": kmat.reshape(9).copy(),
            "r": self._identity9.copy(),
            "p": p.reshape(12),
        }
        if self.ros1:
            arrays = {key.upper(): value for key, value in arrays.items()}
        roi = self._t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        msg = self._t[CAMERA_INFO](
            header=self._header(stamp_ns, frame_id, seq),
            height=height,
            width=width,
            distortion_model="plumb_bob",
            binning_x=0,
            binning_y=0,
            roi=roi,
            **arrays,
        )
        return bytes(self._serialize(msg, CAMERA_INFO))

    def tf(self, transforms: Sequence[tuple[str, str, np.ndarray]], *, stamp_ns: int) -> bytes:
        """A TFMessage of (parent, child, 4x4 parent_from_child) edges, all at ``stamp_ns``."""
        msg = self._t[TF](
            transforms=[
                self._transform(matrix, stamp_ns=stamp_ns, parent=parent, child=child)
                for parent, child, matrix in transforms
            ]
        )
        return bytes(self._serialize(msg, TF))

    def odometry(
        self,
        *,
        stamp_ns: int,
        pose: np.ndarray,
        linear_velocity: np.ndarray,
        angular_velocity: np.ndarray,
        frame_id: str = "odom",
        child_frame_id: str = "base_link",
        seq: int = 0,
    ) -> bytes:
        """Pose in ``frame_id``, twist in ``child_frame_id`` (REP 105)."""
        t = self._t
        pose_cov = np.diag([0.01, 0.01, 0.01, 0.001, 0.001, 0.001]).reshape(36)
        twist_cov = np.diag([0.001] * 6).reshape(36)
        twist = t["geometry_msgs/msg/Twist"](
            linear=self._vector(linear_velocity), angular=self._vector(angular_velocity)
        )
        msg = t[ODOMETRY](
            header=self._header(stamp_ns, frame_id, seq),
            child_frame_id=child_frame_id,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](
                pose=self._pose(pose), covariance=pose_cov
            ),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=twist_cov),
        )
        return bytes(self._serialize(msg, ODOMETRY))

    def imu(
        self,
        *,
        stamp_ns: int,
        pose: np.ndarray,
        angular_velocity: np.ndarray,
        linear_acceleration: np.ndarray,
        frame_id: str = "base_link",
        seq: int = 0,
    ) -> bytes:
        """What an accelerometer measures: motion plus the reaction to gravity.

        ``linear_acceleration`` is the kinematic acceleration in the body frame; the specific
        force adds gravity's reaction (+9.81 m/s² along world up) rotated into the body, so a
        level, resting IMU reads (0, 0, +9.81).
        """
        rotation = pose[:3, :3]
        specific_force = np.asarray(linear_acceleration, dtype=np.float64) + rotation.T @ (
            0.0,
            0.0,
            _GRAVITY,
        )
        msg = self._t[IMU](
            header=self._header(stamp_ns, frame_id, seq),
            orientation=self._quaternion(rotation),
            orientation_covariance=np.diag([1e-4, 1e-4, 1e-3]).reshape(9),
            angular_velocity=self._vector(angular_velocity),
            angular_velocity_covariance=np.diag([1e-5] * 3).reshape(9),
            linear_acceleration=self._vector(specific_force),
            linear_acceleration_covariance=np.diag([1e-3] * 3).reshape(9),
        )
        return bytes(self._serialize(msg, IMU))

    def detections(
        self,
        boxes: Sequence[BoxTruth],
        *,
        stamp_ns: int,
        frame_id: str,
        seq: int = 0,
    ) -> bytes:
        """Ground truth: class in ``results[0].hypothesis.class_id``, track id in ``id``."""
        t = self._t
        header = self._header(stamp_ns, frame_id, seq)
        zero_cov = np.zeros(36)
        detections = []
        for box in boxes:
            pose = self._pose(box.pose)
            hypothesis = t["vision_msgs/msg/ObjectHypothesisWithPose"](
                hypothesis=t["vision_msgs/msg/ObjectHypothesis"](class_id=box.cls, score=1.0),
                pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=zero_cov),
            )
            bbox = t["vision_msgs/msg/BoundingBox3D"](center=pose, size=self._vector(box.size))
            detections.append(
                t["vision_msgs/msg/Detection3D"](
                    header=header, results=[hypothesis], bbox=bbox, id=str(box.track_id)
                )
            )
        msg = t[DETECTIONS](header=header, detections=detections)
        return bytes(self._serialize(msg, DETECTIONS))
