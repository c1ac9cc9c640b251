"""Faults a real log suffers, injected on the simulator's outgoing message stream.

A fault spec is a comma-separated list such as
``drop:/lidar/points=0.1,outage:/camera/image/compressed=12s+1.5s,stale_tf:8s+2s``; every kind
is something analyzers must detect in real logs (lost and late messages, clock trouble,
duplicated or reordered delivery, a TF that stops, payloads that disagree with their own
header). Windows are ``START+LENGTH`` measured from the start of the drive.

:class:`FaultInjector` decides, per generated message, whether it is written at all, with
which header stamp and log (receive) time, whether its payload is corrupted, and whether it is
written twice - *before* the payload is built, so a dropped camera frame is never rendered.
Every fault draws from its own random stream, so adding one fault never changes the choices of
another, and every decision is recorded for the ``.truth.json`` sidecar.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.errors import DurationError
from bagscope.replay.timeparse import parse_duration as replay_duration
from bagscope.sim.choices import (
    DURATION_KINDS,
    FAULT_KINDS,
    PROBABILITY_KINDS,
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
    if not plus:
        msg = f"bad fault {item!r}: window must be START+LENGTH, e.g. 12s+1.5s"
        raise SimError(msg, parameter="faults")
    start_ns = parse_duration(start, what=f"window start in {item!r}", parameter="faults")
    length_ns = parse_duration(length, what=f"window length in {item!r}", parameter="faults")
    if start_ns < 0 or length_ns <= 0:
        msg = f"bad fault {item!r}: window needs START >= 0 and LENGTH > 0"
        raise SimError(msg, parameter="faults")
    return start_ns, length_ns


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One parsed item of a fault spec; ``text`` is the item exactly as the user wrote it."""

    kind: str
    topic: str
    text: str
    probability: float = 0.0
    amount_ns: int = 0
    start_ns: int = 0
    length_ns: int = 0

    @property
    def is_window(self) -> bool:
        return self.kind in WINDOW_KINDS

    def in_window(self, offset_ns: int) -> bool:
        """Whether ``offset_ns`` (since the drive's start) lies in ``[start, start+length)``."""
        return self.start_ns <= offset_ns < self.start_ns + self.length_ns

    def parameters(self) -> dict[str, Any]:
        """The kind's own parameters, for the sidecar."""
        if self.kind in PROBABILITY_KINDS:
            return {"probability": self.probability}
        if self.is_window:
            return {"start_ns": self.start_ns, "length_ns": self.length_ns}
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
    if kind == "outage":
        start_ns, length_ns = _parse_window(value, item)
        return Fault(kind=kind, topic=topic, text=item, start_ns=start_ns, length_ns=length_ns)
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

    ``duration_ns`` rejects windows that start after the drive ends (a typo, most likely).
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
        if duration_ns is not None and fault.is_window and fault.start_ns >= duration_ns:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """How one generated message reaches the log (times in absolute int ns).

    ``stamp_ns`` is the true sensor time; ``header_stamp_ns`` what the header claims (they
    differ under jitter / clock_offset); ``log_ns`` when the recorder received it.
    """

    topic: str
    stamp_ns: int
    header_stamp_ns: int
    log_ns: int
    corrupt: bool = False
    duplicate: bool = False


@dataclass(slots=True)
class FaultRecord:
    """What one fault actually did: the true stamps of every message it touched."""

    fault: Fault
    start_ns: int
    stamps_ns: list[int] = field(default_factory=list)
    offsets_ns: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.fault.text,
            "kind": self.fault.kind,
            "topic": self.fault.topic,
            "parameters": self.fault.parameters(),
            "count": len(self.stamps_ns),
            "stamps_ns": list(self.stamps_ns),
        }
        if self.fault.is_window:
            begin = self.start_ns + self.fault.start_ns
            out["window_ns"] = [begin, begin + self.fault.length_ns]
        if self.fault.kind == "jitter":
            out["offsets_ns"] = list(self.offsets_ns)
        return out


def _stream(seed: int, *parts: str) -> np.random.Generator:
    """An RNG stream named by ``parts``: independent of every other name, same every run."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


class FaultInjector:
    """Applies parsed faults to the generated stream, one message at a time, in stamp order.

    ``deliver`` must be called for every generated message, including those a fault will
    remove: each fault and each topic's latency draw from their streams once per message, so
    the outcome for one topic never depends on another fault or topic.
    """

    def __init__(
        self,
        faults: Iterable[Fault],
        *,
        seed: int,
        start_ns: int,
    ) -> None:
        self._seed = seed
        self._start_ns = start_ns
        self.records = tuple(FaultRecord(fault=f, start_ns=start_ns) for f in faults)
        self._by_topic: dict[str, list[tuple[FaultRecord, np.random.Generator]]] = {}
        occurrences: dict[str, int] = {}
        for record in self.records:
            # named by its own text (and repeat count), not its position: adding another
            # fault to the spec leaves this one's choices unchanged
            nth = occurrences[record.fault.text] = occurrences.get(record.fault.text, -1) + 1
            rng = _stream(seed, "fault", record.fault.text, str(nth))
            self._by_topic.setdefault(record.fault.topic, []).append((record, rng))
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
        header_ns = stamp_ns
        offset = stamp_ns - self._start_ns
        lost = corrupt = duplicate = reorder = False
        reorder_record: FaultRecord | None = None
        touched: list[tuple[FaultRecord, int]] = []
        for record, rng in self._by_topic.get(topic, ()):
            fault = record.fault
            if fault.kind in PROBABILITY_KINDS:
                hit = bool(rng.random() < fault.probability)
                if not hit:
                    continue
                if fault.kind == "drop":
                    lost = True
                elif fault.kind == "corrupt":
                    corrupt = True
                elif fault.kind == "duplicate":
                    duplicate = True
                else:
                    reorder, reorder_record = True, record
                    continue  # recorded only when the message is actually held back
                touched.append((record, 0))
            elif fault.is_window:
                if fault.in_window(offset):
                    lost = True
                    touched.append((record, 0))
            elif fault.kind == "delay":
                log_ns += fault.amount_ns
                touched.append((record, 0))
            elif fault.kind == "clock_offset":
                header_ns += fault.amount_ns
                touched.append((record, 0))
            else:  # jitter
                shift = round(float(rng.normal(0.0, fault.amount_ns)))
                header_ns += shift
                touched.append((record, shift))
        if lost:  # a lost message is only a loss: record the faults that removed it
            touched = [(r, s) for r, s in touched if r.fault.kind in ("drop", *WINDOW_KINDS)]
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
