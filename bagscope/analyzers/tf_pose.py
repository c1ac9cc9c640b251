"""Whether the robot knew where it and its sensors were: TF coverage, freshness and pose jumps.

Every fused frame needs a chain of transforms from each sensor into a common frame at the
frame's time; every motion-compensated sweep needs the ego pose to move smoothly. Three things
go wrong in real logs: a dynamic TF edge goes quiet (a node stalls), a sensor's frame has no
transform at frame time (a missing ``tf_static``, a TF that starts late), and the pose leaps (a
relocalisation, an odometry reset, a glitch). This stage reads every dynamic TF message and
every nav_msgs/Odometry message (message stage) and, when the run makes frames, checks each
synced sensor's frame against the log's TF at each frame's time (frame stage).

Gaps and ages are judged against each edge's own rhythm (its median sample period), and only on
edges that keep one (most intervals within ±25 % of the median, 10 samples or more): irregular
TF (event-driven, one-shot) is reported but not judged. A sample stamped 0 is tf2's "latest",
not a time, and is ignored. Transforms are keyed by parent and child frame with tf1's leading
slash dropped, as :mod:`bagscope.replay.tf` does.

A pose jump is a step between consecutive samples (sorted by stamp) longer than the motion
allows: ``jump_factor`` x the speed x dt + ``max_accel`` x dt² / 2 + ``min_jump_m``, where dt
is the step's duration (at least the median one: stamps jitter, positions do not) and the speed
is the larger of the odometry's twist (when there is one) and the median speed of the
neighbouring steps (so one leap does not excuse itself).

Event kinds:

- ``tf_gap``: a dynamic edge had no sample for longer than ``gap_factor`` x its median period
  (warning; info for an edge whose transform never changes, which holds at all times anyway).
- ``tf_missing``: frames with a sensor whose frame cannot be looked up in the common frame at
  the stamp of the sensor's message (unknown frame, separate trees, a dynamic edge not covering
  the time) (warning).
- ``tf_stale``: frames for which the latest sample of a dynamic edge on a sensor's path was
  older than ``max_age_ns`` (default ``stale_factor`` x the edge's median period) at the
  sensor's stamp (warning); judged between the edge's first and last sample only.
- ``pose_jump``: an odometry topic or a dynamic TF edge moved farther between two samples than
  the motion allows (error).

The common frame is ``target_frame`` when given, else ``odom`` when the TF has it, else the
root of ``base_link``'s tree, else the root of the first sensor's tree.
"""

from __future__ import annotations

import itertools
import math
import struct
from array import array
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from bagscope.analyzers.findings import report_check, runs, skip_check
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, status_of
from bagscope.replay.errors import DecodeError, TransformError
from bagscope.replay.tf import TF_TYPES, is_static_tf_topic
from bagscope.replay.timeparse import format_duration, format_seconds

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import RunContext, Severity
    from bagscope.replay.decode import OdometrySample
    from bagscope.replay.frame import Frame
    from bagscope.replay.message import Message
    from bagscope.replay.tf import TransformBuffer

__all__ = ["TfPose"]

ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
_MIN_SAMPLES = 10  # samples an edge needs before its own median period is a rhythm
_PERIODIC_SHARE = 0.5
_PERIODIC_TOLERANCE = 0.25
_SPEED_WINDOW = 11  # steps in the rolling median speed (odd)
_SAME_JUMP_NS = 500_000_000  # jumps of two sources this close are one jump seen twice
_U32_LE = struct.Struct("<I")
_U32_BE = struct.Struct(">I")
_STAMP_LEN = struct.Struct("<iII")  # CDR header: stamp sec, nanosec, frame_id length
_SEQ_STAMP_LEN = struct.Struct("<IIII")  # ROS1 header: seq, stamp sec, nsec, frame_id length
_XYZ = struct.Struct("<3d")
_BASE = 4  # CDR alignment counts from the end of the encapsulation header
# From pose.pose.position to twist.twist.linear: position, orientation, 36 covariances (f64).
_TWIST_OFFSET = (3 + 4 + 36) * 8


def _normalise(frame: str) -> str:
    return frame[1:] if frame.startswith("/") else frame


class _TruncatedError(Exception):
    """A length field points past the end of the payload."""


def _aligned(pos: int, size: int, base: int) -> int:
    return pos + (-(pos - base) % size)


def _text(data: bytes | memoryview, pos: int, size: int, *, nul: bool) -> str:
    end = pos + size
    if end > len(data) or (nul and size == 0):
        raise _TruncatedError
    return bytes(data[pos : end - 1 if nul else end]).decode()


