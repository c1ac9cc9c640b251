"""The recording contract: the topics a pipeline file says a log must hold, checked.

The pipeline file declares, per topic, what a good recording has::

    [contract."/lidar/points"]
    type = "sensor_msgs/msg/PointCloud2"
    min_rate_hz = 9.5
    max_rate_hz = 10.5
    required = true          # the default

The runner hands that mapping over as ``context.contract``. Only counts, times and type names
are used - never payloads - so custom message types need no definitions. On the whole log the
index answers (no message is read); with a ``--start``/``--end`` window the contract's topics
are counted as they stream past.

Event kinds:

- ``contract_missing_topic`` - error: a required topic is absent, or present without messages.
- ``contract_wrong_type`` - error: the topic's type is not the declared one (``pkg/Type`` and
  ``pkg/msg/Type`` are the same type).
- ``contract_rate`` - warning: the rate, ``(count - 1) / span``, is outside
  ``[min_rate_hz, max_rate_hz]``; error when it is below ``error_fraction`` x the minimum or
  above the maximum / ``error_fraction`` (or there are too few messages for a rate at all).

An empty contract gives no checks.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from bagscope.analyzers.findings import skip_check
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, StageResult, status_of
from bagscope.replay.errors import TopicError
from bagscope.replay.rates import rate_hz

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from bagscope.pipeline.stage import RunContext, Severity
    from bagscope.replay.message import Message

__all__ = ["ContractEntry", "RecordingContract", "parse_contract"]

_KEYS = frozenset({"type", "min_rate_hz", "max_rate_hz", "required"})


class ContractEntry:
    """One declared topic: what it must be called, typed and how often it must arrive."""

    __slots__ = ("max_rate_hz", "min_rate_hz", "msgtype", "required", "topic")

    def __init__(
        self,
        *,
        topic: str,
        msgtype: str | None,
        min_rate_hz: float | None,
        max_rate_hz: float | None,
        required: bool,
    ) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self.min_rate_hz = min_rate_hz
        self.max_rate_hz = max_rate_hz
        self.required = required


def normalise_type(name: str) -> str:
    """``sensor_msgs/PointCloud2`` (ROS1 spelling) -> ``sensor_msgs/msg/PointCloud2``."""
    parts = name.strip().split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else name.strip()


def _rate(topic: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"contract for {topic}: {key} must be a number > 0 (Hz), got {value!r}"
        raise BagscopeError(msg)
    return float(value)


def parse_contract(contract: Mapping[str, Any]) -> list[ContractEntry]:
    """Check the pipeline file's contract and return its entries; a mistake is one line."""
    entries = []
    for topic, spec in contract.items():
        if not isinstance(topic, str) or not topic:
            msg = f"contract: topic names must be non-empty strings, got {topic!r}"
            raise BagscopeError(msg)
        table = {} if spec is None else spec
        if not hasattr(table, "items"):
            msg = f"contract for {topic}: expected a table of {', '.join(sorted(_KEYS))}"
            raise BagscopeError(msg)
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            msg = (
                f"contract for {topic}: unknown key {unknown[0]!r}; use {', '.join(sorted(_KEYS))}"
            )
            raise BagscopeError(msg)
        msgtype = table.get("type")
        if msgtype is not None and (not isinstance(msgtype, str) or not msgtype.strip()):
            msg = f"contract for {topic}: type must be a message type name, got {msgtype!r}"
            raise BagscopeError(msg)
        required = table.get("required", True)
        if not isinstance(required, bool):
            msg = f"contract for {topic}: required must be true or false, got {required!r}"
            raise BagscopeError(msg)
        low = _rate(topic, "min_rate_hz", table.get("min_rate_hz"))
        high = _rate(topic, "max_rate_hz", table.get("max_rate_hz"))
        if low is not None and high is not None and low > high:
            msg = f"contract for {topic}: min_rate_hz {low:g} is above max_rate_hz {high:g}"
            raise BagscopeError(msg)
        entries.append(
            ContractEntry(
                topic=topic,
                msgtype=None if msgtype is None else normalise_type(msgtype),
                min_rate_hz=low,
                max_rate_hz=high,
                required=required,
            )
        )
    return entries


