"""Comparing two runs of the same log: what got better, what got worse, what is new.

A change to a pipeline (a threshold, a model, a new release of bagscope) is judged by running
it over the same log as before and comparing the two run directories. Only the run
directories are read (``run.json``, ``metrics.parquet``, ``events.jsonl``, ``report.json``
and the figures), never the log, so last month's run compares with today's.

Three things are compared:

- the run-wide metrics (``t_ns`` null in ``metrics.parquet``), joined on
  (stage, metric, topic, label): value A, value B, their difference, and whether it went the
  good or the bad way for that kind of metric (:func:`direction_of`);
- the events, matched by (kind, topic) and time (±1 s): new ones (in B only) and resolved
  ones (in A only);
- the figures both runs drew, for the page's side-by-side view.

A *regression* is a metric that moved the bad way by more than its threshold (5 % relative
unless told otherwise), or a new warning or error event. Runs over different logs are refused
unless asked for: their differences say more about the logs than about the pipeline.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bagscope.errors import BagscopeError
from bagscope.pipeline.rundir import RunDir, RunDirError, load_run
from bagscope.pipeline.stage import SEVERITIES, Event

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DEFAULT_THRESHOLD",
    "EVENT_SLOP_NS",
    "BatchComparison",
    "CompareError",
    "Comparison",
    "FigurePair",
    "MetricDelta",
    "Threshold",
    "compare_paths",
    "compare_runs",
    "direction_of",
    "parse_thresholds",
]

Better = Literal["higher", "lower", "neutral"]
Direction = Literal["better", "worse", "changed", "same", "only_a", "only_b"]

EVENT_SLOP_NS = 1_000_000_000  # events of A and B this close in time are the same finding


class CompareError(BagscopeError):
    """Two runs that cannot be compared (different logs, bad threshold, nothing to pair)."""


# -- which way is better -----------------------------------------------------------------------

# Exact names first: a few ``*_ms`` metrics are settings or properties of the stream (the
# frame budget, a nominal period, a clock offset), not costs, so a change is just a change.
_NEUTRAL = frozenset(
    {
        "budget_ms",
        "period_ms",
        "interval_median_ms",
        "offset_ms",
        "rate_hz",
        "messages",
        "samples",
        "sweeps",
        "points_median",
        "message_calls",
        "truth_messages",
        "drift_ppm",
    }
)
_HIGHER = frozenset(
    {
        "precision",
        "recall",
        "f1",
        "f1_max",
        "ap",
        "map",
        "tp",
        "frames",
        "frames_scored",
        "regular_fraction",
        "target_frame_known",
    }
)
_LOWER = frozenset(
    {
        "fp",
        "fn",
        "missed",
        "gaps",
        "drops",
        "dropped",
        "dropped_share",
        "drop_ratio",
        "duplicates",
        "corrupt",
        "truth_corrupt",
        "undecodable",
        "errors",
        "out_of_order",
        "repeats",
        "repeat_ratio",
        "implausible_stamps",
        "seq_missing",
        "truth_unpaired",
        "frames_over_skew",
    }
)
# Patterns for the names the sets above do not list: costs (time, misses) and scores.
_LOWER_PATTERNS = (
    re.compile(r"^latency"),
    re.compile(r"_(ms|us|ns|s)$"),
    re.compile(r"_ms_"),
    re.compile(r"_us_per_call$"),
    re.compile(r"(^|_)(errors?|corrupt|drops?|dropped|gaps?|missing|missed)($|_)"),
    re.compile(r"^frames_without_"),
    re.compile(r"^nan_ratio"),
)
_HIGHER_PATTERNS = (re.compile(r"^(precision|recall|f1|ap|map)(_|@|$)"),)


def direction_of(metric: str) -> Better:
    """Which way is good for ``metric``: "higher", "lower", or "neutral" (just a change).

    Names are matched exactly first, then by pattern (``latency*``, ``*_ms``, ``*errors*``:
    lower; ``precision*``, ``recall*``: higher). A metric nobody classified is neutral, so a
    new stage's metrics show as changes rather than invented regressions.
    """
    if metric in _NEUTRAL:
        return "neutral"
    if metric in _HIGHER:
        return "higher"
    if metric in _LOWER:
        return "lower"
    if any(p.search(metric) for p in _HIGHER_PATTERNS):
        return "higher"
    if any(p.search(metric) for p in _LOWER_PATTERNS):
        return "lower"
    return "neutral"


# -- thresholds --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Threshold:
    """How far a metric may move before it counts: relative (a fraction of A) or absolute."""

    value: float
    relative: bool = True

    def exceeded(self, a: float, b: float) -> bool:
        """Whether going from ``a`` to ``b`` moves further than this threshold allows."""
        change = abs(b - a)
        if not self.relative:
            return change > self.value
        if a == 0:
            return change > 0  # any change from zero is infinitely many percent
        return change / abs(a) > self.value

    def __str__(self) -> str:
        if self.relative:
            return f"{_num(self.value * 100)}%"
        return f"±{_num(self.value)}"


DEFAULT_THRESHOLD = Threshold(0.05)


def parse_thresholds(specs: Iterable[str]) -> dict[str, Threshold]:
    """``metric=5%`` (relative) or ``metric=0.02`` (absolute), by metric name or
    ``stage.metric``; ``*=10%`` replaces the default. A malformed one is a one-line error."""
    out: dict[str, Threshold] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            msg = f"--threshold {spec!r}: expected METRIC=5% or METRIC=0.02"
            raise CompareError(msg)
        relative = raw.endswith("%")
        try:
            value = float(raw.removesuffix("%"))
        except ValueError:
            msg = f"--threshold {spec!r}: {raw!r} is not a number or a percentage"
            raise CompareError(msg) from None
        if not math.isfinite(value) or value < 0:
            msg = f"--threshold {spec!r}: the threshold must be a non-negative number"
            raise CompareError(msg)
        out[name] = Threshold(value / 100 if relative else value, relative=relative)
    return out


def _threshold_for(stage: str, metric: str, thresholds: Mapping[str, Threshold]) -> Threshold:
    """``stage.metric`` wins over ``metric``, which wins over ``*``, then the default."""
    for key in (f"{stage}.{metric}", metric, "*"):
        if key in thresholds:
            return thresholds[key]
    return DEFAULT_THRESHOLD


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDelta:
    """One run-wide metric in both runs (``a`` or ``b`` None when one run lacks it)."""

    stage: str
    metric: str
    topic: str | None
    label: str | None
    a: float | None
    b: float | None
    better: Better
    direction: Direction
    threshold: Threshold
    regression: bool
    improvement: bool

    @property
    def delta(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def relative(self) -> float | None:
        """``(b - a) / |a|``; None without both values or when ``a`` is zero."""
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / abs(self.a)

    @property
    def rank(self) -> int:
        """Sort order: regressions, improvements, other moves, one-sided, unchanged."""
        if self.regression:
            return 0
        if self.improvement:
            return 1
        return {"worse": 2, "changed": 3, "better": 4, "only_b": 5, "only_a": 6}.get(
            self.direction, 7
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "metric": self.metric,
            "topic": self.topic,
            "label": self.label,
            "a": _finite(self.a),
            "b": _finite(self.b),
            "delta": _finite(self.delta),
            "relative": _finite(self.relative),
            "better": self.better,
            "direction": self.direction,
            "threshold": str(self.threshold),
            "regression": self.regression,
            "improvement": self.improvement,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FigurePair:
    """A figure both runs drew: its PNG in A and in B (absolute paths)."""

    stage: str
    name: str
    title: str
    a: Path
    b: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "name": self.name,
            "title": self.title,
            "a": str(self.a),
            "b": str(self.b),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Run B against run A."""

    a: Path
    b: Path
    same_log: bool
    a_start_ns: int
    b_start_ns: int
    metrics: list[MetricDelta]
    new_events: list[Event]
    resolved_events: list[Event]
    figures: list[FigurePair]
    verdicts: tuple[str, str] = ("pass", "pass")
    complete: tuple[bool, bool] = (True, True)
    log_names: tuple[str, str] = ("", "")

    @property
    def metric_regressions(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.regression]

    @property
    def improvements(self) -> list[MetricDelta]:
        return [m for m in self.metrics if m.improvement]

    @property
    def event_regressions(self) -> list[Event]:
        """New warnings and errors: a finding the old run did not have."""
        return [e for e in self.new_events if e.severity in ("warning", "error")]

    @property
    def regressions(self) -> int:
        return len(self.metric_regressions) + len(self.event_regressions)

    def verdict_line(self) -> str:
        return (
            f"{_plural(self.regressions, 'regression')}, "
            f"{_plural(len(self.improvements), 'improvement')}, "
            f"{_plural(len(self.new_events), 'new event')}, "
            f"{len(self.resolved_events)} resolved"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "a": str(self.a),
            "b": str(self.b),
            "same_log": self.same_log,
            "verdicts": {"a": self.verdicts[0], "b": self.verdicts[1]},
            "complete": {"a": self.complete[0], "b": self.complete[1]},
            "summary": {
                "regressions": self.regressions,
                "metric_regressions": len(self.metric_regressions),
                "event_regressions": len(self.event_regressions),
                "improvements": len(self.improvements),
                "new_events": len(self.new_events),
                "resolved_events": len(self.resolved_events),
                "new_by_severity": _by_severity(self.new_events),
                "resolved_by_severity": _by_severity(self.resolved_events),
            },
            "verdict": self.verdict_line(),
            "metrics": [m.to_json() for m in self.metrics],
            "new_events": [e.to_json() for e in self.new_events],
            "resolved_events": [e.to_json() for e in self.resolved_events],
            "figures": [f.to_json() for f in self.figures],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchComparison:
    """Two batch folders: their runs paired by log digest, plus the runs left unpaired."""

    pairs: list[Comparison]
    only_a: list[Path] = field(default_factory=list)
    only_b: list[Path] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return sum(p.regressions for p in self.pairs)

    def verdict_line(self) -> str:
        improvements = sum(len(p.improvements) for p in self.pairs)
        new = sum(len(p.new_events) for p in self.pairs)
        resolved = sum(len(p.resolved_events) for p in self.pairs)
        return (
            f"{_plural(self.regressions, 'regression')}, "
            f"{_plural(improvements, 'improvement')}, "
            f"{_plural(new, 'new event')}, {resolved} resolved "
            f"over {_plural(len(self.pairs), 'pair')} of runs"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": [p.to_json() for p in self.pairs],
            "only_a": [str(p) for p in self.only_a],
            "only_b": [str(p) for p in self.only_b],
            "regressions": self.regressions,
            "verdict": self.verdict_line(),
        }


# -- comparing ---------------------------------------------------------------------------------


def compare_paths(
    a: Path,
    b: Path,
    *,
    thresholds: Mapping[str, Threshold] | None = None,
    allow_different_logs: bool = False,
) -> Comparison | BatchComparison:
    """Two run directories, or two batch folders (``runs/*/run.json``) paired by log."""
    a, b = Path(a), Path(b)
    batch_a, batch_b = _is_batch(a), _is_batch(b)
    if batch_a and batch_b:
        return _compare_batches(a, b, thresholds=thresholds or {})
    if batch_a != batch_b:
        batch, single = (a, b) if batch_a else (b, a)
        msg = f"cannot compare the batch folder {batch} with the run directory {single}"
        raise CompareError(msg)
    return compare_runs(
        load_run(a), load_run(b), thresholds=thresholds, allow_different_logs=allow_different_logs
    )


def compare_runs(
    a: RunDir,
    b: RunDir,
    *,
    thresholds: Mapping[str, Threshold] | None = None,
    allow_different_logs: bool = False,
) -> Comparison:
    """Run ``b`` against run ``a`` (see the module's docstring for what is compared)."""
    same_log = a.run.get("log_digest") == b.run.get("log_digest")
    if not same_log and not allow_different_logs:
        msg = (
            f"{a.path} and {b.path} are runs over different logs "
            "(log_digest differs); pass --allow-different-logs to compare them anyway"
        )
        raise CompareError(msg)
    a_start, b_start = _log_start(a), _log_start(b)
    new, resolved = match_events(_events(a), _events(b), a_start_ns=a_start, b_start_ns=b_start)
    return Comparison(
        a=a.path,
        b=b.path,
        same_log=same_log,
        a_start_ns=a_start,
        b_start_ns=b_start,
        metrics=diff_metrics(_summary_metrics(a), _summary_metrics(b), thresholds or {}),
        new_events=new,
        resolved_events=resolved,
        figures=_figure_pairs(a, b),
        verdicts=(a.verdict, b.verdict),
        complete=(a.complete, b.complete),
        log_names=(_log_name(a), _log_name(b)),
    )


MetricKey = tuple[str, str, "str | None", "str | None"]


def diff_metrics(
    a: Mapping[MetricKey, float],
    b: Mapping[MetricKey, float],
    thresholds: Mapping[str, Threshold],
) -> list[MetricDelta]:
    """Every metric of either side, judged, sorted regressions first."""
    rows = []
    for key in sorted(a.keys() | b.keys(), key=lambda k: tuple(x or "" for x in k)):
        stage, metric, topic, label = key
        va, vb = a.get(key), b.get(key)
        better = direction_of(metric)
        threshold = _threshold_for(stage, metric, thresholds)
        direction, beyond = _judge(va, vb, better=better, threshold=threshold)
        rows.append(
            MetricDelta(
                stage=stage,
                metric=metric,
                topic=topic,
                label=label,
                a=va,
                b=vb,
                better=better,
                direction=direction,
                threshold=threshold,
                regression=beyond and direction == "worse",
                improvement=beyond and direction == "better",
            )
        )
    rows.sort(key=lambda m: m.rank)  # stable: the key order stays within a rank
    return rows


def _judge(
    a: float | None, b: float | None, *, better: Better, threshold: Threshold
) -> tuple[Direction, bool]:
    """(direction, moved beyond the threshold)."""
    if b is None:
        return "only_a", False
    if a is None:
        return "only_b", False
    if a == b or (math.isnan(a) and math.isnan(b)):
        return "same", False
    if math.isnan(a) or math.isnan(b):
        return "changed", True  # a value appearing or vanishing: no direction to judge
    if better == "neutral":
        return "changed", threshold.exceeded(a, b)
    up = b > a
    direction: Direction = "better" if up == (better == "higher") else "worse"
    return direction, threshold.exceeded(a, b)


def match_events(
    a: Sequence[Event],
    b: Sequence[Event],
    *,
    a_start_ns: int = 0,
    b_start_ns: int = 0,
    slop_ns: int = EVENT_SLOP_NS,
) -> tuple[list[Event], list[Event]]:
    """(new: in ``b`` only, resolved: in ``a`` only).

    Events match when their (kind, topic) agree and their spans, widened by ``slop_ns`` on
    each side, overlap; each event matches at most one. Times count from each run's log start,
    so two recordings of the same route compare too (with --allow-different-logs).
    """
    by_key: dict[tuple[str, str | None], tuple[list[Event], list[Event]]] = {}
    for event in a:
        by_key.setdefault((event.kind, event.topic), ([], []))[0].append(event)
    for event in b:
        by_key.setdefault((event.kind, event.topic), ([], []))[1].append(event)
    new: list[Event] = []
    resolved: list[Event] = []
    for events_a, events_b in by_key.values():
        taken = [False] * len(events_b)
        order_b = sorted(range(len(events_b)), key=lambda i: events_b[i].t_ns)
        for ea in sorted(events_a, key=lambda e: e.t_ns):
            lo, hi = ea.t_ns - a_start_ns - slop_ns, ea.end_ns - a_start_ns + slop_ns
            for i in order_b:
                eb = events_b[i]
                if taken[i]:
                    continue
                if eb.t_ns - b_start_ns <= hi and eb.end_ns - b_start_ns >= lo:
                    taken[i] = True
                    break
            else:
                resolved.append(ea)
        new.extend(eb for i, eb in enumerate(events_b) if not taken[i])
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}  # error first
    new.sort(key=lambda e: (rank.get(e.severity, 9), e.t_ns, e.kind))
    resolved.sort(key=lambda e: (rank.get(e.severity, 9), e.t_ns, e.kind))
    return new, resolved


