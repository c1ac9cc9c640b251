"""The stage contract: what the runner asks of a stage, and what a stage leaves behind.

A stage is any object with a ``name`` and a ``finish()``; what else it can do is told by which
of the small protocols below it satisfies, so a plugin implements only what it needs:

- :class:`NeedsSetup` - ``setup(context)`` before any reading: the log's topics, types and rates,
  the synced topics and the thresholds, so a stage can decide what it wants to see.
- :class:`MessageStage` - ``message_topics`` (read after ``setup``) and ``on_message(msg)``:
  every message of those topics in log-time order, without syncing (rates, latency, freezes).
- :class:`FrameStage` - ``process(frame)``: every synced frame; what it returns (if not None) is
  put in ``frame.outputs[name]`` for the stages after it.

``finish()`` returns a :class:`StageResult`: metrics (long format, one row per value), events
(findings with a time, a severity and their evidence), checks (one line each of the report's
pass/warn/fail table), tables and figures (drawn later, only when a run directory is written).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

    from matplotlib.figure import Figure as MplFigure

    from bagscope.pipeline.timing import StageTimings
    from bagscope.replay.frame import Frame
    from bagscope.replay.framing import FrameStats, StampSource
    from bagscope.replay.log import Log, LogInfo
    from bagscope.replay.message import Message
    from bagscope.replay.sync import SyncPolicy

__all__ = [
    "SEVERITIES",
    "Check",
    "Event",
    "FigureSpec",
    "FrameStage",
    "MessageStage",
    "Metrics",
    "NeedsSetup",
    "RunContext",
    "Severity",
    "Shardable",
    "Stage",
    "StageResult",
    "Status",
    "Table",
    "status_of",
]

Severity = Literal["info", "warning", "error"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "error")
Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One finding: something happened on ``topic`` from ``t_ns`` to ``end_ns`` (log time).

    ``evidence`` holds the numbers that make the finding checkable (the gap's length, the
    measured drift, the threshold it broke) - JSON-ready values only.
    """

    t_ns: int
    end_ns: int
    topic: str | None
    kind: str
    severity: Severity
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    stage: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "t_ns": self.t_ns,
            "end_ns": self.end_ns,
            "topic": self.topic,
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "evidence": dict(self.evidence),
            "stage": self.stage,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        return cls(
            t_ns=int(obj["t_ns"]),
            end_ns=int(obj["end_ns"]),
            topic=obj.get("topic"),
            kind=str(obj["kind"]),
            severity=obj["severity"],
            message=str(obj["message"]),
            evidence=dict(obj.get("evidence") or {}),
            stage=str(obj.get("stage", "")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One line of the pass/warn/fail table: what was measured against which threshold.

    ``value`` and ``threshold`` are display strings in the user's units ("9.98 Hz",
    ">= 9.00 Hz"); the exact numbers live in the metrics and the events' evidence.
    """

    name: str
    topic: str | None
    status: Status
    value: str
    threshold: str
    stage: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "topic": self.topic,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
        }


def status_of(events: Iterable[Event]) -> Status:
    """``fail`` if any event is an error, ``warn`` if any is a warning, else ``pass``."""
    worst: Status = "pass"
    for event in events:
        if event.severity == "error":
            return "fail"
        if event.severity == "warning":
            worst = "warn"
    return worst


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    """A small table for the report (worst frames, per-topic summaries)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FigureSpec:
    """A figure drawn only when a run directory is written (``--no-figures`` skips the cost).

    ``draw`` fills the Matplotlib figure it is given; ``name`` becomes ``figures/<name>.png``.
    """

    name: str
    title: str
    draw: Callable[[MplFigure], None]
    size: tuple[float, float] = (8.0, 3.2)


class Metrics:
    """Metrics in long format (``t_ns``, ``metric``, ``value``, ``topic``, ``label``), columnar.

    ``add`` appends one value; ``extend`` appends a whole series at once (per-message series
    are appended in bulk, never row by row through Python objects). ``t_ns`` None is a summary
    value for the whole run.
    """

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        # (metric, topic, label) -> (times, values); times of -1 mean "whole run"
        self._groups: dict[tuple[str, str | None, str | None], tuple[array[int], array[float]]] = {}

    def _group(
        self, metric: str, topic: str | None, label: str | None
    ) -> tuple[array[int], array[float]]:
        key = (metric, topic, label)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = (array("q"), array("d"))
        return group

    def add(
        self,
        metric: str,
        value: float,
        *,
        t_ns: int | None = None,
        topic: str | None = None,
        label: str | None = None,
    ) -> None:
        times, values = self._group(metric, topic, label)
        times.append(-1 if t_ns is None else t_ns)
        values.append(float(value))

    def extend(
        self,
        metric: str,
        t_ns: Sequence[int] | Any,
        values: Sequence[float] | Any,
        *,
        topic: str | None = None,
        label: str | None = None,
    ) -> None:
        """A series: ``t_ns`` and ``values`` of equal length (lists, arrays or numpy)."""
        times, vals = self._group(metric, topic, label)
        times.extend(int(t) for t in t_ns)
        vals.extend(float(v) for v in values)

    def groups(
        self,
    ) -> Iterable[tuple[tuple[str, str | None, str | None], tuple[array[int], array[float]]]]:
        return self._groups.items()

    def __len__(self) -> int:
        return sum(len(t) for t, _ in self._groups.values())

    def value(self, metric: str, *, topic: str | None = None, label: str | None = None) -> float:
        """The run-wide (``t_ns`` None) value of a metric; KeyError when there is none."""
        times, values = self._groups[(metric, topic, label)]
        for t, v in zip(times, values, strict=True):
            if t == -1:
                return v
        raise KeyError(metric)

    def series(
        self, metric: str, *, topic: str | None = None, label: str | None = None
    ) -> tuple[list[int], list[float]]:
        """The timed values of a metric, in the order they were added."""
        times, values = self._groups.get((metric, topic, label), ((), ()))
        pairs = [(t, v) for t, v in zip(times, values, strict=True) if t != -1]
        return [t for t, _ in pairs], [v for _, v in pairs]


@dataclass(slots=True, kw_only=True)
class StageResult:
    """What a stage leaves behind when the run ends."""

    metrics: Metrics = field(default_factory=Metrics)
    events: list[Event] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureSpec] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RunContext:
    """What a stage may know before (and, through the live parts, while) the log is read.

    ``thresholds`` are this stage's own (from the pipeline file's ``[thresholds.<stage>]`` and
    the stage's parameters). ``frame_stats`` and ``timings`` are filled by the runner as the
    run goes; read them in ``finish()``.
    """

    log: Log
    info: LogInfo
    sync_topics: tuple[str, ...] = ()
    # the policy making the frames (None: messages only) and what it syncs on
    sync: SyncPolicy[Any] | None = None
    stamp_source: StampSource = "header"
    start_ns: int | None = None
    end_ns: int | None = None
    contract: Mapping[str, Any] = field(default_factory=dict)
    frame_stats: Callable[[], FrameStats | None] = lambda: None
    timings: StageTimings | None = None

    @property
    def topic_types(self) -> dict[str, str]:
        return {t.name: t.msgtype for t in self.info.topics}