def _little_endian_cdr(data: bytes | memoryview, serialization: str) -> bool:
    return serialization == "cdr" and len(data) >= 4 and data[0] == 0 and data[1] in (1, 3)


def parse_tf(
    data: bytes | memoryview, serialization: str
) -> list[tuple[str, str, int, float, float, float]] | None:
    """``(parent, child, stamp_ns, x, y, z)`` of every transform of a TFMessage / tfMessage,
    straight from ROS1 or little-endian CDR bytes; None when it cannot tell (then decode).

    TF is the busiest small message of a log (50+ Hz, often many transforms each); rosbags'
    generic deserializer builds a dozen objects per transform, this reads six values.
    """
    try:
        if serialization == "ros1":
            return _tf_ros1(data)
        if _little_endian_cdr(data, serialization):
            return _tf_cdr(data)
    except (struct.error, UnicodeDecodeError, _TruncatedError):
        return None
    return None


def _tf_ros1(data: bytes | memoryview) -> list[tuple[str, str, int, float, float, float]]:
    (count,) = _U32_LE.unpack_from(data, 0)
    pos, out = 4, []
    for _ in range(count):
        _, sec, nsec, size = _SEQ_STAMP_LEN.unpack_from(data, pos)
        parent = _text(data, pos + 16, size, nul=False)
        pos += 16 + size
        (size,) = _U32_LE.unpack_from(data, pos)
        child = _text(data, pos + 4, size, nul=False)
        pos += 4 + size
        x, y, z = _XYZ.unpack_from(data, pos)
        pos += 56
        out.append((parent, child, sec * 1_000_000_000 + nsec, x, y, z))
    if pos > len(data):
        raise _TruncatedError
    return out


def _tf_cdr(data: bytes | memoryview) -> list[tuple[str, str, int, float, float, float]]:
    (count,) = _U32_LE.unpack_from(data, _BASE)
    pos, out = _BASE + 4, []
    for _ in range(count):
        pos = _aligned(pos, 4, _BASE)
        sec, nsec, size = _STAMP_LEN.unpack_from(data, pos)
        parent = _text(data, pos + 12, size, nul=True)
        pos = _aligned(pos + 12 + size, 4, _BASE)
        (size,) = _U32_LE.unpack_from(data, pos)
        child = _text(data, pos + 4, size, nul=True)
        pos = _aligned(pos + 4 + size, 8, _BASE)
        x, y, z = _XYZ.unpack_from(data, pos)
        pos += 56
        out.append((parent, child, sec * 1_000_000_000 + nsec, x, y, z))
    if pos > len(data):
        raise _TruncatedError
    return out


def parse_odometry(
    data: bytes | memoryview, serialization: str
) -> tuple[int, tuple[float, float, float], tuple[float, float, float]] | None:
    """``(stamp_ns, position, twist linear)`` of a nav_msgs/Odometry from ROS1 or
    little-endian CDR bytes; None when it cannot tell (then decode)."""
    try:
        if serialization == "ros1":
            _, sec, nsec, size = _SEQ_STAMP_LEN.unpack_from(data, 0)
            pos = 16 + size
            (size,) = _U32_LE.unpack_from(data, pos)
            pos += 4 + size
        elif _little_endian_cdr(data, serialization):
            sec, nsec, size = _STAMP_LEN.unpack_from(data, _BASE)
            pos = _aligned(_BASE + 12 + size, 4, _BASE)
            (size,) = _U32_LE.unpack_from(data, pos)
            pos = _aligned(pos + 4 + size, 8, _BASE)
        else:
            return None
        position = _XYZ.unpack_from(data, pos)
        linear = _XYZ.unpack_from(data, pos + _TWIST_OFFSET)
    except struct.error:
        return None
    return sec * 1_000_000_000 + nsec, position, linear


def _decoded_tf(msg: Message) -> list[tuple[str, str, int, float, float, float]]:
    """The slow path (big-endian CDR, anything the byte parser refuses): rosbags' object."""
    try:
        transforms = msg.payload.transforms  # type: ignore[attr-defined]
        out = []
        for ts in transforms:
            stamp, tr = ts.header.stamp, ts.transform.translation
            out.append(
                (
                    str(ts.header.frame_id),
                    str(ts.child_frame_id),
                    int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
                    float(tr.x),
                    float(tr.y),
                    float(tr.z),
                )
            )
    except Exception:
        return []
    return out


