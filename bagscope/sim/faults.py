"""Faults a real log suffers, injected on the simulator's outgoing message stream.

A fault spec is a comma-separated list such as
``drop:/lidar/points=0.1,outage:/camera/image/compressed=12s+1.5s,stale_tf:8s+2s``; every kind
is something analyzers must detect in real logs (lost and late messages, clock trouble - a
constant offset, noise, a drifting or zeroed stamp -, duplicated or reordered delivery, a TF
that stops, payloads that disagree with their own header, a sensor that keeps publishing a
frozen frame, a lidar partly blocked, an odometry that jumps). Windows are ``START+LENGTH``
measured from the start of the drive, half-open ``[START, START+LENGTH)`` on true stamps.

:class:`FaultInjector` decides, per generated message, whether it is written at all, with
which header stamp and log (receive) time, and what its payload shows - corrupted, frozen on
an earlier message's content, shifted by a pose jump, missing an azimuth sector - and whether
it is written twice, *before* the payload is built, so a dropped camera frame is never
rendered. Every fault draws from its own random stream, so adding one fault never changes the
choices of another, and every decision is recorded for the ``.truth.json`` sidecar.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.errors import DurationError
from bagscope.replay.timeparse import parse_duration as replay_duration
from bagscope.sim.choices import (
    DURATION_KINDS,
    FAULT_KINDS,
    PROBABILITY_KINDS,
    STEP_KINDS,
    TOPICLESS_KINDS,
    WINDOW_KINDS,
    fault_syntax,
)
from bagscope.sim.errors import SimError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "CORRUPTIBLE_TYPES",
    "DUPLICATE_GAP_NS",
    "FAULT_KINDS",
    "REORDER_GAP_NS",
    "Delivery",
    "Fault",
    "FaultInjector",
    "FaultRecord",
    "parse_duration",
    "parse_faults",
]

# Only payloads with an internal size to disagree with can be corrupted meaningfully.
CORRUPTIBLE_TYPES = frozenset(
    {"sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}
)
TF_TOPIC = "/tf"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
POINT_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
# Kinds that only mean something on one message type: kind -> (msgtype, what it is called).
_ONLY_ON: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "pose_jump": (ODOMETRY_TYPE, "the odometry topic"),
        "blocked_sector": (POINT_CLOUD_TYPE, "the point cloud topic"),
    }
)
# The kinds whose hit removes the message: a removed message is recorded only by them.
LOSS_KINDS = frozenset({"drop", "outage", "stale_tf"})
# A clock as far off as ±100 % stops or runs backwards: that is no longer drift.
MAX_DRIFT_PPM = Decimal(1_000_000)

# A duplicate arrives just after the original; a reordered message just after its successor:
# late delivery, never delivery before the message existed.
DUPLICATE_GAP_NS = 100_000
REORDER_GAP_NS = 100_000

# Transport latency every message gets (a per-topic constant in [MIN, MAX] plus uniform noise
# up to NOISE per message), so log time minus stamp looks like a real recorder's.
LATENCY_MIN_NS = 1_000_000
LATENCY_MAX_NS = 4_500_000
LATENCY_NOISE_NS = 500_000


def parse_duration(text: str, *, what: str = "duration", parameter: str | None = None) -> int:
    """``'1.5s'``, ``'40ms'``, ``'-80ms'`` -> int ns, spelled as everywhere else in bagscope.

    ``parameter`` is the argument the text came from, for :attr:`SimError.parameter`.
    """
    try:
        return replay_duration(text)
    except DurationError as err:
        msg = f"bad {what}: {err}"
        raise SimError(msg, parameter=parameter) from err


def _parse_probability(text: str, item: str) -> float:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
        msg = f"bad fault {item!r}: probability must be a number in [0, 1], got {text!r}"
        raise SimError(msg, parameter="faults")
    return float(value)


def _parse_window(text: str, item: str) -> tuple[int, int]:
    start, plus, length = text.partition("+")
    if not plus or not start.strip() or not length.strip():
        msg = f"bad fault {item!r}: window must be START+LENGTH, e.g. 12s+1.5s"
        raise SimError(msg, parameter="faults")
    start_ns = parse_duration(start, what=f"window start in {item!r}", parameter="faults")
    length_ns = parse_duration(length, what=f"window length in {item!r}", parameter="faults")
    if start_ns < 0 or length_ns <= 0:
        msg = f"bad fault {item!r}: window needs START >= 0 and LENGTH > 0"
        raise SimError(msg, parameter="faults")
    return start_ns, length_ns


def _number(text: str) -> Decimal | None:
    """``text`` as a finite decimal, or None: the one way every numeric value is read."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _parse_ppm(text: str, item: str) -> float:
    """``'2000ppm'`` -> 2000.0: the unit is required, so a bare number is never misread."""
    body = text.strip()
    value = _number(body[:-3]) if body.lower().endswith("ppm") else None
    if value is None or not -MAX_DRIFT_PPM < value < MAX_DRIFT_PPM:
        msg = (
            f"bad fault {item!r}: drift must be a number of ppm between -1000000 and 1000000, "
            f"e.g. 2000ppm or -500ppm, got {text!r}"
        )
        raise SimError(msg, parameter="faults")
    return float(value)