class RecordingContract:
    """Every declared topic present, of its declared type, at its declared rate."""

    def __init__(self, *, error_fraction: float = 0.5, name: str | None = None) -> None:
        if not 0 < error_fraction < 1:
            msg = f"parameter error_fraction must be in (0, 1), got {error_fraction!r}"
            raise BagscopeError(msg)
        self.error_fraction = float(error_fraction)
        self.name = name or "contract"
        self._entries: list[ContractEntry] = []
        self._resolved: dict[str, str | None] = {}  # declared -> as recorded (None: absent)
        self._types: dict[str, str] = {}
        self._counts: dict[str, tuple[int, int | None, int | None]] = {}
        self._windowed = False
        self._times: dict[str, array[int]] = {}
        self._span = (0, 0)

    def setup(self, context: RunContext) -> None:
        self._entries = parse_contract(context.contract)
        self._types = context.topic_types
        info = context.info
        self._span = (context.start_ns or info.start_ns, context.end_ns or info.end_ns)
        self._resolved = {}
        for entry in self._entries:
            try:
                self._resolved[entry.topic] = context.log.resolve_topic(entry.topic)
            except TopicError:
                self._resolved[entry.topic] = None
        self._counts = {t.name: (t.count, t.first_ns, t.last_ns) for t in info.topics}
        self._windowed = context.start_ns is not None or context.end_ns is not None
        self._times = (
            {t: array("q") for t in self._resolved.values() if t is not None}
            if self._windowed
            else {}
        )

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(self._times)

    def on_message(self, msg: Message) -> None:
        self._times[msg.topic].append(msg.log_time_ns)

    def finish(self) -> StageResult:
        result = StageResult()
        for entry in self._entries:
            events, checks = self._judge(entry)
            result.events.extend(events)
            result.checks.extend(checks)
            recorded = self._resolved.get(entry.topic)
            count = self._count(recorded)[0] if recorded else 0
            result.metrics.add("messages", count, topic=entry.topic)
        return result

    def _count(self, topic: str) -> tuple[int, int | None, int | None]:
        if self._windowed:
            times = self._times.get(topic, array("q"))
            return (len(times), times[0], times[-1]) if times else (0, None, None)
        return self._counts.get(topic, (0, None, None))

    def _judge(self, entry: ContractEntry) -> tuple[list[Event], list[Check]]:
        topic = self._resolved.get(entry.topic)
        count, first, last = self._count(topic) if topic else (0, None, None)
        t0, t1 = self._span
        if not count:
            if not entry.required:
                return [], [skip_check("present", entry.topic, "absent", threshold="optional")]
            why = "not in the log" if topic is None else "in the log without messages"
            event = Event(
                t_ns=t0,
                end_ns=t1,
                topic=entry.topic,
                kind="contract_missing_topic",
                severity="error",
                message=f"{entry.topic}: required by the contract but {why}",
                evidence={"recorded": topic is not None, "count": 0},
            )
            check = Check(
                name="present",
                topic=entry.topic,
                status="fail",
                value="absent" if topic is None else "0 messages",
                threshold="required",
            )
            return [event], [check]
        assert topic is not None
        checks = [
            Check(
                name="present",
                topic=entry.topic,
                status="pass",
                value=f"{count} messages",
                threshold="required" if entry.required else "optional",
            )
        ]
        events: list[Event] = []
        if entry.msgtype is not None:
            wrong = self._type(entry, topic, t0=first or t0, t1=last or t1)
            events += [wrong] if wrong else []
            checks.append(
                Check(
                    name="type",
                    topic=entry.topic,
                    status=status_of([wrong] if wrong else []),
                    value=self._types.get(topic, "?"),
                    threshold=entry.msgtype,
                )
            )
        if entry.min_rate_hz is not None or entry.max_rate_hz is not None:
            rate = rate_hz(count, first, last) if first is not None and last is not None else None
            off = self._rate(entry, rate=rate, count=count, t0=first or t0, t1=last or t1)
            events += [off] if off else []
            checks.append(
                Check(
                    name="rate",
                    topic=entry.topic,
                    status=status_of([off] if off else []),
                    value="n/a" if rate is None else f"{rate:.2f} Hz",
                    threshold=self._bounds(entry),
                )
            )
        return events, checks

    def _type(self, entry: ContractEntry, topic: str, *, t0: int, t1: int) -> Event | None:
        actual = self._types.get(topic, "")
        if actual == entry.msgtype:
            return None
        return Event(
            t_ns=t0,
            end_ns=t1,
            topic=entry.topic,
            kind="contract_wrong_type",
            severity="error",
            message=f"{entry.topic}: type {actual}, the contract says {entry.msgtype}",
            evidence={"type": actual, "expected": entry.msgtype},
        )

    @staticmethod
    def _bounds(entry: ContractEntry) -> str:
        low, high = entry.min_rate_hz, entry.max_rate_hz
        if low is not None and high is not None:
            return f"{low:g} .. {high:g} Hz"
        return f">= {low:g} Hz" if low is not None else f"<= {high:g} Hz"

    def _rate(
        self, entry: ContractEntry, *, rate: float | None, count: int, t0: int, t1: int
    ) -> Event | None:
        low, high = entry.min_rate_hz, entry.max_rate_hz
        severity: Severity
        if rate is None:
            severity, text = "error", f"{count} message{'s' if count != 1 else ''}: no rate"
        elif low is not None and rate < low:
            severity = "error" if rate < self.error_fraction * low else "warning"
            text = f"{rate:.2f} Hz, below the contract's {low:g} Hz"
        elif high is not None and rate > high:
            severity = "error" if rate > high / self.error_fraction else "warning"
            text = f"{rate:.2f} Hz, above the contract's {high:g} Hz"
        else:
            return None
        return Event(
            t_ns=t0,
            end_ns=t1,
            topic=entry.topic,
            kind="contract_rate",
            severity=severity,
            message=f"{entry.topic}: {text}",
            evidence={
                "rate_hz": rate,
                "count": count,
                "min_rate_hz": low,
                "max_rate_hz": high,
                "error_fraction": self.error_fraction,
            },
        )
