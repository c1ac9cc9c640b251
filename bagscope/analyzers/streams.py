"""What the message analyzers (topic health, latency, timestamps, freeze) share: how a topic
says when it was measured, which connections are one stream, its cadence, where its stamps step
back, and exact integer statistics of nanosecond times.

Stamps are read from the bytes (the header, or a TF message's first transform), never by
deserialising: these analyzers run on every message of a log and must cost next to nothing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.replay.errors import DecodeError
from bagscope.replay.timeparse import format_seconds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from numpy.typing import NDArray

    from bagscope.replay.log import Log
    from bagscope.replay.message import Message

__all__ = [
    "NO_STAMP",
    "RELAYED_TYPES",
    "TF_TYPES",
    "Cadence",
    "backsteps",
    "cadence",
    "check_positive",
    "group_times",
    "header_stamp",
    "int_median",
    "ms",
    "since_start",
    "stamp_reader",
    "stream_map",
]

NO_STAMP = -1  # the message has no readable stamp (no header, corrupt, empty TF)
# Relayed topics carry the stamps of many nodes' events, not of one measurement stream.
RELAYED_TYPES = frozenset(
    {
        "rosgraph_msgs/msg/Log",
        "rcl_interfaces/msg/Log",
        "diagnostic_msgs/msg/DiagnosticArray",
    }
)
TF_TYPES = frozenset({"tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"})
_U32 = {True: struct.Struct("<I"), False: struct.Struct(">I")}
_TIME = {True: struct.Struct("<iI"), False: struct.Struct(">iI")}
_ROS1_TF = struct.Struct("<I4xII")  # transforms count, [0].header.seq (skipped), stamp
_NS = 1_000_000_000


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A threshold parameter must be a positive number; say which one is not, in one line."""
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, int | float) and ok and np.isfinite(value)):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"parameter {name} must be a number {bound}, got {value!r}"
        raise BagscopeError(msg)
    return float(value)


def header_stamp(msg: Message) -> int:
    try:
        stamp = msg.header_stamp_ns
    except DecodeError:
        return NO_STAMP
    return NO_STAMP if stamp is None else stamp


def _tf_stamp_cdr(msg: Message) -> int:
    """The first transform's stamp: after the encapsulation and the array's length."""
    data = msg.data
    if len(data) < 16:
        return NO_STAMP
    little = bool(data[1] & 1)
    if not _U32[little].unpack_from(data, 4)[0]:
        return NO_STAMP
    sec, nsec = _TIME[little].unpack_from(data, 8)
    return int(sec) * _NS + int(nsec)


def _tf_stamp_ros1(msg: Message) -> int:
    data = msg.data
    if len(data) < 16:
        return NO_STAMP
    count, sec, nsec = _ROS1_TF.unpack_from(data, 0)
    return int(sec) * _NS + int(nsec) if count else NO_STAMP


def stamp_reader(log: Log, topic: str) -> Callable[[Message], int] | None:
    """How ``topic``'s messages say when they were measured: their header, the first
    transform of a TF message, or not at all (None). Read from the bytes, never decoded."""
    conns = log.connections([topic])
    if not conns:
        return None
    conn = conns[0]
    try:
        if log.types.starts_with_header(conn.msgtype, conn.serialization):
            return header_stamp
    except Exception:
        return None
    if conn.msgtype in TF_TYPES:
        return _tf_stamp_ros1 if conn.serialization == "ros1" else _tf_stamp_cdr
    return None


def stream_map(log: Log, topics: Iterable[str]) -> tuple[dict[int, int], list[str]]:
    """Connection id -> stream index, and each stream's topic.

    A topic is one stream, across split files too - unless one file holds several connections
    of it (ROS1 records one per publisher, e.g. two nodes on ``/diagnostics``): then each
    publisher is its own stream, since order and duplicates only mean something per publisher.
    """
    index: dict[int, int] = {}
    topics_of: list[str] = []
    for topic in topics:
        conns = log.connections([topic])
        per_file: dict[object, int] = {}
        for conn in conns:
            per_file[conn.path] = per_file.get(conn.path, 0) + 1
        if max(per_file.values(), default=1) > 1:
            for conn in conns:
                index[conn.id] = len(topics_of)
                topics_of.append(topic)
        else:
            stream = len(topics_of)
            topics_of.append(topic)
            for conn in conns:
                index[conn.id] = stream
    return index, topics_of


