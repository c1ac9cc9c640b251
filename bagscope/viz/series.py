"""Numeric time series read out of any message field: ``/imu.linear_acceleration.x``.

A series names a topic and a path into its messages (``TOPIC.FIELD.PATH``, with ``[i]`` for
array elements). The path is checked against the message *type* before a byte is read, so a
typo fails at once and names the fields that do exist, instead of after a long pass over the
log; then every topic is read in one pass, whatever the number of series.

Times: with ``time="header"`` each sample takes the stamp of the nearest header on the way
to the value (``/tf.transforms[0]...`` uses that transform's own header, as TF does), else
the log time; types without any header always use the log time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bagscope.errors import BagscopeError
from bagscope.replay.decode.stamp import stamp_to_ns
from bagscope.replay.errors import TopicError
from bagscope.replay.timeparse import format_epoch
from bagscope.replay.topics import resolve_topic

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from bagscope.replay.log import Log

__all__ = ["FieldPath", "Series", "SeriesError", "collect_series", "parse_field_path"]

TimeSource = Literal["header", "log"]
HEADER = "std_msgs/msg/Header"
NUMERIC = frozenset(
    {
        "bool",
        "byte",
        "char",
        "octet",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float32",
        "float64",
    }
)
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+)\]")
# Node kinds of rosbags' field definitions (rosbags.interfaces.Nodetype), by value.
_BASE, _NAME, _ARRAY, _SEQUENCE = 1, 2, 3, 4

# Units by the field names on the path, deepest first: enough for the common sensor types.
_UNITS = {
    "linear_acceleration": "m/s²",
    "angular_velocity": "rad/s",
    "translation": "m",
    "position": "m",
    "ranges": "m",
    "range": "m",
    "range_min": "m",
    "range_max": "m",
    "altitude": "m",
    "latitude": "°",
    "longitude": "°",
    "temperature": "°C",
    "fluid_pressure": "Pa",
    "illuminance": "lx",
    "angle_min": "rad",
    "angle_max": "rad",
    "angle_increment": "rad",
    "time_increment": "s",
    "scan_time": "s",
    "nanosec": "ns",
}


class SeriesError(BagscopeError):
    """A series the log cannot give: bad path syntax, no such field, not a number, no data."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed ``TOPIC.FIELD.PATH``: ``steps`` are attribute names (str) and indices (int)."""

    spec: str
    topic: str
    steps: tuple[str | int, ...]

    @property
    def field(self) -> str:
        """The path without the topic: ``linear_acceleration.x``, ``ranges[10]``."""
        return _suffix(self.steps).removeprefix(".")


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One field over time: ``times_ns`` (int64, absolute) and ``values`` (float64).

    ``time_source`` says which clock the times are on ("header" or "log"); ``unit`` is a
    guess from the field names (None when unknown), used only to label axes.
    """

    name: str
    topic: str
    field: str
    msgtype: str
    times_ns: NDArray[np.int64]
    values: NDArray[np.float64]
    time_source: TimeSource
    unit: str | None = None

    def __len__(self) -> int:
        return len(self.values)


def parse_field_path(spec: str, topics: Sequence[str]) -> FieldPath:
    """Split ``spec`` into the longest prefix that is a topic of the log and a field path.

    Topics are matched under either spelling (leading slash or not); an unknown topic is a
    TopicError with the closest name, a path that does not parse a SeriesError.
    """
    cuts = sorted({i for i, ch in enumerate(spec) if ch in ".["} | {len(spec)}, reverse=True)
    for cut in cuts:
        try:
            topic = resolve_topic(spec[:cut], topics)
        except TopicError:
            continue
        return FieldPath(spec=spec, topic=topic, steps=_parse_steps(spec, spec[cut:]))
    first = min(cuts)
    resolve_topic(spec[:first], topics)  # raises the TopicError with its suggestion
    raise AssertionError  # pragma: no cover -- resolve_topic raised above


def _parse_steps(spec: str, rest: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    pos = 0
    for match in _STEP.finditer(rest):
        if match.start() != pos:
            break
        name, index = match.groups()
        steps.append(name if name is not None else int(index))
        pos = match.end()
    if pos != len(rest):
        msg = (
            f"cannot read the field path in {spec!r} at {rest[pos:]!r}; write TOPIC.FIELD.PATH "
            "with [N] for array elements, e.g. /imu.linear_acceleration.x or /scan.ranges[10]"
        )
        raise SeriesError(msg)
    return tuple(steps)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to read one path from one message type: after ``header_at`` steps (None: never)
    the object in hand has the header whose stamp times the sample."""

    header_at: int | None