def header_frame_id(data: bytes | memoryview, serialization: str) -> str:
    """``header.frame_id`` straight from a payload whose type starts with a Header.

    After the stamp (bytes 4..12 in both encodings, see
    :func:`~bagscope.replay.storage.stamps.header_stamp_ns`) comes the string: a uint32
    length, then the characters (CDR counts and stores a trailing NUL, ROS1 does not).
    """
    if serialization == "ros1":
        (size,) = _U32_LE.unpack_from(data, 12)
        raw = bytes(data[16 : 16 + size])
    else:
        (size,) = (_U32_LE if data[1] & 1 else _U32_BE).unpack_from(data, 12)
        raw = bytes(data[16 : 16 + size]).rstrip(b"\x00")
    if len(raw) < size - 1:
        msg = f"payload of {len(data)} bytes is too short for its {size}-byte frame id"
        raise DecodeError(msg)
    return raw.decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Track:
    """Samples of one moving thing: a dynamic TF edge or an odometry topic."""

    topic: str
    label: str  # "odom -> base_link" or the odometry topic
    stamps: array[int] = field(default_factory=lambda: array("q"))
    times: array[int] = field(default_factory=lambda: array("q"))  # log times
    x: array[float] = field(default_factory=lambda: array("d"))
    y: array[float] = field(default_factory=lambda: array("d"))
    z: array[float] = field(default_factory=lambda: array("d"))
    speed: array[float] = field(default_factory=lambda: array("d"))  # odometry twist, m/s

    def sorted(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """Stamps (unique, ascending, zero stamps left out), log times and (N, 3) positions."""
        stamps = np.frombuffer(self.stamps, dtype=np.int64)
        times = np.frombuffer(self.times, dtype=np.int64)
        xyz = np.column_stack(
            [np.frombuffer(c, dtype=np.float64) for c in (self.x, self.y, self.z)]
        ).reshape(-1, 3)
        keep = stamps != 0
        stamps, times, xyz = stamps[keep], times[keep], xyz[keep]
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        first = np.ones(stamps.size, dtype=bool)
        first[1:] = stamps[1:] != stamps[:-1]
        return stamps[first], times[order][first], xyz[order][first]

    def speeds(self) -> NDArray[np.float64]:
        """The twist speed per sample, in the order of :meth:`sorted` (empty without twist)."""
        if not self.speed:
            return np.empty(0)
        stamps = np.frombuffer(self.stamps, dtype=np.int64)
        speed = np.frombuffer(self.speed, dtype=np.float64)
        keep = stamps != 0
        stamps, speed = stamps[keep], speed[keep]
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        first = np.ones(stamps.size, dtype=bool)
        first[1:] = stamps[1:] != stamps[:-1]
        out: NDArray[np.float64] = speed[order][first]
        return out


@dataclass(slots=True)
class _Rhythm:
    """An edge's median sample period and whether it keeps it."""

    period_ns: int | None
    periodic: bool
    constant: bool


def _rhythm(stamps: NDArray[np.int64], xyz: NDArray[np.float64]) -> _Rhythm:
    constant = bool(xyz.shape[0] >= 2 and (xyz == xyz[0]).all())
    if stamps.size < _MIN_SAMPLES:
        return _Rhythm(None, periodic=False, constant=constant)
    intervals = np.diff(stamps)
    median = int(np.median(intervals))
    near = np.abs(intervals - median) <= _PERIODIC_TOLERANCE * median
    return _Rhythm(median, periodic=bool(near.mean() > _PERIODIC_SHARE), constant=constant)


class TfPose:
    """TF gaps, transforms missing or stale at frame time, and pose jumps."""

    uses_outputs = False  # reads a frame's sensors and TF only: time shards need not split it

    def __init__(
        self,
        *,
        gap_factor: float = 3.0,
        stale_factor: float = 3.0,
        max_age_ns: int | None = None,
        jump_factor: float = 2.0,
        max_accel: float = 10.0,
        min_jump_m: float = 0.5,
        target_frame: str | None = None,
        name: str | None = None,
    ) -> None:
        for key, value in (
            ("gap_factor", gap_factor),
            ("stale_factor", stale_factor),
            ("jump_factor", jump_factor),
        ):
            if not value > 1 or not math.isfinite(value):
                msg = f"{key} must be a finite number above 1, got {value}"
                raise BagscopeError(msg)
        if max_age_ns is not None and max_age_ns <= 0:
            msg = f"max_age_ns must be positive, got {max_age_ns}"
            raise BagscopeError(msg)
        if not max_accel >= 0 or not math.isfinite(max_accel):
            msg = f"max_accel must be a finite number >= 0 (m/s²), got {max_accel}"
            raise BagscopeError(msg)
        if not min_jump_m > 0 or not math.isfinite(min_jump_m):
            msg = f"min_jump_m must be a positive distance in metres, got {min_jump_m}"
            raise BagscopeError(msg)
        self.name = name or "tf"
        self.gap_factor = float(gap_factor)
        self.stale_factor = float(stale_factor)
        self.max_age_ns = max_age_ns
        self.jump_factor = float(jump_factor)
        self.max_accel = float(max_accel)
        self.min_jump_m = float(min_jump_m)
        self.target_frame = target_frame
        self._tf_topics: tuple[str, ...] = ()
        self._odom_topics: tuple[str, ...] = ()
        self._edges: dict[tuple[str, str, str], _Track] = {}  # (topic, parent, child)
        self._aliases: dict[tuple[str, str, str], _Track] = {}  # as spelled in the messages
        self._odometry: dict[str, _Track] = {}
        self._bad_odometry: dict[str, int] = {}
        self._frame_t: array[int] = array("q")
        self._frame_ids: dict[str, array[int]] = {}  # topic -> index into _id_names (-1: none)
        self._frame_stamps: dict[str, array[int]] = {}  # topic -> its message's synced stamp
        self._id_names: list[str] = []
        self._id_index: dict[str, int] = {}
        self._buffer: TransformBuffer | None = None
        self._frames_without_tf = 0
        self._origin_ns = 0

    # ------------------------------------------------------------------------------ reading

    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        tf_topics, odom_topics = [], []
        for info in context.info.topics:
            types = set(info.msgtype.split(" | "))
            if types & TF_TYPES and not is_static_tf_topic(info.name):
                tf_topics.append(info.name)
            if ODOMETRY_TYPE in types:
                odom_topics.append(info.name)
        self._tf_topics = tuple(tf_topics)
        self._odom_topics = tuple(odom_topics)
        self._odometry = {t: _Track(topic=t, label=t) for t in odom_topics}

    @property
    def message_topics(self) -> Collection[str]:
        return (*self._tf_topics, *self._odom_topics)

    def on_message(self, msg: Message) -> None:
        if msg.topic in self._odometry:
            self._on_odometry(msg)
            return
        transforms = parse_tf(msg.data, msg.connection.serialization)
        if transforms is None:
            transforms = _decoded_tf(msg)
        log_time = msg.log_time_ns
        aliases = self._aliases
        topic = msg.topic
        for parent, child, stamp, x, y, z in transforms:
            track = aliases.get((topic, parent, child))
            if track is None:
                track = self._track_for(topic, parent, child)
            track.stamps.append(stamp)
            track.times.append(log_time)
            track.x.append(x)
            track.y.append(y)
            track.z.append(z)

    def _track_for(self, topic: str, parent: str, child: str) -> _Track:
        """The edge's samples, keyed by frame names without tf1's leading slash."""
        p, c = _normalise(parent), _normalise(child)
        track = self._edges.get((topic, p, c))
        if track is None:
            track = self._edges[(topic, p, c)] = _Track(topic=topic, label=f"{p} -> {c}")
        self._aliases[(topic, parent, child)] = track
        return track

    def _on_odometry(self, msg: Message) -> None:
        parsed = parse_odometry(msg.data, msg.connection.serialization)
        if parsed is None:
            try:
                sample: OdometrySample = msg.decode()  # type: ignore[assignment]
            except DecodeError:
                self._bad_odometry[msg.topic] = self._bad_odometry.get(msg.topic, 0) + 1
                return
            position = tuple(float(v) for v in sample.position)
            linear = tuple(float(v) for v in sample.linear)
            parsed = (sample.stamp_ns, position, linear)  # type: ignore[assignment]
        assert parsed is not None
        stamp, (x, y, z), (vx, vy, vz) = parsed
        track = self._odometry[msg.topic]
        track.stamps.append(stamp)
        track.times.append(msg.log_time_ns)
        track.x.append(x)
        track.y.append(y)
        track.z.append(z)
        track.speed.append(math.sqrt(vx * vx + vy * vy + vz * vz))

    def process(self, frame: Frame) -> None:
        self._frame_t.append(frame.t_ns)
        if frame.tf is None:
            self._frames_without_tf += 1
        elif self._buffer is None:
            self._buffer = frame.tf.buffer
        n = len(self._frame_t) - 1
        for topic, msg in frame.messages.items():
            ids = self._frame_ids.get(topic)
            if ids is None:
                ids = self._frame_ids[topic] = array("i", [-1] * n)
                self._frame_stamps[topic] = array("q", [0] * n)
            ids.append(self._frame_id_index(msg))
            self._frame_stamps[topic].append(frame.stamps_ns.get(topic, frame.t_ns))

    def _frame_id_index(self, msg: Message) -> int:
        if msg.header_stamp_ns is None:
            return -1
        try:
            name = _normalise(header_frame_id(msg.data, msg.connection.serialization))
        except (DecodeError, struct.error):
            return -1
        index = self._id_index.get(name)
        if index is None:
            index = self._id_index[name] = len(self._id_names)
            self._id_names.append(name)
        return index

    # ------------------------------------------------------------------------------ results

    def finish(self) -> StageResult:
        result = StageResult()
        if not self._edges and not self._odometry and not self._frame_t:
            result.checks.append(
                skip_check("tf and pose", None, "no dynamic TF, odometry or frames in the log")
            )
            return result
        rhythms: dict[tuple[str, str, str], _Rhythm] = {}
        for key, track in self._edges.items():
            rhythms[key] = self._edge_gaps(result, track)
        jumps: list[Event] = []
        for track in [*self._odometry.values(), *self._edges.values()]:
            jumps.extend(self._jumps(result, track))
        result.events.extend(_cross_referenced(jumps))
        for topic, count in self._bad_odometry.items():
            result.metrics.add("undecodable", count, topic=topic)
        if self._frame_t:
            self._frames(result, rhythms)
        result.figures.append(self._figure(result.events))
        return result

    # -- gaps

    def _edge_gaps(self, result: StageResult, track: _Track) -> _Rhythm:
        stamps, times, xyz = track.sorted()
        rhythm = _rhythm(stamps, xyz)
        metrics = result.metrics
        metrics.add("samples", stamps.size, topic=track.topic, label=track.label)
        name = f"TF gaps: {track.label}"
        if rhythm.period_ns is None or not rhythm.periodic:
            why = (
                f"{stamps.size} samples: too few"
                if rhythm.period_ns is None
                else "irregular intervals"
            )
            result.checks.append(skip_check(name, track.topic, f"{why}: not judged"))
            return rhythm
        period = rhythm.period_ns
        intervals = np.diff(stamps)
        metrics.add("rate_hz", 1e9 / period, topic=track.topic, label=track.label)
        metrics.add(
            "max_interval_ms", float(intervals.max()) / 1e6, topic=track.topic, label=track.label
        )
        metrics.extend(
            "interval_ms", times[1:], intervals / 1e6, topic=track.topic, label=track.label
        )
        limit = self.gap_factor * period
        events = []
        for i in np.flatnonzero(intervals > limit):
            gap = int(intervals[i])
            severity: Severity = "info" if rhythm.constant else "warning"
            note = " (its transform never changes, so lookups hold)" if rhythm.constant else ""
            events.append(
                Event(
                    t_ns=int(min(times[i], times[i + 1])),  # a reordered message arrives late
                    end_ns=int(max(times[i], times[i + 1])),
                    topic=track.topic,
                    kind="tf_gap",
                    severity=severity,
                    message=(
                        f"{track.topic} {track.label}: no transform for {format_duration(gap)} "
                        f"({gap / period:.0f}x its {format_duration(period)} period){note}"
                    ),
                    evidence={
                        "parent": track.label.split(" -> ")[0],
                        "child": track.label.split(" -> ")[1],
                        "gap_ns": gap,
                        "period_ns": period,
                        "gap_factor": self.gap_factor,
                        "last_stamp_ns": int(stamps[i]),
                        "next_stamp_ns": int(stamps[i + 1]),
                    },
                )
            )
        report_check(
            result,
            events,
            name=name,
            topic=track.topic,
            value=f"longest {format_duration(int(intervals.max()))}",
            threshold=f"<= {format_duration(int(limit))} ({self.gap_factor:g} x period)",
        )
        return rhythm

    # -- jumps

    def _jumps(self, result: StageResult, track: _Track) -> list[Event]:
        stamps, times, xyz = track.sorted()
        name = f"pose jumps: {track.label}"
        if stamps.size < 3:
            result.checks.append(skip_check(name, track.topic, f"{stamps.size} samples"))
            return []
        steps = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
        dt = np.diff(stamps) / 1e9
        # Stamps carry jitter while positions are sampled on the sensor's own clock: a step
        # is granted at least one median period, or a jittered pair of stamps 2 ms apart
        # would make an ordinary step look like a leap.
        span = np.maximum(dt, float(np.median(dt)))
        speed = _rolling_median(steps / span, _SPEED_WINDOW)
        twist = track.speeds()
        if twist.size == stamps.size:
            speed = np.maximum(speed, np.maximum(twist[1:], twist[:-1]))
        allowed = self.jump_factor * speed * span + 0.5 * self.max_accel * span**2 + self.min_jump_m
        result.metrics.add(
            "path_length_m", float(steps.sum()), topic=track.topic, label=track.label
        )
        events = [
            self._jump_event(
                track, int(i), stamps=stamps, times=times, steps=steps, speed=speed, allowed=allowed
            )
            for i in np.flatnonzero(steps > allowed)
        ]
        worst = int(np.argmax(steps / allowed))
        result.checks.append(
            Check(
                name=name,
                topic=track.topic,
                status=status_of(events),
                value=(
                    f"largest step {steps[worst]:.2f} m in {format_duration(int(dt[worst] * 1e9))}"
                ),
                threshold=(
                    f"<= {self.jump_factor:g} x speed x dt + {self.max_accel:g} m/s² x dt²/2 + "
                    f"{self.min_jump_m:g} m"
                ),
            )
        )
        return events

    def _jump_event(
        self,
        track: _Track,
        i: int,
        *,
        stamps: NDArray[np.int64],
        times: NDArray[np.int64],
        steps: NDArray[np.float64],
        speed: NDArray[np.float64],
        allowed: NDArray[np.float64],
    ) -> Event:
        dt = int(stamps[i + 1] - stamps[i])
        what = track.topic if track.topic == track.label else f"{track.topic} {track.label}"
        return Event(
            t_ns=int(min(times[i], times[i + 1])),
            end_ns=int(max(times[i], times[i + 1])),
            topic=track.topic,
            kind="pose_jump",
            severity="error",
            message=(
                f"{what}: position jumped {steps[i]:.2f} m in {format_duration(dt)} "
                f"(at {speed[i]:.1f} m/s at most {allowed[i]:.2f} m is plausible)"
            ),
            evidence={
                "source": "odometry" if track.topic == track.label else "tf",
                "jump_m": float(steps[i]),
                "dt_ns": dt,
                "speed_mps": float(speed[i]),
                "allowed_m": float(allowed[i]),
                "from_stamp_ns": int(stamps[i]),
                "to_stamp_ns": int(stamps[i + 1]),
            },
        )

    # -- frames

    def _frames(self, result: StageResult, rhythms: dict[tuple[str, str, str], _Rhythm]) -> None:
        frames = np.frombuffer(self._frame_t, dtype=np.int64)
        result.metrics.add("frames", frames.size)
        result.metrics.add("frames_without_tf", self._frames_without_tf)
        buffer = self._buffer
        if buffer is None:
            result.checks.append(
                skip_check("transforms at frame time", None, "the log has no TF: not judged")
            )
            return
        target = self._target(buffer)
        if target is None:
            result.checks.append(
                skip_check("transforms at frame time", None, "no sensor frame ids to look up")
            )
            return
        result.metrics.add("target_frame_known", 1.0, label=target)
        used_edges: dict[tuple[str, str], list[tuple[NDArray[np.intp], NDArray[np.int64]]]] = {}
        for topic, ids in self._frame_ids.items():
            self._missing(
                result,
                topic,
                buffer=buffer,
                target=target,
                times=np.frombuffer(self._frame_stamps[topic], dtype=np.int64),
                ids=ids,
                used_edges=used_edges,
            )
        self._stale(result, frames=frames, used_edges=used_edges, rhythms=rhythms)

    def _target(self, buffer: TransformBuffer) -> str | None:
        if self.target_frame is not None:
            return _normalise(self.target_frame)
        known = buffer.frames()
        if "odom" in known:
            return "odom"
        start = "base_link" if "base_link" in known else None
        if start is None:
            start = next((n for n in self._id_names if n in known), None)
        if start is None:
            return self._id_names[0] if self._id_names else None
        while (parent := buffer.parent_of(start)) is not None:
            start = parent
        return start

    def _missing(
        self,
        result: StageResult,
        topic: str,
        *,
        buffer: TransformBuffer,
        target: str,
        times: NDArray[np.int64],
        ids: array[int],
        used_edges: dict[tuple[str, str], list[tuple[NDArray[np.intp], NDArray[np.int64]]]],
    ) -> None:
        """Frames whose ``topic`` message's frame cannot be looked up in ``target`` at the
        message's own (synced) stamp; records which frames used which edges."""
        frames = times
        index = np.frombuffer(ids, dtype=np.int32)
        missing = np.zeros(frames.size, dtype=bool)
        first_error = ""
        names = []
        for k in np.unique(index[index >= 0]):
            frame_id = self._id_names[int(k)]
            names.append(frame_id)
            where = np.flatnonzero(index == k)
            failed, error = _lookups(buffer, target=target, source=frame_id, times=frames[where])
            missing[where[failed]] = True
            first_error = first_error or error
            ok = where[~failed]
            for edge in _path_edges(buffer, frame_id, target):
                used_edges.setdefault(edge, []).append((ok, frames[ok]))
        name = f"transform to {target}"
        if not names:
            result.checks.append(skip_check(name, topic, "no header frame id"))
            return
        events = []
        for first, last in runs(missing):
            count = last - first + 1
            events.append(
                Event(
                    t_ns=int(frames[first]),
                    end_ns=int(frames[last]),
                    topic=topic,
                    kind="tf_missing",
                    severity="warning",
                    message=(
                        f"{topic}: no transform from {', '.join(names)} to {target} for {count} "
                        f"frame{'s' if count > 1 else ''} from "
                        f"{format_seconds(int(frames[first]) - self._origin_ns)} s: {first_error}"
                    ),
                    evidence={
                        "frames": count,
                        "frame_ids": names,
                        "target": target,
                        "error": first_error,
                    },
                )
            )
        result.metrics.add("frames_without_transform", int(missing.sum()), topic=topic)
        report_check(
            result,
            events,
            name=name,
            topic=topic,
            value=f"{int(missing.sum())} of {frames.size} frames without one",
            threshold="0 frames",
        )

    def _stale(
        self,
        result: StageResult,
        *,
        frames: NDArray[np.int64],
        used_edges: dict[tuple[str, str], list[tuple[NDArray[np.intp], NDArray[np.int64]]]],
        rhythms: dict[tuple[str, str, str], _Rhythm],
    ) -> None:
        """Per dynamic edge on a sensor's path, the age of its latest sample at or before each
        lookup (the oldest over the frame's sensors)."""
        by_edge = {(key[1], key[2]): key for key in self._edges}
        for edge, uses in used_edges.items():
            key = by_edge.get(edge)
            if key is None:
                continue  # a static edge: always fresh
            track, rhythm = self._edges[key], rhythms[key]
            name = f"TF age at frame time: {track.label}"
            if rhythm.period_ns is None or not rhythm.periodic or rhythm.constant:
                why = "holds at all times" if rhythm.constant else "irregular: not judged"
                result.checks.append(skip_check(name, track.topic, why))
                continue
            stamps, _, _ = track.sorted()
            age = np.zeros(frames.size, dtype=np.int64)
            for where, at in uses:
                idx = np.searchsorted(stamps, at, side="right") - 1
                # Judged between two samples only: before the first or after the last (a
                # recording that starts or stops a little apart from the TF) the lookup held
                # within the buffer's tolerance, or it is missing.
                bracketed = (idx >= 0) & (idx < stamps.size - 1)
                ages = np.where(bracketed, at - stamps[np.clip(idx, 0, None)], 0)
                age[where] = np.maximum(age[where], ages)
            limit = self.max_age_ns or round(self.stale_factor * rhythm.period_ns)
            result.metrics.extend("age_ms", frames, age / 1e6, topic=track.topic, label=track.label)
            events = [
                self._stale_event(track, run, frames=frames, age=age, limit=limit)
                for run in runs(age > limit)
            ]
            report_check(
                result,
                events,
                name=name,
                topic=track.topic,
                value=f"oldest {format_duration(int(age.max()))}",
                threshold=f"<= {format_duration(limit)}",
            )

    def _stale_event(
        self,
        track: _Track,
        run: tuple[int, int],
        *,
        frames: NDArray[np.int64],
        age: NDArray[np.int64],
        limit: int,
    ) -> Event:
        first, last = run
        count = last - first + 1
        oldest = int(age[first : last + 1].max())
        return Event(
            t_ns=int(frames[first]),
            end_ns=int(frames[last]),
            topic=track.topic,
            kind="tf_stale",
            severity="warning",
            message=(
                f"{track.topic} {track.label}: {count} frame{'s' if count > 1 else ''} from "
                f"{format_seconds(int(frames[first]) - self._origin_ns)} s saw a transform up "
                f"to {format_duration(oldest)} old (limit {format_duration(limit)})"
            ),
            evidence={
                "frames": count,
                "oldest_age_ns": oldest,
                "limit_ns": limit,
                "parent": track.label.split(" -> ")[0],
                "child": track.label.split(" -> ")[1],
            },
        )

    # ------------------------------------------------------------------------------ figure

    def _figure(self, events: Sequence[Event]) -> FigureSpec:
        paths = []
        for track in [*self._odometry.values(), *self._edges.values()]:
            stamps, _, xyz = track.sorted()
            if stamps.size >= 2 and not (xyz == xyz[0]).all():
                label = (
                    track.topic if track.label == track.topic else f"{track.topic} {track.label}"
                )
                paths.append((label, stamps, xyz))
        rates = []
        for track in self._edges.values():
            stamps, times, _ = track.sorted()
            if stamps.size >= 2:
                rates.append((f"{track.topic} {track.label}", times[1:], np.diff(stamps) / 1e6))
        jumps = [e for e in events if e.kind == "pose_jump"]
        gaps = [e for e in events if e.kind in ("tf_gap", "tf_stale")]
        origin = self._origin_ns

        def draw(fig: Figure) -> None:
            from bagscope.analyzers.plotting import (
                SEVERITY_COLOURS,
                TOPIC_COLOURS,
                legend,
                mark_events,
                seconds,
                style_axes,
            )

            left = fig.add_subplot(1, 2, 1)
            right = fig.add_subplot(1, 2, 2)
            for i, (label, stamps, xyz) in enumerate(paths):
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                left.plot(xyz[:, 0], xyz[:, 1], color=colour, lw=1.0, label=label)
                for event in jumps:
                    if event.topic and label.startswith(event.topic):
                        to = event.evidence["to_stamp_ns"]
                        k = int(np.searchsorted(stamps, to))
                        if 0 < k < stamps.size:
                            left.plot(
                                xyz[k - 1 : k + 1, 0],
                                xyz[k - 1 : k + 1, 1],
                                color=SEVERITY_COLOURS["error"],
                                lw=2.0,
                                marker="x",
                            )
            left.set_aspect("equal", adjustable="datalim")
            style_axes(left, xlabel="x (m)", ylabel="y (m)", title="trajectory (bird's eye)")
            if paths:
                legend(left, loc="best", fontsize=7, frameon=False)
            for i, (label, times, intervals) in enumerate(rates):
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                right.plot(
                    seconds(times.tolist(), origin), intervals, ".", ms=2, color=colour, label=label
                )
            mark_events(right, gaps, origin)
            if rates:
                right.set_yscale("log")
                legend(right, loc="best", fontsize=7, frameon=False)
            style_axes(
                right,
                xlabel="time since log start (s)",
                ylabel="interval between samples (ms)",
                title="dynamic TF edges",
            )

        return FigureSpec(
            name=f"{self.name}_pose",
            title="Ego trajectory and TF edge intervals",
            draw=draw,
            size=(10.0, 4.0),
        )


def _cross_referenced(jumps: list[Event]) -> list[Event]:
    """Jumps with ``also_on``: the other sources (odometry, TF edges) that jumped within
    ``_SAME_JUMP_NS`` - one relocalisation usually moves odometry and its TF together."""
    out = []
    for event in jumps:
        others = sorted(
            {
                str(other.topic)
                for other in jumps
                if other is not event
                and other.topic != event.topic
                and abs(other.evidence["to_stamp_ns"] - event.evidence["to_stamp_ns"])
                <= _SAME_JUMP_NS
            }
        )
        out.append(replace(event, evidence={**event.evidence, "also_on": others}))
    return out


def _rolling_median(values: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Centred rolling median (the window shrinks at the ends: edge values repeat)."""
    if values.size == 0:
        return values
    half = window // 2
    padded = np.pad(values, half, mode="edge")
    view = np.lib.stride_tricks.sliding_window_view(padded, window)
    out: NDArray[np.float64] = np.median(view, axis=1)
    return out


def _lookups(
    buffer: TransformBuffer, *, target: str, source: str, times: NDArray[np.int64]
) -> tuple[NDArray[np.bool_], str]:
    """Which lookups fail (all at once when they all succeed, else one by one) and the first
    failure's reason."""
    failed = np.zeros(times.size, dtype=bool)
    try:
        buffer.lookup_many(target, source, times)
    except TransformError:
        pass
    else:
        return failed, ""
    error = ""
    for i, t in enumerate(times.tolist()):
        try:
            buffer.lookup(target, source, int(t))
        except TransformError as err:
            failed[i] = True
            error = error or str(err)
    return failed, error


def _path_edges(buffer: TransformBuffer, source: str, target: str) -> list[tuple[str, str]]:
    """The (parent, child) edges a lookup from ``source`` to ``target`` goes through."""

    def chain(frame: str) -> list[str]:
        out = [frame]
        while (parent := buffer.parent_of(out[-1])) is not None and parent not in out:
            out.append(parent)
        return out

    up_source, up_target = chain(source), chain(target)
    common = next((f for f in up_source if f in set(up_target)), None)
    if common is None:
        return []
    edges = []
    for path in (up_source, up_target):
        for child, parent in itertools.pairwise(path):
            if child == common:
                break
            edges.append((parent, child))
    return edges