@dataclass(frozen=True, slots=True, kw_only=True)
class Cadence:
    """A topic's nominal period and how regular it is, by receive time or by stamps."""

    period_ns: int
    regular: float  # fraction of intervals within the tolerance of the period
    source: Literal["log", "stamp"]
    periodic: bool


# A lossy periodic stream is still periodic: an interval of 2 or 3 periods is a message or two
# missing from the cadence, not irregularity. Beyond that it is a gap, which irregular topics
# also have, so it does not count for the cadence.
_MISSED_MULTIPLES = 3
# ... but at least this share of the intervals must be single periods.
_MIN_SINGLE = 0.5


def _regularity(times: NDArray[np.int64], tolerance: float) -> tuple[int, float]:
    """The median interval and the share of intervals that fit a cadence of it."""
    steps = np.diff(times)
    steps = steps[steps > 0]
    if steps.size == 0:
        return 0, 0.0
    period = int(np.median(steps))
    if period == 0:
        return 0, 0.0
    ratio = steps / period
    multiple = np.rint(ratio)
    fits = np.abs(ratio - multiple) <= tolerance
    single = float(np.mean(fits & (multiple == 1)))
    if single < _MIN_SINGLE:
        return period, single
    return period, float(np.mean(fits & (multiple >= 1) & (multiple <= _MISSED_MULTIPLES)))


def cadence(
    log_times: NDArray[np.int64],
    stamps: NDArray[np.int64] | None,
    *,
    min_messages: int = 10,
    tolerance: float = 0.25,
    regular_fraction: float = 0.75,
) -> Cadence | None:
    """Whether a topic is periodic, and its period: by sorted receive times, or by its sorted
    distinct valid stamps where those are more regular (reordered or bursty delivery does not
    disturb them). None when there are fewer than two distinct times."""
    period, regular = _regularity(np.sort(log_times), tolerance)
    source: Literal["log", "stamp"] = "log"
    if stamps is not None:
        valid = np.unique(stamps[stamps > 0])
        if valid.size >= 2:
            s_period, s_regular = _regularity(valid, tolerance)
            if s_period and s_regular > regular:
                period, regular, source = s_period, s_regular, "stamp"
    if not period:
        return None
    periodic = log_times.size >= min_messages and regular >= regular_fraction
    return Cadence(period_ns=period, regular=regular, source=source, periodic=periodic)


def backsteps(
    stamps: NDArray[np.int64], *, min_back_ns: int
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.bool_]]:
    """Where a stream's stamps (in arrival order, valid ones only) step back by at least
    ``min_back_ns``: the index, how far back, and whether the stream *resumes* after it (the
    next stamp is not below the one before the step: a late delivery) or stays back (a clock
    that jumped back)."""
    if stamps.size < 2:
        empty = np.zeros(0, dtype=np.intp)
        return empty, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    back = stamps[:-1] - stamps[1:]
    idx = np.flatnonzero(back >= max(min_back_ns, 1)) + 1
    nxt = np.minimum(idx + 1, stamps.size - 1)
    resumes = (idx == stamps.size - 1) | (stamps[nxt] >= stamps[idx - 1])
    return idx, back[idx - 1], resumes


def int_median(values: NDArray[np.int64]) -> int:
    """The median of int64 nanoseconds, exactly (a float median of epoch times loses ~200 ns)."""
    ordered = np.sort(values)
    mid = ordered.size // 2
    if ordered.size % 2:
        return int(ordered[mid])
    return (int(ordered[mid - 1]) + int(ordered[mid])) // 2


def group_times(times: NDArray[np.int64], merge_ns: int) -> list[tuple[int, int]]:
    """Index ranges [start, end) of sorted ``times`` where neighbours are within ``merge_ns``."""
    if times.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(times) > merge_ns) + 1
    starts = [0, *breaks.tolist()]
    ends = [*breaks.tolist(), int(times.size)]
    return list(zip(starts, ends, strict=True))


def since_start(t_ns: int, origin_ns: int) -> str:
    """A log time as seconds since the log's start, for messages: ``12.345 s``."""
    return f"{format_seconds(t_ns - origin_ns)} s"


def ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms"
