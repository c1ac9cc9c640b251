"""Frozen sensors: a topic that keeps publishing while its content stopped changing.

A driver whose device hung often goes on republishing its last buffer with fresh stamps, so
rate and latency look perfect. Real sensor data is never bit-identical twice in a row (photon
noise, range noise, IMU noise), so a message whose payload *after the header* equals the one
before it on the same stream is a repeat, and a run of at least ``min_repeats`` repeats is a
freeze.

Event kind:

- ``freeze`` - warning: ``min_repeats`` or more consecutive messages identical to their
  predecessor apart from the header, from the first repeat to the last; error when the run
  lasts ``error_s`` or longer. Evidence: repeats, duration, the topic's period, and the message
  whose content is repeated (``original_t_ns``, its log time; ``original_stamp_ns``, its header
  stamp - when the sensor last saw something new) and the last repeat's stamp
  (``last_stamp_ns``).

This is the one analyzer that judges repeated content: the image and point cloud analyzers
leave it to this one, so a frozen sensor is reported once.

Only types where a repeat is abnormal are judged: dense point clouds (at least 1 KiB: sparse
radar target clouds are quantized and repeat on a static scene), laser scans, images (raw and
compressed) and IMU samples. A stream where most messages share their predecessor's stamp
publishes one measurement in several messages (one per radar track) and is not judged. Not
judged, on purpose: CameraInfo, TF and static TF (constant by nature), diagnostics, and
odometry - a parked robot's wheel odometry is exactly constant, which is correct, and
``nav_msgs/Odometry`` cannot tell a parked robot from a hung driver. Messages with the same
stamp as their predecessor are duplicates (:mod:`bagscope.analyzers.topic_health`) or parts,
not repeats: they neither count nor break a run.

Cost: the header is skipped by reading the frame id's length (no decoding); bodies of equal
length are compared first on three 32-byte windows (start, middle, end - the point data or
JPEG tail differ at once between real frames) and in full only when those agree.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bagscope.analyzers.findings import report_check, skip_check
from bagscope.analyzers.streams import (
    cadence,
    check_positive,
    since_start,
    stream_map,
)
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Event, StageResult
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Collection

    from bagscope.pipeline.stage import RunContext
    from bagscope.replay.message import Message

__all__ = ["FREEZE_TYPES", "Freeze"]

FREEZE_TYPES = frozenset(
    {
        "sensor_msgs/msg/PointCloud2",
        "sensor_msgs/msg/PointCloud",
        "sensor_msgs/msg/LaserScan",
        "sensor_msgs/msg/MultiEchoLaserScan",
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/Imu",
    }
)
# Sparse clouds (radar targets and tracks, a few points each) are quantized to range and
# azimuth bins and legitimately repeat on a static scene; only dense clouds are judged.
_CLOUD_TYPES = frozenset({"sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/PointCloud"})
_MIN_CLOUD_BYTES = 1024
# A stream where most messages share their predecessor's stamp publishes one measurement in
# parts (one message per radar target): consecutive messages are not successive measurements.
_MULTIPART_SHARE = 0.5
_NS = 1_000_000_000
_WINDOW = 32
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
# header.stamp: ROS1 time is (uint32 secs, uint32 nsecs), ROS2 builtin_interfaces/Time is
# (int32 sec, uint32 nanosec) in the encapsulation's byte order
_STAMP_ROS1 = struct.Struct("<II")
_STAMP_CDR = {True: struct.Struct("<iI"), False: struct.Struct(">iI")}


def body_offset(data: bytes | memoryview, *, ros1: bool) -> int:
    """Where the payload after ``header`` starts: seq or encapsulation (4 bytes), the stamp (8),
    the frame id's length (4) and its bytes - the same offsets in ROS1 and CDR. Padding to the
    next field's alignment is left in: it is written the same way every time."""
    little = True if ros1 else bool(data[1] & 1)
    return 16 + int(_U32[little].unpack_from(data, 12)[0])