def _parse_jump(text: str, item: str) -> tuple[int, float]:
    """``'6s+6m'`` -> (6 s in ns, 6.0 m). ``m`` is metres here, never minutes."""
    start, plus, distance = text.partition("+")
    if not plus or not start.strip():
        msg = f"bad fault {item!r}: pose_jump must be START+DISTANCE, e.g. 6s+6m"
        raise SimError(msg, parameter="faults")
    start_ns = parse_duration(start, what=f"pose_jump start in {item!r}", parameter="faults")
    if start_ns < 0:
        msg = f"bad fault {item!r}: pose_jump needs START >= 0"
        raise SimError(msg, parameter="faults")
    body = distance.strip()
    metres = _number(body[:-1]) if body.endswith("m") else None
    if metres is None or metres == 0:
        msg = (
            f"bad fault {item!r}: pose_jump DISTANCE must be a non-zero number of metres, "
            f"e.g. 6m or -2.5m, got {distance!r}"
        )
        raise SimError(msg, parameter="faults")
    return start_ns, float(metres)


def _parse_sector(text: str, item: str) -> tuple[int, int, tuple[float, float]]:
    """``'4s+3s@30:90'`` -> (start ns, length ns, (30.0, 90.0))."""
    window, at, sector = text.partition("@")
    if not at:
        msg = f"bad fault {item!r}: blocked_sector must be START+LENGTH@FROM:TO, e.g. 4s+3s@30:90"
        raise SimError(msg, parameter="faults")
    start_ns, length_ns = _parse_window(window, item)
    low, colon, high = sector.partition(":")
    bounds = (_number(low), _number(high)) if colon else (None, None)
    if (
        bounds[0] is None
        or bounds[1] is None
        or not all(Decimal(-180) <= b <= Decimal(360) for b in (bounds[0], bounds[1]))
        or bounds[0] == bounds[1]
    ):
        msg = (
            f"bad fault {item!r}: sector must be FROM:TO, two different azimuths in degrees "
            f"from -180 to 360, e.g. 30:90 or -45:45, got {sector!r}"
        )
        raise SimError(msg, parameter="faults")
    return start_ns, length_ns, (float(bounds[0]), float(bounds[1]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One parsed item of a fault spec; ``text`` is the item exactly as the user wrote it.

    ``start_ns`` is a window's START or a pose jump's instant, relative to the drive's start;
    ``ppm`` is a drift's rate, ``distance_m`` a pose jump's size and ``azimuth_deg`` a blocked
    sector's (FROM, TO) as written.
    """

    kind: str
    topic: str
    text: str
    probability: float = 0.0
    amount_ns: int = 0
    start_ns: int = 0
    length_ns: int = 0
    ppm: float = 0.0
    distance_m: float = 0.0
    azimuth_deg: tuple[float, float] = (0.0, 0.0)

    @property
    def is_window(self) -> bool:
        return self.kind in WINDOW_KINDS

    @property
    def has_start(self) -> bool:
        """Whether the fault begins at a START of its own (a window or a step)."""
        return self.kind in WINDOW_KINDS or self.kind in STEP_KINDS

    def in_window(self, offset_ns: int) -> bool:
        """Whether ``offset_ns`` (since the drive's start) lies in ``[start, start+length)``."""
        return self.start_ns <= offset_ns < self.start_ns + self.length_ns

    def drift_ns(self, elapsed_ns: int) -> int:
        """What a ``ppm`` drift adds to a stamp ``elapsed_ns`` after the drive's start.

        Exact rational arithmetic, rounded to the nearest ns (ties to even), so the shift is
        ``round(elapsed * ppm / 1e6)`` whatever the magnitudes: the float repr of ``ppm`` is
        the decimal the user wrote.
        """
        return round(Fraction(elapsed_ns) * Fraction(repr(self.ppm)) / 1_000_000)

    def sector(self) -> tuple[float, float]:
        """A blocked sector as (FROM in [0, 360), width in (0, 360]), counterclockwise.

        Both spellings of an azimuth (0..360 and -180..180) land on the same circle, so
        ``-30:30`` and ``330:30`` are one 60° sector through 0°; equal ends a full turn apart
        (``0:360``, ``-180:180``) block every azimuth.
        """
        low, high = self.azimuth_deg
        width = (high - low) % 360.0
        return low % 360.0, width if width > 0 else 360.0

    def parameters(self) -> dict[str, Any]:
        """The kind's own parameters, for the sidecar (times relative to the drive's start)."""
        if self.kind in PROBABILITY_KINDS:
            return {"probability": self.probability}
        if self.kind == "blocked_sector":
            return {
                "start_ns": self.start_ns,
                "length_ns": self.length_ns,
                "azimuth_deg": list(self.azimuth_deg),
            }
        if self.is_window:
            return {"start_ns": self.start_ns, "length_ns": self.length_ns}
        if self.kind == "drift":
            return {"ppm": self.ppm}
        if self.kind == "pose_jump":
            return {"at_ns": self.start_ns, "distance_m": self.distance_m}
        return {"amount_ns": self.amount_ns}


def _parse_item(item: str) -> Fault:
    kind, colon, rest = item.partition(":")
    kind = kind.strip()
    if not colon:
        topicless = " or ".join(fault_syntax(k) for k in TOPICLESS_KINDS)
        msg = f"bad fault {item!r}: expected KIND:TOPIC=VALUE (or {topicless})"
        raise SimError(msg, parameter="faults")
    if kind not in FAULT_KINDS:
        msg = f"unknown fault kind {kind!r} in {item!r}; choose one of {', '.join(FAULT_KINDS)}"
        raise SimError(msg, parameter="faults")
    if kind in TOPICLESS_KINDS:
        start_ns, length_ns = _parse_window(rest, item)
        return Fault(kind=kind, topic=TF_TOPIC, text=item, start_ns=start_ns, length_ns=length_ns)
    topic, equals, value = rest.partition("=")
    topic = topic.strip()
    if not equals or not topic.startswith("/") or not value.strip():
        msg = f"bad fault {item!r}: expected {kind}:/TOPIC=VALUE"
        raise SimError(msg, parameter="faults")
    if kind in PROBABILITY_KINDS:
        probability = _parse_probability(value, item)
        return Fault(kind=kind, topic=topic, text=item, probability=probability)
    if kind == "blocked_sector":
        start_ns, length_ns, azimuth = _parse_sector(value, item)
        return Fault(
            kind=kind,
            topic=topic,
            text=item,
            start_ns=start_ns,
            length_ns=length_ns,
            azimuth_deg=azimuth,
        )
    if kind in WINDOW_KINDS:
        start_ns, length_ns = _parse_window(value, item)
        return Fault(kind=kind, topic=topic, text=item, start_ns=start_ns, length_ns=length_ns)
    if kind == "drift":
        return Fault(kind=kind, topic=topic, text=item, ppm=_parse_ppm(value, item))
    if kind == "pose_jump":
        start_ns, distance_m = _parse_jump(value, item)
        return Fault(kind=kind, topic=topic, text=item, start_ns=start_ns, distance_m=distance_m)
    amount_ns = parse_duration(value, what=f"{kind} in {item!r}", parameter="faults")
    if kind != "clock_offset" and amount_ns < 0:
        msg = f"bad fault {item!r}: {kind} cannot be negative"
        raise SimError(msg, parameter="faults")
    return Fault(kind=kind, topic=topic, text=item, amount_ns=amount_ns)


def parse_faults(
    spec: str,
    *,
    topics: Mapping[str, str] | None = None,
    duration_ns: int | None = None,
) -> tuple[Fault, ...]:
    """Parse a fault spec; with ``topics`` (topic -> msgtype) also check it fits the drive.

    ``duration_ns`` rejects windows and jumps that start after the drive ends (a typo, most
    likely). A duration kind (a per-topic constant) may be given once per topic; windows,
    probabilities and jumps may repeat (their effects add up).
    """
    faults = tuple(_parse_item(item.strip()) for item in spec.split(",") if item.strip())
    seen: set[tuple[str, str]] = set()
    for fault in faults:
        key = (fault.kind, fault.topic)
        if fault.kind in DURATION_KINDS and key in seen:
            msg = f"fault {fault.kind} given twice for {fault.topic}: give one value"
            raise SimError(msg, parameter="faults")
        seen.add(key)
        if topics is not None:
            _check_topic(fault, topics)
        if duration_ns is not None and fault.has_start and fault.start_ns >= duration_ns:
            msg = (
                f"fault {fault.text!r} starts at {fault.start_ns / 1e9:g} s, after the "
                f"{duration_ns / 1e9:g} s drive ends"
            )
            raise SimError(msg, parameter="faults")
    return faults


def _check_topic(fault: Fault, topics: Mapping[str, str]) -> None:
    if fault.topic not in topics:
        msg = f"fault {fault.text!r}: no topic {fault.topic} in this drive; topics: "
        msg += ", ".join(sorted(topics))
        raise SimError(msg, parameter="faults")
    if fault.kind == "corrupt" and topics[fault.topic] not in CORRUPTIBLE_TYPES:
        msg = f"fault {fault.text!r}: only point cloud and image topics can be corrupted"
        raise SimError(msg, parameter="faults")
    only = _ONLY_ON.get(fault.kind)
    if only is not None and topics[fault.topic] != only[0]:
        msgtype, what = only
        right = sorted(topic for topic, kind in topics.items() if kind == msgtype)
        use = f"use {' or '.join(right)}" if right else "this drive has none"
        msg = f"fault {fault.text!r}: {fault.kind} applies only to {what}; {use}"
        raise SimError(msg, parameter="faults")


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """How one generated message reaches the log (times in absolute int ns).

    ``stamp_ns`` is the true sensor time; ``header_stamp_ns`` what the header claims (they
    differ under jitter / clock_offset / drift / zero_stamps); ``log_ns`` when the recorder
    received it. The rest says what the payload shows: ``content_ns`` the true stamp whose
    content a frozen message repeats (None: its own), ``pose_jumps`` the (absolute instant,
    metres) of every odometry jump already in effect, ``blocked_deg`` the lidar azimuth
    sectors, as (FROM in [0, 360), width) degrees counterclockwise, that return nothing.
    """

    topic: str
    stamp_ns: int
    header_stamp_ns: int
    log_ns: int
    corrupt: bool = False
    duplicate: bool = False
    content_ns: int | None = None
    pose_jumps: tuple[tuple[int, float], ...] = ()
    blocked_deg: tuple[tuple[float, float], ...] = ()


@dataclass(slots=True)
class FaultRecord:
    """What one fault actually did: the true stamps of every message it touched.

    ``drive_start_ns`` / ``drive_end_ns`` bound the drive (the end may be unknown: None);
    ``content_ns`` is, for a freeze, the true stamp whose content the window repeats (the last
    message generated before it, or the first in it when none was); ``details`` holds what only
    the drive knows (a pose jump's offset vector), copied into the sidecar as is.
    """

    fault: Fault
    drive_start_ns: int
    drive_end_ns: int | None = None
    stamps_ns: list[int] = field(default_factory=list)
    offsets_ns: list[int] = field(default_factory=list)
    content_ns: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def extent_ns(self) -> tuple[int | None, int | None]:
        """When the fault was in effect, as absolute (start, end) ns for the sidecar.

        A window is ``[START, START+LENGTH)``; a pose jump is an instant, so start == end; a
        probability kind spans its first to last affected true stamp (None, None if it hit
        nothing); a duration kind is constant, so it spans the whole drive.
        """
        fault = self.fault
        if fault.is_window:
            begin = self.drive_start_ns + fault.start_ns
            return begin, begin + fault.length_ns
        if fault.kind in STEP_KINDS:
            at = self.drive_start_ns + fault.start_ns
            return at, at
        if fault.kind in PROBABILITY_KINDS:
            if not self.stamps_ns:
                return None, None
            return min(self.stamps_ns), max(self.stamps_ns)
        return self.drive_start_ns, self.drive_end_ns

    def to_json(self) -> dict[str, Any]:
        start_ns, end_ns = self.extent_ns()
        out: dict[str, Any] = {
            "spec": self.fault.text,
            "kind": self.fault.kind,
            "topic": self.fault.topic,
            "parameters": self.fault.parameters(),
            "start_ns": start_ns,
            "end_ns": end_ns,
            "count": len(self.stamps_ns),
            "stamps_ns": list(self.stamps_ns),
        }
        if self.fault.is_window:
            out["window_ns"] = [start_ns, end_ns]
        if self.fault.kind == "jitter":
            out["offsets_ns"] = list(self.offsets_ns)
        if self.fault.kind == "freeze":
            out["frozen_content_ns"] = self.content_ns if self.stamps_ns else None
        out.update(self.details)
        return out


def _stream(seed: int, *parts: str) -> np.random.Generator:
    """An RNG stream named by ``parts``: independent of every other name, same every run."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


class FaultInjector:
    """Applies parsed faults to the generated stream, one message at a time, in stamp order.

    ``deliver`` must be called for every generated message, including those a fault will
    remove: each fault and each topic's latency draw from their streams once per message, so
    the outcome for one topic never depends on another fault or topic (and a freeze knows the
    last message before its window even when that one was lost). ``end_ns``, the drive's end,
    only bounds the duration kinds in the sidecar.
    """

    def __init__(
        self,
        faults: Iterable[Fault],
        *,
        seed: int,
        start_ns: int,
        end_ns: int | None = None,
    ) -> None:
        self._seed = seed
        self._start_ns = start_ns
        self.records = tuple(
            FaultRecord(fault=f, drive_start_ns=start_ns, drive_end_ns=end_ns) for f in faults
        )
        self._by_topic: dict[str, list[tuple[FaultRecord, np.random.Generator]]] = {}
        occurrences: dict[str, int] = {}
        for record in self.records:
            # named by its own text (and repeat count), not its position: adding another
            # fault to the spec leaves this one's choices unchanged
            nth = occurrences[record.fault.text] = occurrences.get(record.fault.text, -1) + 1
            rng = _stream(seed, "fault", record.fault.text, str(nth))
            self._by_topic.setdefault(record.fault.topic, []).append((record, rng))
            if record.fault.kind == "pose_jump":
                # odometry and the odom -> base_link TF report one pose: both jump
                self._by_topic.setdefault(TF_TOPIC, []).append((record, rng))
        self._latency: dict[str, tuple[int, np.random.Generator]] = {}
        self._held: dict[str, Delivery] = {}
        self._held_records: dict[str, FaultRecord] = {}

    def latency_ns(self, topic: str) -> int:
        """The topic's constant transport latency (the per-message noise comes on top)."""
        return self._latency_stream(topic)[0]

    def _latency_stream(self, topic: str) -> tuple[int, np.random.Generator]:
        entry = self._latency.get(topic)
        if entry is None:
            rng = _stream(self._seed, "latency", topic)
            base = int(rng.integers(LATENCY_MIN_NS, LATENCY_MAX_NS + 1))
            entry = self._latency[topic] = (base, rng)
        return entry

    def deliver(self, topic: str, stamp_ns: int) -> list[Delivery]:
        """The copies of message (``topic``, true ``stamp_ns``) to write; empty if lost."""
        base, latency_rng = self._latency_stream(topic)
        log_ns = stamp_ns + base + int(latency_rng.integers(0, LATENCY_NOISE_NS + 1))
        faults = self._by_topic.get(topic)
        if faults is None:  # most topics of most drives: nothing to decide, nothing held
            return [
                Delivery(topic=topic, stamp_ns=stamp_ns, header_stamp_ns=stamp_ns, log_ns=log_ns)
            ]
        header_ns = stamp_ns
        offset = stamp_ns - self._start_ns
        lost = corrupt = duplicate = reorder = zero = False
        reorder_record: FaultRecord | None = None
        content_ns: int | None = None
        jumps: tuple[tuple[int, float], ...] = ()
        blocked: tuple[tuple[float, float], ...] = ()
        touched: list[tuple[FaultRecord, int]] = []
        for record, rng in faults:
            fault = record.fault
            kind = fault.kind
            if kind in PROBABILITY_KINDS:
                hit = bool(rng.random() < fault.probability)
                if not hit:
                    continue
                if kind == "drop":
                    lost = True
                elif kind == "corrupt":
                    corrupt = True
                elif kind == "duplicate":
                    duplicate = True
                elif kind == "zero_stamps":
                    zero = True
                else:
                    reorder, reorder_record = True, record
                    continue  # recorded only when the message is actually held back
                touched.append((record, 0))
            elif kind == "freeze":
                if offset < fault.start_ns:
                    record.content_ns = stamp_ns  # the content the window will repeat
                elif fault.in_window(offset):
                    if record.content_ns is None:  # nothing before the window: its first
                        record.content_ns = stamp_ns
                    if content_ns is None:
                        content_ns = record.content_ns
                    touched.append((record, 0))
            elif fault.is_window:
                if fault.in_window(offset):
                    if kind == "blocked_sector":
                        blocked += (fault.sector(),)
                    else:
                        lost = True
                    touched.append((record, 0))
            elif kind == "pose_jump":
                if offset >= fault.start_ns:
                    jumps += ((self._start_ns + fault.start_ns, fault.distance_m),)
                    if topic == fault.topic:  # the record lists the odometry messages
                        touched.append((record, 0))
            elif kind == "delay":
                log_ns += fault.amount_ns
                touched.append((record, 0))
            elif kind == "clock_offset":
                header_ns += fault.amount_ns
                touched.append((record, 0))
            elif kind == "drift":
                header_ns += fault.drift_ns(offset)
                touched.append((record, 0))
            else:  # jitter
                shift = round(float(rng.normal(0.0, fault.amount_ns)))
                header_ns += shift
                touched.append((record, shift))
        if zero:  # whatever else moved the stamp: the header says 0
            header_ns = 0
        if lost:  # a lost message is only a loss: record the faults that removed it
            touched = [(r, s) for r, s in touched if r.fault.kind in LOSS_KINDS]
        for record, shift in touched:
            record.stamps_ns.append(stamp_ns)
            if record.fault.kind == "jitter":
                record.offsets_ns.append(shift)
        if lost:
            return []
        message = Delivery(
            topic=topic,
            stamp_ns=stamp_ns,
            header_stamp_ns=header_ns,
            log_ns=log_ns,
            corrupt=corrupt,
            content_ns=content_ns,
            pose_jumps=jumps,
            blocked_deg=blocked,
        )
        out = [message]
        if duplicate:
            out.append(replace(message, log_ns=log_ns + DUPLICATE_GAP_NS, duplicate=True))
        held = self._held.pop(topic, None)
        if held is not None:
            # the held predecessor arrives just after this one: out-of-order delivery
            out.append(replace(held, log_ns=log_ns + REORDER_GAP_NS))
            self._held_records.pop(topic).stamps_ns.append(held.stamp_ns)
        elif reorder and reorder_record is not None:
            self._held[topic] = message
            self._held_records[topic] = reorder_record
            out.remove(message)
        return out

    def flush(self, *, not_before_ns: int) -> list[Delivery]:
        """Messages still held for reordering when the drive ends, logged at its end."""
        held = [replace(d, log_ns=max(d.log_ns, not_before_ns)) for d in self._held.values()]
        self._held.clear()
        self._held_records.clear()
        return held