# -- reading -----------------------------------------------------------------------------------


def _summary_metrics(run: RunDir) -> dict[MetricKey, float]:
    """The run-wide values (``t_ns`` null), the first of each key."""
    path = run.path / "metrics.parquet"
    if not path.is_file():
        msg = f"{run.path} is not a run directory (no metrics.parquet)"
        raise RunDirError(msg)
    import pyarrow.compute as pc

    table = run.metrics
    summary = table.filter(pc.is_null(table["t_ns"]))
    out: dict[MetricKey, float] = {}
    for row in summary.select(["stage", "metric", "topic", "label", "value"]).to_pylist():
        key = (str(row["stage"]), str(row["metric"]), row["topic"], row["label"])
        value = row["value"]
        out.setdefault(key, math.nan if value is None else float(value))
    return out


def _events(run: RunDir) -> list[Event]:
    path = run.path / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(Event.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as err:
            msg = f"{path}: damaged event at line {n} ({err})"
            raise RunDirError(msg) from err
    return events


def _log_start(run: RunDir) -> int:
    """Where the run's log times count from (0 when the run does not say)."""
    for source in (run.report.get("log"), run.run.get("log")):
        if isinstance(source, dict):
            start = source.get("start_ns")
            if isinstance(start, int) and not isinstance(start, bool):
                return start
    return 0


def _log_name(run: RunDir) -> str:
    logs = run.run.get("logs")
    if isinstance(logs, list) and logs and isinstance(logs[0], dict):
        name = Path(str(logs[0].get("path", ""))).name
        return name if len(logs) == 1 else f"{name} + {len(logs) - 1} more"
    return ""


def _figure_pairs(a: RunDir, b: RunDir) -> list[FigurePair]:
    """The figures both runs list (by stage and name) whose PNG files both still have."""

    def listed(run: RunDir) -> dict[tuple[str, str], tuple[str, Path]]:
        out: dict[tuple[str, str], tuple[str, Path]] = {}
        figures = run.report.get("figures")
        for fig in figures if isinstance(figures, list) else []:
            if not isinstance(fig, dict) or not fig.get("path"):
                continue
            key = (str(fig.get("stage", "")), str(fig.get("name", fig["path"])))
            title = str(fig.get("title") or key[1])
            out.setdefault(key, (title, run.path / str(fig["path"])))
        return out

    in_a, in_b = listed(a), listed(b)
    return [
        FigurePair(stage=key[0], name=key[1], title=in_b[key][0], a=in_a[key][1], b=in_b[key][1])
        for key in in_a
        if key in in_b and in_a[key][1].is_file() and in_b[key][1].is_file()
    ]


def _is_batch(path: Path) -> bool:
    """A batch folder: no run.json of its own, but runs under ``runs/``."""
    return not (path / "run.json").is_file() and any(path.glob("runs/*/run.json"))


def _compare_batches(a: Path, b: Path, *, thresholds: Mapping[str, Threshold]) -> BatchComparison:
    """Pair the runs of two batches by log digest (in folder-name order when a log has
    several runs); runs over a log only one batch saw are listed, not compared."""

    def runs(root: Path) -> dict[str, list[RunDir]]:
        out: dict[str, list[RunDir]] = {}
        for run_json in sorted(root.glob("runs/*/run.json")):
            run = load_run(run_json.parent)
            out.setdefault(str(run.run.get("log_digest")), []).append(run)
        return out

    runs_a, runs_b = runs(a), runs(b)
    pairs: list[Comparison] = []
    only_a: list[Path] = []
    only_b: list[Path] = []
    for digest in sorted(runs_a.keys() | runs_b.keys()):
        list_a, list_b = runs_a.get(digest, []), runs_b.get(digest, [])
        for ra, rb in zip(list_a, list_b, strict=False):
            pairs.append(compare_runs(ra, rb, thresholds=thresholds))
        only_a.extend(r.path for r in list_a[len(list_b) :])
        only_b.extend(r.path for r in list_b[len(list_a) :])
    if not pairs:
        msg = f"{a} and {b} have no run over the same log to compare"
        raise CompareError(msg)
    pairs.sort(key=lambda p: str(p.a))
    return BatchComparison(pairs=pairs, only_a=sorted(only_a), only_b=sorted(only_b))


# -- small helpers -----------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None


def _num(value: float) -> str:
    return f"{value:g}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word if n == 1 else word + 's'}"


def _by_severity(events: Iterable[Event]) -> dict[str, int]:
    counts = dict.fromkeys(("error", "warning", "info"), 0)
    for event in events:
        counts[event.severity] = counts.get(event.severity, 0) + 1
    return counts