def _describe(node: tuple[int, Any]) -> str:
    kind, detail = int(node[0]), node[1]
    if kind == _BASE:
        return f"a {detail[0]}"
    if kind == _NAME:
        return f"a {detail} message"
    inner, length = detail
    element = inner[1] if int(inner[0]) == _NAME else _describe(inner).removeprefix("a ")
    if kind == _ARRAY:
        return f"an array of {length} × {element}"
    return f"a sequence of {element}"


def _fields(store: Any, msgtype: str) -> list[tuple[str, tuple[int, Any]]]:
    return list(store.fielddefs[msgtype][1])


def _plan(path: FieldPath, store: Any, msgtype: str) -> _Plan:
    """Check ``path`` against ``msgtype``'s definition and find the header that times it."""
    node: tuple[int, Any] = (_NAME, msgtype)
    header_at: int | None = None
    done = path.topic
    for i, step in enumerate(path.steps):
        kind, detail = int(node[0]), node[1]
        if isinstance(step, str):
            if kind in (_ARRAY, _SEQUENCE) and int(detail[0][0]) == _NAME:
                msg = (
                    f"{path.spec!r}: {done} is {_describe(node)}; pick an element first, "
                    f"e.g. {done}[0].{step}"
                )
                raise SeriesError(msg)
            if kind != _NAME:
                msg = f"{path.spec!r}: {done} is {_describe(node)}, it has no field {step!r}"
                raise SeriesError(msg)
            fields = _fields(store, detail)
            if any(n == "header" and f[1] == HEADER for n, f in fields):
                header_at = i
            found = dict(fields).get(step)
            if found is None:
                names = ", ".join(n for n, _ in fields)
                msg = f"{path.spec!r}: no field {step!r} in {detail}; fields: {names}"
                raise SeriesError(msg)
            node = found
            done += f".{step}"
        else:
            if kind not in (_ARRAY, _SEQUENCE):
                msg = (
                    f"{path.spec!r}: {done} is {_describe(node)}, not an array; it has no [{step}]"
                )
                raise SeriesError(msg)
            inner, length = detail
            if kind == _ARRAY and not -length <= step < length:
                msg = f"{path.spec!r}: index {step} is out of range for {done} ({_describe(node)})"
                raise SeriesError(msg)
            node = inner
            done += f"[{step}]"
    kind, detail = int(node[0]), node[1]
    if kind == _BASE and detail[0] in NUMERIC:
        return _Plan(header_at=header_at)
    what = f"{path.spec!r} is {_describe(node)}, not a number"
    if kind == _NAME:
        names = ", ".join(n for n, _ in _fields(store, detail))
        if not path.steps:
            what = f"{path.spec!r} names a topic ({detail}) but no field"
        raise SeriesError(f"{what}; pick one of its fields: {names}")
    if kind in (_ARRAY, _SEQUENCE):
        raise SeriesError(f"{what}; pick one element, e.g. {path.spec}[0]")
    raise SeriesError(what)