@runtime_checkable
class Stage(Protocol):
    """Anything the runner can run: a name and a result at the end."""

    name: str

    def finish(self) -> StageResult: ...


@runtime_checkable
class NeedsSetup(Protocol):
    def setup(self, context: RunContext) -> None: ...


@runtime_checkable
class MessageStage(Protocol):
    """Sees every message of ``message_topics`` (as recorded), in log-time order."""

    @property
    def message_topics(self) -> Collection[str]: ...

    def on_message(self, msg: Message) -> None: ...


@runtime_checkable
class FrameStage(Protocol):
    """Sees every synced frame; a non-None return goes into ``frame.outputs[name]``."""

    def process(self, frame: Frame) -> Any | None: ...


@runtime_checkable
class Shardable(Protocol):
    """A stage whose work on a long log can be split into time shards and merged exactly.

    In a shard the stage is set up as for the whole run, sees only the messages and frames
    that shard owns, and hands over ``shard_state()`` (picklable: it travels between
    processes) instead of finishing. A fresh instance, set up the same way, then takes every
    shard's state in time order with ``merge_shards`` and finishes as if it had seen the whole
    log. A stage whose state cannot be merged exactly (a tracker's tracks) is not Shardable
    and runs over the whole log in one piece.
    """

    def shard_state(self) -> Any: ...

    def merge_shards(self, states: Sequence[Any]) -> None: ...
