"""``replay run --write-bag OUT``: the log's messages plus the stages' results, as one bag.

Results are only convincing next to the sensor data they came from, and Foxglove or RViz show
both at once when they share a bag and a clock. :class:`ResultsBag` is appended as the last
stage of a run and is both kinds of stage:

- a message stage over every topic of the log: each message is copied as it streams past,
  with its original log time and (for CDR logs) its exact bytes; ROS1 logs are converted to
  CDR byte-wise with rosbags (``ros1_to_cdr``), their ``std_msgs/Header`` losing ``seq``;
- a frame stage: per synced frame, every earlier stage output that is a
  :class:`~bagscope.replay.decode.boxes.Boxes` becomes ``/bagscope/<stage>/detections``
  (``vision_msgs/msg/Detection3DArray``) and ``/bagscope/<stage>/markers``
  (``visualization_msgs/msg/MarkerArray``: DELETEALL, then a CUBE and a TEXT_VIEW_FACING label
  per box), and every :class:`~bagscope.models.records.PointSet` becomes
  ``/bagscope/<stage>/points`` (``sensor_msgs/msg/PointCloud2``, x/y/z float32). Each is logged
  at the log time of the frame's reference message and stamped with the output's own stamp.

The bag is written into a hidden temporary sibling of ``OUT`` and renamed into place by
``finish()``; an interrupted run still finishes its stages, so it keeps a bag complete up to
where reading stopped. A run that fails calls :meth:`ResultsBag.abort`, which removes it all.
Output by name, as the simulator's: ``*.mcap`` one MCAP file, ``*.db3`` a rosbag2 directory
with sqlite3 storage, any other name a rosbag2 directory with MCAP storage; ROS1 ``*.bag``
output is refused.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, StageResult
from bagscope.replay.decode.boxes import Boxes, class_color
from bagscope.replay.msgdefs import DETECTIONS, register_vision_msgs

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from rosbags.interfaces import Connection as BagConnection
    from rosbags.rosbag2 import Writer
    from rosbags.typesys.store import Typestore

    from bagscope.pipeline.stage import RunContext
    from bagscope.replay.frame import Frame
    from bagscope.replay.message import Message
    from bagscope.replay.storage.base import Connection

__all__ = ["MARKERS", "POINTS", "ResultsBag", "ResultsBagError", "bag_format", "result_topic"]

MARKERS = "visualization_msgs/msg/MarkerArray"
POINTS = "sensor_msgs/msg/PointCloud2"
_HEADER = "std_msgs/msg/Header"
_LATCHED_TOPICS = frozenset({"/tf_static", "tf_static"})
# Marker.type / Marker.action (visualization_msgs)
CUBE, TEXT_VIEW_FACING = 1, 9
ADD, DELETEALL = 0, 3
_FLOAT32 = 7  # sensor_msgs/PointField datatype
_LABEL_HEIGHT_M = 0.6  # TEXT_VIEW_FACING scale.z: the text's height


class ResultsBagError(BagscopeError):
    """``--write-bag`` cannot write where it was asked to (one line, before any reading)."""


def bag_format(out: Path) -> str:
    """``mcap`` or ``db3``, from the name as :func:`bagscope.sim.writer.format_for_path` reads
    it (a bare name is an MCAP rosbag2 directory); ``*.bag`` is refused: results are CDR."""
    if out.suffix == ".bag":
        msg = f"--write-bag writes ROS2 bags; name it *.mcap (or *.db3), not {out.name!r}"
        raise ResultsBagError(msg)
    return "db3" if out.suffix == ".db3" else "mcap"


def result_topic(stage: str, kind: str) -> str:
    """``/bagscope/<stage>/<kind>``, the stage name made a legal ROS topic token."""
    token = re.sub(r"[^A-Za-z0-9_]", "_", stage) or "_"
    if token[0].isdigit():
        token = f"_{token}"
    return f"/bagscope/{token}/{kind}"


def _check_out(out: Path, *, overwrite: bool) -> None:
    if out.name in {"", ".", ".."}:
        msg = f"--write-bag {str(out)!r} names a directory, not a bag; add a name such as out.mcap"
        raise ResultsBagError(msg)
    bag_format(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            msg = f"{out} already exists; give another --write-bag or --overwrite"
            raise ResultsBagError(msg)
        if out.is_dir() and not out.is_symlink() and not (out / "metadata.yaml").is_file():
            msg = f"{out} is a directory but not a rosbag2 bag; not replacing it"
            raise ResultsBagError(msg)


class _Outputs:
    """Builds the result messages (serialized CDR) from records, with a Humble typestore."""

    def __init__(self) -> None:
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        register_vision_msgs(store)
        self.store = store
        t = store.types
        self._t = t
        self._zero_cov = np.zeros(36, dtype=np.float64)
        self._lifetime = t["builtin_interfaces/msg/Duration"](sec=0, nanosec=0)
        empty = np.zeros(0, dtype=np.uint8)
        self._texture = t["sensor_msgs/msg/CompressedImage"](
            header=self.header(0, ""), format="", data=empty
        )
        self._mesh = t["visualization_msgs/msg/MeshFile"](filename="", data=empty)
        self._fields = [
            t["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=_FLOAT32, count=1)
            for i, n in enumerate("xyz")
        ]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        stamp = self._t["builtin_interfaces/msg/Time"](
            sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000
        )
        return self._t[_HEADER](stamp=stamp, frame_id=frame_id)

    def _pose(self, center: Any, yaw: float) -> Any:
        t = self._t
        x, y, z = (float(v) for v in center)
        return t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=x, y=y, z=z),
            orientation=t["geometry_msgs/msg/Quaternion"](
                x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)
            ),
        )

    def _vector(self, values: Any) -> Any:
        x, y, z = (float(v) for v in values)
        return self._t["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)

    def detections(self, boxes: Boxes) -> bytes:
        t = self._t
        header = self.header(boxes.stamp_ns, boxes.frame_id)
        detections = []
        for i in range(len(boxes)):
            pose = self._pose(boxes.centers[i], float(boxes.yaws[i]))
            hypothesis = t["vision_msgs/msg/ObjectHypothesisWithPose"](
                hypothesis=t["vision_msgs/msg/ObjectHypothesis"](
                    class_id=boxes.labels[i], score=float(boxes.scores[i])
                ),
                pose=t["geometry_msgs/msg/PoseWithCovariance"](
                    pose=pose, covariance=self._zero_cov
                ),
            )
            detections.append(
                t["vision_msgs/msg/Detection3D"](
                    header=header,
                    results=[hypothesis],
                    bbox=t["vision_msgs/msg/BoundingBox3D"](
                        center=pose, size=self._vector(boxes.sizes[i])
                    ),
                    id=boxes.ids[i],
                )
            )
        msg = t[DETECTIONS](header=header, detections=detections)
        return bytes(self.store.serialize_cdr(msg, DETECTIONS))

    def _marker(self, header: Any, **fields: Any) -> Any:
        t = self._t
        base: dict[str, Any] = {
            "ns": "",
            "id": 0,
            "type": CUBE,
            "action": ADD,
            "pose": self._pose((0.0, 0.0, 0.0), 0.0),
            "scale": self._vector((1.0, 1.0, 1.0)),
            "color": t["std_msgs/msg/ColorRGBA"](r=0.0, g=0.0, b=0.0, a=0.0),
            "lifetime": self._lifetime,
            "frame_locked": False,
            "points": [],
            "colors": [],
            "texture_resource": "",
            "texture": self._texture,
            "uv_coordinates": [],
            "text": "",
            "mesh_resource": "",
            "mesh_file": self._mesh,
            "mesh_use_embedded_materials": False,
        }
        base.update(fields)
        return t["visualization_msgs/msg/Marker"](header=header, **base)

    def markers(self, boxes: Boxes, *, ns: str) -> bytes:
        """DELETEALL (stale boxes of the last frame vanish), then per box a CUBE
        (``<ns>/boxes``, id i) and a label above it (``<ns>/labels``, id i)."""
        t = self._t
        header = self.header(boxes.stamp_ns, boxes.frame_id)
        markers = [self._marker(header, action=DELETEALL)]
        cubes, labels = [], []
        for i in range(len(boxes)):
            r, g, b = class_color(boxes.labels[i])
            center = boxes.centers[i]
            yaw = float(boxes.yaws[i])
            cubes.append(
                self._marker(
                    header,
                    ns=f"{ns}/boxes",
                    id=i,
                    type=CUBE,
                    pose=self._pose(center, yaw),
                    scale=self._vector(boxes.sizes[i]),
                    color=t["std_msgs/msg/ColorRGBA"](r=r, g=g, b=b, a=0.5),
                )
            )
            above = (center[0], center[1], center[2] + boxes.sizes[i][2] / 2 + _LABEL_HEIGHT_M)
            labels.append(
                self._marker(
                    header,
                    ns=f"{ns}/labels",
                    id=i,
                    type=TEXT_VIEW_FACING,
                    pose=self._pose(above, 0.0),
                    scale=self._vector((0.0, 0.0, _LABEL_HEIGHT_M)),
                    color=t["std_msgs/msg/ColorRGBA"](r=1.0, g=1.0, b=1.0, a=1.0),
                    text=box_label(boxes, i),
                )
            )
        msg = t[MARKERS](markers=[*markers, *cubes, *labels])
        return bytes(self.store.serialize_cdr(msg, MARKERS))

    def points(self, xyz: Any, *, stamp_ns: int, frame_id: str) -> bytes:
        data = np.ascontiguousarray(xyz, dtype="<f4").reshape(-1, 3)
        n = len(data)
        msg = self._t[POINTS](
            header=self.header(stamp_ns, frame_id),
            height=1,
            width=n,
            fields=self._fields,
            is_bigendian=False,
            point_step=12,
            row_step=12 * n,
            data=data.view(np.uint8).reshape(-1),
            is_dense=bool(np.isfinite(data).all()),
        )
        return bytes(self.store.serialize_cdr(msg, POINTS))


def box_label(boxes: Boxes, i: int) -> str:
    """``"class id score"`` (the id left out when the box has none), e.g. ``car 7 0.93``."""
    parts = [boxes.labels[i] or "?", boxes.ids[i], f"{float(boxes.scores[i]):.2f}"]
    return " ".join(p for p in parts if p)


class ResultsBag:
    """Copy the log and write the stages' Boxes and PointSets beside it (see the module doc).

    ``out`` the bag to write; ``overwrite`` replaces an existing bag (never a directory that
    is not one, nor an input log); ``reorder_window_s`` how long (log time) messages wait in
    memory so results of a frame, which the sync policy emits a little after its reference
    message was read, still land in log-time order.
    """

    def __init__(
        self,
        *,
        out: str | Path,
        overwrite: bool = False,
        reorder_window_s: float = 2.0,
        name: str | None = None,
    ) -> None:
        self.name = name or "write_bag"
        self.out = Path(out)
        if not (isinstance(reorder_window_s, int | float) and 0 <= reorder_window_s <= 600):
            msg = f"reorder_window_s must be seconds in [0, 600], got {reorder_window_s!r}"
            raise BagscopeError(msg)
        _check_out(self.out, overwrite=overwrite)
        self.overwrite = overwrite
        self.fmt = bag_format(self.out)
        self._window_ns = int(reorder_window_s * 1e9)
        self._topics: tuple[str, ...] = ()
        self._reference: str | None = None
        self._tmpdir: Path | None = None
        self._inner: Path | None = None
        self._writer: Writer | None = None
        self._heap: list[tuple[int, int, str, bytes]] = []
        self._seq = 0
        self._latest_ns = -1
        self._last_written_ns = -1
        self._late = 0
        self._copied = 0
        self._converted = 0
        self._results: dict[str, int] = {}
        self._bag_connections: dict[str, BagConnection] = {}
        self._converters: dict[int, tuple[str, Callable[[Any], bytes]]] = {}
        self._source_stores: dict[tuple[str, str], Typestore] = {}
        self._outputs: _Outputs | None = None
        self._committed = False

    # -- stage protocol ------------------------------------------------------------------------

    @property
    def message_topics(self) -> Collection[str]:
        return self._topics

    def setup(self, context: RunContext) -> None:
        """Check the output, map every connection of the log to a CDR one, open the bag."""
        inputs = [p.resolve() for p in context.info.paths]
        target = self.out.resolve()
        for path in inputs:
            if target == path or target in path.parents:
                msg = f"--write-bag {self.out} would replace the log being read"
                raise ResultsBagError(msg)
        _check_out(self.out, overwrite=self.overwrite)
        self._topics = tuple(t.name for t in context.info.topics)
        self._reference = context.sync_topics[0] if context.sync_topics else None
        self._outputs = _Outputs()
        plan = [self._plan(conn, context) for conn in context.log.connections()]
        self._open()
        for conn, (msgtype, store, _) in zip(context.log.connections(), plan, strict=True):
            self._connect(conn.topic, msgtype, store)
        for conn, (msgtype, _, convert) in zip(context.log.connections(), plan, strict=True):
            self._converters[conn.id] = (self._key(conn.topic, msgtype), convert)

    def on_message(self, msg: Message) -> None:
        key, convert = self._converters[msg.connection.id]
        self._push(key, msg.log_time_ns, convert(msg.data))
        self._copied += 1
        if msg.log_time_ns > self._latest_ns:
            self._latest_ns = msg.log_time_ns
            self._flush(self._latest_ns - self._window_ns)

    def process(self, frame: Frame) -> None:
        from bagscope.models.records import PointSet

        outputs = self._outputs
        assert outputs is not None, "setup() was not called"
        log_ns = self._frame_log_time(frame)
        for stage, value in frame.outputs.items():
            if stage == self.name:
                continue
            if isinstance(value, Boxes):
                topic = result_topic(stage, "detections")
                self._result(topic, DETECTIONS, log_ns=log_ns, payload=outputs.detections(value))
                topic = result_topic(stage, "markers")
                self._result(
                    topic, MARKERS, log_ns=log_ns, payload=outputs.markers(value, ns=stage)
                )
            elif isinstance(value, PointSet):
                payload = outputs.points(
                    value.xyz, stamp_ns=value.stamp_ns, frame_id=value.frame_id
                )
                self._result(result_topic(stage, "points"), POINTS, log_ns=log_ns, payload=payload)

    def finish(self) -> StageResult:
        """Write what is queued, close and rename into place (also after Ctrl-C: the bag then
        holds everything read up to there)."""
        result = StageResult()
        if self._writer is None:  # setup never ran (or failed): nothing to place
            self.abort()
            return result
        try:
            self._flush(None)
            self._writer.close()
            self._writer = None
            self._commit()
        except BaseException:
            self.abort()
            raise
        m = result.metrics
        m.add("bag_messages_copied", self._copied)
        m.add("bag_messages_converted_from_ros1", self._converted)
        m.add("bag_messages_late", self._late)
        for topic, count in sorted(self._results.items()):
            m.add("bag_results_written", count, topic=topic)
        written = sum(self._results.values())
        result.checks.append(
            Check(
                name="results bag",
                topic=None,
                status="pass",
                value=f"{self._copied} log + {written} result messages -> {self.out}",
                threshold="written",
            )
        )
        return result

    def abort(self) -> None:
        """Drop the bag being written (the run failed); harmless once it was placed."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the temp dir goes anyway
                writer.abort()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- connections ---------------------------------------------------------------------------

    @staticmethod
    def _key(topic: str, msgtype: str) -> str:
        return f"{topic}\0{msgtype}"

    def _plan(
        self, conn: Connection, context: RunContext
    ) -> tuple[str, Typestore, Callable[[Any], bytes]]:
        """(output msgtype, store defining it, payload converter) for one log connection."""
        types = context.log.types
        store = types.store_for(conn.msgtype, conn.serialization)
        if store is None:
            msg = (
                f"--write-bag: no definition of {conn.msgtype!r} ({conn.topic}) in the log or "
                "the typestore; pass --msg-path DIR with its .msg files"
            )
            raise ResultsBagError(msg)
        if conn.serialization == "cdr":
            return conn.msgtype, store, bytes
        from rosbags.convert.converter import STATIC_MSGTYPE_RENAMES

        ros2 = self._ros2_store(store)
        msgtype = STATIC_MSGTYPE_RENAMES.get(conn.msgtype, conn.msgtype)
        source_type = conn.msgtype

        def convert(data: Any) -> bytes:
            self._converted += 1
            return bytes(ros2.ros1_to_cdr(data, source_type))

        if msgtype != source_type and msgtype not in ros2.fielddefs:  # tf/tfMessage, renamed
            ros2.register({msgtype: ros2.fielddefs[source_type]})
        return msgtype, ros2, convert

    def _ros2_store(self, ros1: Typestore) -> Typestore:
        """The log's ROS1 definitions with ROS2's header, built once per source store."""
        key = (str(id(ros1)), "ros1")
        store = self._source_stores.get(key)
        if store is None:
            from bagscope.replay.types import ros2_store_for_ros1

            store = self._source_stores[key] = ros2_store_for_ros1(ros1)
        return store

    def _connect(self, topic: str, msgtype: str, store: Typestore) -> None:
        from rosbags.interfaces import (
            Qos,
            QosDurability,
            QosHistory,
            QosLiveliness,
            QosReliability,
            QosTime,
        )

        key = self._key(topic, msgtype)
        if key in self._bag_connections:
            return
        assert self._writer is not None
        qos = []
        if topic in _LATCHED_TOPICS:  # static TF must reach late subscribers on replay
            zero = QosTime(0, 0)
            qos = [
                Qos(
                    QosHistory.KEEP_LAST,
                    1,
                    QosReliability.RELIABLE,
                    QosDurability.TRANSIENT_LOCAL,
                    zero,
                    zero,
                    QosLiveliness.AUTOMATIC,
                    zero,
                    avoid_ros_namespace_conventions=False,
                )
            ]
        self._bag_connections[key] = self._writer.add_connection(
            topic, msgtype, typestore=store, offered_qos_profiles=qos
        )

    # -- writing -------------------------------------------------------------------------------

    def _open(self) -> None:
        from rosbags.rosbag2 import StoragePlugin
        from rosbags.rosbag2 import Writer as Writer2

        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        try:
            if self.fmt == "db3":
                bag_dir = self._inner = self._tmpdir / self.out.stem
            elif self.out.suffix == ".mcap":
                bag_dir = self._tmpdir / self.out.stem
                self._inner = bag_dir / f"{self.out.stem}.mcap"
            else:
                bag_dir = self._inner = self._tmpdir / self.out.name
            plugin = StoragePlugin.SQLITE3 if self.fmt == "db3" else StoragePlugin.MCAP
            writer = Writer2(bag_dir, version=Writer2.VERSION_LATEST, storage_plugin=plugin)
            writer.open()
            self._writer = writer
        except BaseException:
            self.abort()
            raise

    def _frame_log_time(self, frame: Frame) -> int:
        """The log time of the frame's reference message (the first synced topic's)."""
        ref = frame.messages.get(self._reference) if self._reference else None
        if ref is None and frame.messages:
            ref = min(frame.messages.values(), key=lambda m: m.log_time_ns)
        return ref.log_time_ns if ref is not None else frame.t_ns

    def _result(self, topic: str, msgtype: str, *, log_ns: int, payload: bytes) -> None:
        assert self._outputs is not None
        self._connect(topic, msgtype, self._outputs.store)
        self._push(self._key(topic, msgtype), log_ns, payload)
        self._results[topic] = self._results.get(topic, 0) + 1

    def _push(self, key: str, log_ns: int, payload: bytes) -> None:
        heapq.heappush(self._heap, (log_ns, self._seq, key, payload))
        self._seq += 1

    def _flush(self, watermark_ns: int | None) -> None:
        heap, writer = self._heap, self._writer
        assert writer is not None
        while heap and (watermark_ns is None or heap[0][0] < watermark_ns):
            log_ns, _, key, payload = heapq.heappop(heap)
            if log_ns < self._last_written_ns:
                self._late += 1  # still written: MCAP and rosbag2 readers sort by log time
            else:
                self._last_written_ns = log_ns
            writer.write(self._bag_connections[key], log_ns, payload)

    def _commit(self) -> None:
        tmpdir, inner, out = self._tmpdir, self._inner, self.out
        assert tmpdir is not None
        assert inner is not None
        if (out.exists() or out.is_symlink()) and not self.overwrite:
            msg = f"{out} appeared while the run was going; not overwriting it"
            raise ResultsBagError(msg)
        mask = os.umask(0o022)
        os.umask(mask)
        for item in [inner, *inner.rglob("*")] if inner.is_dir() else [inner]:
            item.chmod((0o777 if item.is_dir() else 0o666) & ~mask)
        if out.is_dir() and not out.is_symlink():  # rename cannot replace a directory
            os.replace(out, tmpdir / ".replaced")
        elif inner.is_dir() and (out.exists() or out.is_symlink()):
            out.unlink()
        os.replace(inner, out)
        self._committed = True
        shutil.rmtree(tmpdir, ignore_errors=True)
        self._tmpdir = None