def unit_of(path: FieldPath) -> str | None:
    """The unit the field names suggest (``twist.linear.x`` is m/s), or None."""
    names = [s for s in path.steps if isinstance(s, str)]
    if "twist" in names:
        if "linear" in names:
            return "m/s"
        if "angular" in names:
            return "rad/s"
    for name in reversed(names):
        if name in _UNITS:
            return _UNITS[name]
    if names[-2:] == ["stamp", "sec"]:
        return "s"
    return None


def collect_series(
    log: Log,
    specs: Sequence[str],
    *,
    time: TimeSource = "header",
    start: int | None = None,
    end: int | None = None,
) -> list[Series]:
    """One `Series` per spec, in the order given, from one pass over the topics they name.

    ``start``/``end`` bound the log time (ns, absolute, end exclusive). Every path is checked
    against its type first; a sequence index beyond a message's length, or a series without
    a single message in the window, is a SeriesError.
    """
    if time not in ("header", "log"):
        msg = f"time must be 'header' or 'log', not {time!r}"
        raise SeriesError(msg)
    known = log.topics
    paths = [parse_field_path(spec, known) for spec in specs]
    plans: dict[tuple[int, str], _Plan] = {}
    msgtypes: dict[str, str] = {}
    for i, path in enumerate(paths):
        for conn in log.connections([path.topic]):
            if (i, conn.msgtype) in plans:
                continue
            store = log.types.store_for(conn.msgtype, conn.serialization)
            if store is None:
                msg = (
                    f"message type {conn.msgtype!r} on {path.topic} has no definition in the "
                    "log or the typestore; pass --msg-path DIR with its .msg/.idl files"
                )
                raise SeriesError(msg)
            plans[i, conn.msgtype] = _plan(path, store, conn.msgtype)
            msgtypes.setdefault(path.topic, conn.msgtype)
    by_topic: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        by_topic.setdefault(path.topic, []).append(i)
    times: list[list[int]] = [[] for _ in paths]
    values: list[list[float]] = [[] for _ in paths]
    for message in log.messages(start, end, topics=list(by_topic)):
        payload = message.payload
        for i in by_topic[message.topic]:
            plan = plans[i, message.msgtype]
            value, stamped = _read(paths[i], plan, payload, log_time_ns=message.log_time_ns)
            stamp = stamped.header.stamp if time == "header" and stamped is not None else None
            times[i].append(stamp_to_ns(stamp) if stamp is not None else message.log_time_ns)
            values[i].append(value)
    out = []
    for i, path in enumerate(paths):
        if not values[i]:
            where = "in the window" if start is not None or end is not None else "in the log"
            msg = f"{path.spec!r}: no messages on {path.topic} {where}"
            raise SeriesError(msg)
        timed = time == "header" and any(
            plans[key].header_at is not None for key in plans if key[0] == i
        )
        out.append(
            Series(
                name=path.spec,
                topic=path.topic,
                field=path.field,
                msgtype=msgtypes[path.topic],
                times_ns=np.asarray(times[i], dtype=np.int64),
                values=np.asarray(values[i], dtype=np.float64),
                time_source="header" if timed else "log",
                unit=unit_of(path),
            )
        )
    return out


def _read(path: FieldPath, plan: _Plan, payload: object, *, log_time_ns: int) -> tuple[float, Any]:
    """The value at ``path`` in ``payload`` and the object whose header times it (or None)."""
    obj: Any = payload
    stamped: Any = None
    for i, step in enumerate(path.steps):
        if i == plan.header_at:
            stamped = obj
        if isinstance(step, str):
            obj = getattr(obj, step)
            continue
        try:
            obj = obj[step]
        except IndexError:
            done = path.topic + _suffix(path.steps[:i])
            count = f"{len(obj)} element" + ("" if len(obj) == 1 else "s")
            msg = (
                f"{path.spec!r}: index {step} is out of range in the message logged at "
                f"{format_epoch(log_time_ns)} s ({done} has {count})"
            )
            raise SeriesError(msg) from None
    return float(obj), stamped


def _suffix(steps: Sequence[str | int]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
