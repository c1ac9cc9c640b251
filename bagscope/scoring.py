"""Score a run's events against the simulator's fault sidecar: the simulator and the analyzers
check each other.

Each injected fault is *found* when an event of a kind that describes it (``FAULT_EVENTS``) is
on the fault's topic and overlaps its time (within ``TOLERANCE_NS``). Every warning or error
event that no fault explains is a *false alarm*: an event explains itself by a fault when it is
on that fault's topic (or names it in its evidence) while the fault is active, whatever its
kind - an outage of the camera legitimately also starves the sync of camera frames. Findings
about the pipeline rather than the log (a detector's misses, a stage over its time budget) are
left out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bagscope.pipeline.stage import Event

__all__ = [
    "FAULT_EVENTS",
    "TOLERANCE_NS",
    "FaultScore",
    "Score",
    "TruthError",
    "read_faults",
    "score",
]

# Which event kinds describe which fault kind (several analyzers may see the same fault).
FAULT_EVENTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "drop": ("drop", "gap"),
        "duplicate": ("duplicate",),
        "reorder": ("out_of_order", "non_monotonic"),
        "corrupt": ("corrupt",),
        "outage": ("gap",),
        "stale_tf": ("tf_gap", "tf_stale", "gap"),
        "delay": ("latency_high", "clock_offset"),
        "jitter": ("stamp_jitter",),
        "clock_offset": ("clock_offset", "stamp_in_future"),
        "drift": ("clock_drift",),
        "zero_stamps": ("zero_stamp",),
        "freeze": ("freeze",),
        "pose_jump": ("pose_jump",),
        "blocked_sector": ("blocked_sector",),
    }
)
# Event times are log (receive) times, fault times true stamps; detectors also need a period
# or two to see that something stopped.
TOLERANCE_NS = 1_000_000_000
# Findings about the pipeline, not the log (a detector's misses, a slow stage): never a fault
# of the recording, so never a false alarm either.
_NOT_ABOUT_THE_LOG = frozenset({"missed_detections", "false_detections", "over_budget"})
# Faults that act on every message of the drive: found anywhere in it.
_WHOLE_DRIVE = frozenset({"delay", "jitter", "clock_offset", "drift"})


class TruthError(BagscopeError):
    """A truth sidecar that cannot be read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: str
    topic: str
    start_ns: int | None
    end_ns: int | None
    stamps_ns: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultScore:
    fault: Fault
    found: bool | None  # None: the fault touched no message (nothing to find)
    event: Event | None
    time_error_ns: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.fault.kind,
            "topic": self.fault.topic,
            "found": self.found,
            "time_error_ns": self.time_error_ns,
            "event": self.event.to_json() if self.event is not None else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    faults: tuple[FaultScore, ...]
    false_alarms: tuple[Event, ...]

    @property
    def found(self) -> int:
        return sum(1 for f in self.faults if f.found)

    @property
    def missed(self) -> int:
        return sum(1 for f in self.faults if f.found is False)

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": [f.to_json() for f in self.faults],
            "found": self.found,
            "missed": self.missed,
            "false_alarms": len(self.false_alarms),
            "false_alarm_events": [e.to_json() for e in self.false_alarms],
        }


def read_faults(path: Path) -> tuple[tuple[Fault, ...], tuple[int, int]]:
    """The faults of a ``.truth.json`` sidecar and the drive's (start, end) in ns."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        start = int(doc["scenario"]["start_ns"])
        end = start + int(doc["scenario"]["duration_ns"])
        faults = tuple(_fault(f, drive=(start, end)) for f in doc["faults"])
    except FileNotFoundError as err:
        msg = f"truth file {path} does not exist"
        raise TruthError(msg) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        msg = f"{path} is not a simulator truth sidecar ({type(err).__name__}: {err})"
        raise TruthError(msg) from err
    return faults, (start, end)


def _fault(obj: Mapping[str, Any], *, drive: tuple[int, int]) -> Fault:
    stamps = tuple(int(s) for s in obj.get("stamps_ns") or ())
    start, end = obj.get("start_ns"), obj.get("end_ns")
    if start is None and "window_ns" in obj:
        start, end = obj["window_ns"]
    if start is None and stamps:
        start, end = min(stamps), max(stamps)
    if obj["kind"] in _WHOLE_DRIVE:
        start, end = drive
    return Fault(
        kind=str(obj["kind"]),
        topic=str(obj["topic"]),
        start_ns=None if start is None else int(start),
        end_ns=None if end is None else int(end),
        stamps_ns=stamps,
    )


def _overlaps(event: Event, fault: Fault) -> bool:
    if fault.start_ns is None or fault.end_ns is None:
        return False
    end = max(event.end_ns, event.t_ns)
    return event.t_ns <= fault.end_ns + TOLERANCE_NS and end >= fault.start_ns - TOLERANCE_NS


def _on_topic(event: Event, fault: Fault) -> bool:
    if event.topic == fault.topic:
        return True
    return any(
        fault.topic == v or (isinstance(v, list | tuple) and fault.topic in v)
        for v in event.evidence.values()
    )


def _time_error(event: Event, fault: Fault) -> int | None:
    if fault.kind in _WHOLE_DRIVE:
        return None
    if fault.stamps_ns and fault.kind not in ("outage", "stale_tf", "freeze", "blocked_sector"):
        return min(abs(event.t_ns - s) for s in fault.stamps_ns)
    return abs(event.t_ns - fault.start_ns) if fault.start_ns is not None else None


def score(events: Sequence[Event], faults: Sequence[Fault]) -> Score:
    """Match ``events`` (a run's) to ``faults`` (the sidecar's)."""
    results = []
    for fault in faults:
        if fault.start_ns is None:
            results.append(FaultScore(fault=fault, found=None, event=None, time_error_ns=None))
            continue
        kinds = FAULT_EVENTS.get(fault.kind, ())
        matches = [
            e for e in events if e.kind in kinds and _on_topic(e, fault) and _overlaps(e, fault)
        ]
        best = min(matches, key=lambda e: _time_error(e, fault) or 0, default=None)
        results.append(
            FaultScore(
                fault=fault,
                found=best is not None,
                event=best,
                time_error_ns=_time_error(best, fault) if best is not None else None,
            )
        )
    explained = [f for f in faults if f.start_ns is not None]
    false_alarms = tuple(
        e
        for e in events
        if e.severity in ("warning", "error")
        and e.kind not in _NOT_ABOUT_THE_LOG
        and not any(_on_topic(e, f) and _overlaps(e, f) for f in explained)
    )
    return Score(faults=tuple(results), false_alarms=false_alarms)