def header_stamp_ns(data: bytes | memoryview, *, ros1: bool, stamp: bytes | None = None) -> int:
    """The header stamp in nanoseconds, read in place: bytes 4 to 12 (after seq or the
    encapsulation) in ROS1 and CDR alike; ``stamp``, when given, is such 8 bytes cut from
    another message of ``data``'s stream (``data`` then only tells the byte order)."""
    layout = _STAMP_ROS1 if ros1 else _STAMP_CDR[bool(data[1] & 1)]
    sec, nsec = layout.unpack_from(data, 4) if stamp is None else layout.unpack(stamp)
    return int(sec) * _NS + int(nsec)


def same_body(a: bytes | memoryview, b: bytes | memoryview, offset: int) -> bool:
    """Whether two payloads of equal length agree from ``offset`` on, cheaply when not."""
    n = len(a)
    if offset >= n:
        return True
    for start in (offset, (offset + n) // 2, max(offset, n - _WINDOW)):
        if a[start : start + _WINDOW] != b[start : start + _WINDOW]:
            return False
    return bool(
        np.array_equal(
            np.frombuffer(a, dtype=np.uint8, offset=offset),
            np.frombuffer(b, dtype=np.uint8, offset=offset),
        )
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """A closed run of repeats: log times of its first and last repeat, how many, and the
    message whose content they repeat."""

    first: int
    last: int
    repeats: int
    original_t_ns: int
    original_stamp_ns: int
    last_stamp_ns: int


@dataclass(slots=True)
class _Stream:
    """One publisher: its previous payload, the open run of repeats, and closed runs."""

    topic: str
    ros1: bool
    min_size: int = 16
    prev: bytes | memoryview | None = None  # the last new content (a run's original)
    prev_stamp: bytes = b""  # the last stamp seen: prev's, or the open run's last repeat's
    prev_log: int = 0  # prev's log time
    run: int = 0  # repeats so far in the open run
    run_first: int = 0  # log time of the open run's first repeat
    run_last: int = 0
    count: int = 0
    repeats: int = 0
    same_stamp: int = 0
    small: int = 0  # sparse clouds, not compared
    log: array[int] = field(default_factory=lambda: array("q"))
    runs: list[_Run] = field(default_factory=list)

    def close(self) -> None:
        """End the open run, if any (before ``prev`` moves on: it is the run's original)."""
        if self.run and self.prev is not None:
            self.runs.append(
                _Run(
                    first=self.run_first,
                    last=self.run_last,
                    repeats=self.run,
                    original_t_ns=self.prev_log,
                    original_stamp_ns=header_stamp_ns(self.prev, ros1=self.ros1),
                    last_stamp_ns=header_stamp_ns(self.prev, ros1=self.ros1, stamp=self.prev_stamp),
                )
            )
        self.run = 0


class Freeze:
    """Topics still publishing while their payload stopped changing."""

    def __init__(
        self,
        *,
        min_repeats: int = 3,
        error_s: float = 1.0,
        types: Collection[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(min_repeats, int) or min_repeats < 1:
            msg = f"parameter min_repeats must be an integer >= 1, got {min_repeats!r}"
            raise BagscopeError(msg)
        self.min_repeats = min_repeats
        self.error_ns = round(check_positive("error_s", error_s) * _NS)
        self.types = FREEZE_TYPES if types is None else frozenset(types)
        self.name = name or "freeze"
        self._streams: list[_Stream] = []
        self._by_conn: dict[int, _Stream] = {}
        self._origin_ns = 0

    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        types = context.topic_types
        topics = [t for t, msgtype in types.items() if msgtype in self.types]
        index, topics_of = stream_map(context.log, topics)
        ros1 = {
            t: any(c.serialization == "ros1" for c in context.log.connections([t])) for t in topics
        }
        self._streams = [
            _Stream(
                topic=t,
                ros1=ros1[t],
                min_size=_MIN_CLOUD_BYTES if types[t] in _CLOUD_TYPES else 16,
            )
            for t in topics_of
        ]
        self._by_conn = {cid: self._streams[i] for cid, i in index.items()}

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(dict.fromkeys(s.topic for s in self._streams))

    def on_message(self, msg: Message) -> None:
        stream = self._by_conn[msg.connection.id]
        data = msg.data
        t = msg.log_time_ns
        stream.count += 1
        stream.log.append(t)
        if len(data) < stream.min_size:
            stream.small += 1
            stream.close()
            stream.prev = None
            return
        stamp = bytes(data[4:12])
        prev = stream.prev
        if prev is None:
            stream.prev, stream.prev_stamp, stream.prev_log = data, stamp, t
            return
        if stamp == stream.prev_stamp:
            stream.same_stamp += 1
            return  # a duplicate or a part: no news about the content
        if len(prev) == len(data) and same_body(prev, data, body_offset(data, ros1=stream.ros1)):
            if not stream.run:
                stream.run_first = t
            stream.run += 1
            stream.run_last = t
            stream.repeats += 1
            stream.prev_stamp = stamp
            return
        stream.close()
        stream.prev, stream.prev_stamp, stream.prev_log = data, stamp, t

    def finish(self) -> StageResult:
        result = StageResult()
        by_topic: dict[str, list[_Stream]] = {}
        for stream in self._streams:
            stream.close()
            stream.prev = None  # release the reader's buffers
            by_topic.setdefault(stream.topic, []).append(stream)
        for topic, streams in by_topic.items():
            events = [e for s in streams for e in self._events(s)]
            repeats = sum(s.repeats for s in streams)
            count = sum(s.count for s in streams)
            longest = max((r.last - r.first for s in streams for r in s.runs), default=0)
            result.metrics.add("repeats", repeats, topic=topic)
            result.metrics.add("repeat_ratio", repeats / count if count else 0.0, topic=topic)
            result.metrics.add("longest_repeat_run_ms", longest / 1e6, topic=topic)
            parts = sum(s.same_stamp for s in streams)
            small = sum(s.small for s in streams)
            if count and small == count:
                result.checks.append(
                    skip_check(
                        "freeze",
                        topic,
                        f"{count} sparse (< {_MIN_CLOUD_BYTES} B)",
                        threshold="sparse clouds repeat on a static scene: not judged",
                    )
                )
                continue
            if count and parts >= _MULTIPART_SHARE * count:
                result.checks.append(
                    skip_check(
                        "freeze",
                        topic,
                        f"{parts} of {count} share a stamp",
                        threshold="one measurement in parts: not judged",
                    )
                )
                continue
            report_check(
                result,
                events,
                name="freeze",
                topic=topic,
                value=f"{repeats} repeated of {count}",
                threshold=f"runs < {self.min_repeats} repeats",
            )
        return result

    def _events(self, stream: _Stream) -> list[Event]:
        log = np.asarray(stream.log, dtype=np.int64)
        cad = cadence(log, None) if log.size > 1 else None
        period = cad.period_ns if cad is not None else 0
        events = []
        for run in stream.runs:
            first, last, repeats = run.first, run.last, run.repeats
            if repeats < self.min_repeats:
                continue
            # the frozen stretch runs from the message repeated to the last repeat
            span = last - first + period
            events.append(
                Event(
                    t_ns=first,
                    end_ns=last,
                    topic=stream.topic,
                    kind="freeze",
                    severity="error" if span >= self.error_ns else "warning",
                    message=(
                        f"{stream.topic}: content frozen for {format_duration(span)} from "
                        f"{since_start(first, self._origin_ns)} ({repeats} messages identical "
                        "to the one before, apart from the header)"
                    ),
                    evidence={
                        "repeats": repeats,
                        "frozen_ns": span,
                        "period_ns": period,
                        "min_repeats": self.min_repeats,
                        "error_ns": self.error_ns,
                        "original_t_ns": run.original_t_ns,
                        "original_stamp_ns": run.original_stamp_ns,
                        "last_stamp_ns": run.last_stamp_ns,
                    },
                )
            )
        return events
