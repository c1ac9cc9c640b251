"""Latency and clocks: how long after its stamp each message was logged, and what that says
about the sensor's clock.

Latency is ``log time - header stamp`` (the first transform's stamp for TF). A robust
Theil-Sen line through latency over log time splits it into a fixed **offset** (the intercept:
transport plus any offset between the sensor's clock and the recorder's), a **drift** (the
slope, in ppm: the sensor's clock runs fast or slow) and residual **jitter** (the robust
spread around the line). Whether the stamps themselves are steady is judged apart, on the
stamps alone (their spread around the topic's own period grid), because a driver that
*delivers* in bursts - common, and harmless offline - must not look like a sensor that stamps
badly.

One topic's latency cannot tell a slow transport from a clock offset, so the clock is only
blamed where the log proves it; other topics are the evidence:

- ``clock_offset`` - error when a topic's median latency is negative beyond
  ``future_tolerance_ms`` (stamps in the future: only a clock does that); warning when a topic
  arrives *together* with another topic of the same rate (every message within
  ``sibling_tolerance_ms``) yet its stamps differ from that topic's by a constant of more
  than ``sibling_tolerance_ms`` (a lidar stamped 80 ms before the detections computed from
  the very same sweep).
- ``latency_high`` - warning when a topic arrives more than ``sibling_tolerance_ms`` after a
  topic carrying the *same* stamps (a CameraInfo 40 ms behind its image), or when its median
  latency exceeds the median of all topics' by more than ``max_relative_ms`` and one of its
  own periods (a lidar stamped at the start of its sweep is one period late, legitimately);
  info when the median latency is above ``info_latency_ms`` without any of that.
- ``clock_drift`` - warning when the fitted slope exceeds ``drift_ppm``, moves the latency by
  at least ``min_drift_ms`` over the log, is at least ``drift_sigmas`` standard errors, and the
  topic spans ``min_drift_span_s`` (real oscillators drift 1-50 ppm; a short log resolves
  only gross drifts).
- ``stamp_jitter`` - warning when a periodic topic's stamps scatter (robust sigma of each
  stamp against the midpoint of its neighbours) by more than ``jitter_fraction`` of the
  period and ``min_jitter_ms``.
- ``latency_spike`` - warning for messages later than the median by more than
  ``spike_sigmas`` robust sigmas, ``spike_floor_ms`` and one period (neighbours within a
  second are one event).
- ``stamp_in_future`` - warning for messages stamped more than ``future_tolerance_ms`` after
  they were logged, on a topic whose median is fine (a whole topic in the future is a
  ``clock_offset``; on a drifting or jittering clock they are counted in that event).

Relayed topics (rosout, diagnostics: stamps of many nodes' events) and static TF get metrics
only. TF is never judged for stamps ahead of the log: ROS1's ``static_transform_publisher`` and
``robot_state_publisher`` post-date their transforms by design (the SICK log's /tf is 100 ms
ahead, one publishing period). Stamps more than ``max_skew_s`` from their log time are not
latencies at all (another clock, a zero stamp): :mod:`bagscope.analyzers.timestamps` reports
them, this leaves them out.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.analyzers.findings import skip_check
from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, mark_events, seconds, style_axes
from bagscope.analyzers.streams import (
    RELAYED_TYPES,
    TF_TYPES,
    Cadence,
    cadence,
    check_positive,
    group_times,
    ms,
    stamp_reader,
)
from bagscope.pipeline.stage import Check, Event, FigureSpec, Metrics, StageResult, status_of
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import RunContext, Severity
    from bagscope.replay.message import Message

__all__ = ["Latency", "theil_sen"]

_NS = 1_000_000_000
_MS = 1_000_000
_MAD_SIGMA = 1.4826  # MAD of a normal distribution x this = its sigma
_FIT_POINTS = 200  # Theil-Sen on an even subsample: 19,900 slopes
_MIN_JUDGED = 3  # messages before a topic's latency is judged at all
_MIN_GROUP = 3  # topics before "the other topics' latency" means something
_MIDPOINT_SIGMA = 1.5**0.5  # sigma of (s[i] - mean of neighbours) / sigma of the stamps
_MATCH_SHARE = 0.9
_MOMENT_KINDS = frozenset(
    {"latency_spike", "stamp_in_future"}
)  # of a topic's messages paired with a sibling's, to call them siblings


def theil_sen(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Slope and intercept of the median line: robust to a third of the points being spikes."""
    if x.size > _FIT_POINTS:
        pick = np.linspace(0, x.size - 1, _FIT_POINTS).round().astype(np.intp)
        x, y = x[pick], y[pick]
    i, j = np.triu_indices(x.size, 1)
    dx = x[j] - x[i]
    keep = dx != 0
    slope = float(np.median((y[j] - y[i])[keep] / dx[keep])) if keep.any() else 0.0
    return slope, float(np.median(y - slope * x))


def _same_rate(a: Cadence, b: Cadence) -> bool:
    return abs(a.period_ns - b.period_ns) <= 0.02 * max(a.period_ns, b.period_ns)


def robust_sigma(values: NDArray[np.float64]) -> float:
    return float(_MAD_SIGMA * np.median(np.abs(values - np.median(values)))) if values.size else 0.0


@dataclass(slots=True)
class _Series:
    """One topic's receive times and stamps, appended per message."""

    topic: str
    read_stamp: Callable[[Message], int]
    log: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[int] = field(default_factory=lambda: array("q"))


@dataclass(slots=True, kw_only=True)
class _Topic:
    """What finish() worked out for one topic."""

    topic: str
    msgtype: str
    judged: bool
    log: NDArray[np.int64]
    stamps: NDArray[np.int64]
    latency: NDArray[np.int64]  # of the messages with plausible stamps (log - stamp)
    at: NDArray[np.int64]  # their log times
    cad: Cadence | None = None
    median: float = 0.0
    sigma: float = 0.0
    slope: float = 0.0  # ns per ns
    intercept: float = 0.0  # latency at the first message, ns
    residual_sigma: float = 0.0
    slope_se: float = 0.0
    stamp_sigma: float | None = None
    by_stamp: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
    events: list[Event] = field(default_factory=list)


class Latency:
    """Latency per topic, and the clock offsets, drifts and stamp jitter behind it."""

    def __init__(
        self,
        *,
        future_tolerance_ms: float = 10.0,
        sibling_tolerance_ms: float = 10.0,
        max_relative_ms: float = 50.0,
        info_latency_ms: float = 100.0,
        drift_ppm: float = 200.0,
        min_drift_ms: float = 2.0,
        drift_sigmas: float = 5.0,
        min_drift_span_s: float = 1.0,
        jitter_fraction: float = 0.1,
        min_jitter_ms: float = 0.5,
        spike_sigmas: float = 6.0,
        spike_floor_ms: float = 50.0,
        max_skew_s: float = 2.0,
        merge_s: float = 1.0,
        min_messages: int = 10,
        name: str | None = None,
    ) -> None:
        self.future_ns = round(check_positive("future_tolerance_ms", future_tolerance_ms) * _MS)
        self.sibling_ns = round(check_positive("sibling_tolerance_ms", sibling_tolerance_ms) * _MS)
        self.relative_ns = round(check_positive("max_relative_ms", max_relative_ms) * _MS)
        self.info_ns = round(check_positive("info_latency_ms", info_latency_ms) * _MS)
        self.drift_ppm = check_positive("drift_ppm", drift_ppm)
        self.min_drift_ns = round(
            check_positive("min_drift_ms", min_drift_ms, allow_zero=True) * _MS
        )
        self.drift_sigmas = check_positive("drift_sigmas", drift_sigmas, allow_zero=True)
        self.min_drift_span_ns = round(check_positive("min_drift_span_s", min_drift_span_s) * _NS)
        self.jitter_fraction = check_positive("jitter_fraction", jitter_fraction)
        self.min_jitter_ns = round(
            check_positive("min_jitter_ms", min_jitter_ms, allow_zero=True) * _MS
        )
        self.spike_sigmas = check_positive("spike_sigmas", spike_sigmas)
        self.spike_floor_ns = round(
            check_positive("spike_floor_ms", spike_floor_ms, allow_zero=True) * _MS
        )
        self.max_skew_ns = round(check_positive("max_skew_s", max_skew_s) * _NS)
        self.merge_ns = round(check_positive("merge_s", merge_s, allow_zero=True) * _NS)
        self.min_messages = int(check_positive("min_messages", min_messages))
        self.name = name or "latency"
        self._series: dict[str, _Series] = {}
        self._types: dict[str, str] = {}
        self._origin_ns = 0

    # -- setup and reading ----------------------------------------------------------------
    def setup(self, context: RunContext) -> None:
        self._types = context.topic_types
        self._origin_ns = context.info.start_ns
        self._series = {}
        for topic in self._types:
            if topic.endswith("tf_static"):
                continue  # static transforms describe no moment
            reader = stamp_reader(context.log, topic)
            if reader is not None:
                self._series[topic] = _Series(topic=topic, read_stamp=reader)

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(self._series)

    def on_message(self, msg: Message) -> None:
        series = self._series[msg.topic]
        series.log.append(msg.log_time_ns)
        series.stamps.append(series.read_stamp(msg))

    # -- analysis -------------------------------------------------------------------------
    def finish(self) -> StageResult:
        result = StageResult()
        topics = [self._measure(s, result.metrics) for s in self._series.values() if len(s.log)]
        judged = [t for t in topics if t.judged]
        group = [t.median for t in judged]
        group_median = float(np.median(group)) if len(group) >= _MIN_GROUP else None
        for topic in judged:
            topic.events += self._own_clock(topic)
        self._siblings(judged)
        for topic in judged:
            topic.events += self._relative(topic, group_median)
        for topic in topics:
            result.events.extend(topic.events)
            result.checks.extend(self._checks(topic))
        result.figures.extend(self._figures([t for t in topics if t.latency.size]))
        return result

    def _measure(self, series: _Series, metrics: Metrics) -> _Topic:
        log = np.asarray(series.log, dtype=np.int64)
        stamps = np.asarray(series.stamps, dtype=np.int64)
        latency = log - stamps
        plausible = (stamps > 0) & (np.abs(latency) <= self.max_skew_ns)
        msgtype = self._types.get(series.topic, "")
        topic = _Topic(
            topic=series.topic,
            msgtype=msgtype,
            judged=msgtype not in RELAYED_TYPES and int(plausible.sum()) >= _MIN_JUDGED,
            log=log,
            stamps=stamps,
            latency=latency[plausible],
            at=log[plausible],
        )
        name = series.topic
        metrics.add("implausible_stamps", int((~plausible).sum()), topic=name)
        if not topic.latency.size:
            return topic
        lat = topic.latency.astype(np.float64)
        topic.median = float(np.median(lat))
        topic.sigma = robust_sigma(lat)
        for label, value in (
            ("latency_p50_ms", topic.median),
            ("latency_p95_ms", float(np.percentile(lat, 95))),
            ("latency_p99_ms", float(np.percentile(lat, 99))),
            ("latency_max_ms", float(lat.max())),
            ("latency_min_ms", float(lat.min())),
            ("latency_sigma_ms", topic.sigma),
        ):
            metrics.add(label, value / _MS, topic=name)
        metrics.extend("latency_ms", topic.at, lat / _MS, topic=name)
        if lat.size >= 2:
            self._fit(topic, metrics)
        good = stamps > 0
        topic.cad = cadence(log, stamps) if log.size > 1 else None
        if topic.cad is not None and topic.cad.periodic and good.sum() >= self.min_messages:
            topic.stamp_sigma = self._stamp_sigma(stamps[good])
            metrics.add("stamp_jitter_ms", topic.stamp_sigma / _MS, topic=name)
        return topic

    def _fit(self, topic: _Topic, metrics: Metrics) -> None:
        x = (topic.at - topic.at[0]).astype(np.float64)
        y = topic.latency.astype(np.float64) - topic.median
        slope, intercept = theil_sen(x, y)
        residual = y - (slope * x + intercept)
        topic.slope = slope
        topic.intercept = intercept + topic.median
        topic.residual_sigma = robust_sigma(residual)
        spread = float(np.std(x))
        topic.slope_se = (
            topic.residual_sigma / (np.sqrt(x.size) * spread) if spread > 0 else float("inf")
        )
        metrics.add("offset_ms", topic.intercept / _MS, topic=topic.topic)
        metrics.add("drift_ppm", slope * 1e6, topic=topic.topic)
        metrics.add("latency_jitter_ms", topic.residual_sigma / _MS, topic=topic.topic)

    @staticmethod
    def _stamp_sigma(stamps: NDArray[np.int64]) -> float:
        """How much the stamps scatter, by themselves: each stamp against the midpoint of its
        neighbours (for white jitter sigma that residual has sigma * sqrt(1.5)). Local, so a
        drifting clock leaves no residual; robust (MAD), so the few triples around a dropped
        message do not count; and blind to delivery, so a driver that delivers in bursts but
        stamps steadily is steady."""
        s = np.unique(stamps)
        if s.size < 3:  # a stamp and its two neighbours
            return 0.0
        residual = s[1:-1] - (s[:-2] + s[2:]) / 2
        return robust_sigma(residual.astype(np.float64)) / _MIDPOINT_SIGMA

    # -- judgements -----------------------------------------------------------------------
    def _own_clock(self, topic: _Topic) -> list[Event]:
        """What one topic's latency says by itself: stamps in the future, drift, jitter,
        spikes."""
        events: list[Event] = []
        name = topic.topic
        future_dated = topic.msgtype in TF_TYPES
        if topic.median < -self.future_ns and not future_dated:
            events.append(
                self._event(
                    topic,
                    kind="clock_offset",
                    severity="error",
                    message=f"{name}: stamps are {ms(-topic.median)} ahead of the log clock "
                    f"(median latency {ms(topic.median)}): the sensor's clock is offset",
                    evidence={
                        "median_latency_ns": round(topic.median),
                        "tolerance_ns": self.future_ns,
                    },
                )
            )
        drift = self._drift(topic)
        if drift is not None:
            events.append(drift)
        jitter = self._jitter(topic)
        if jitter is not None:
            events.append(jitter)
        else:
            events += self._spikes(topic)
            # a drifting or scattering clock explains its own stamps in the future
            if topic.median >= -self.future_ns and not future_dated and drift is None:
                events += self._future(topic)
        return events

    def _drift(self, topic: _Topic) -> Event | None:
        span = int(topic.at[-1] - topic.at[0])
        ppm = topic.slope * 1e6
        moved = abs(topic.slope) * span
        if (
            topic.latency.size < self.min_messages
            or span < self.min_drift_span_ns
            or abs(ppm) <= self.drift_ppm
            or moved < self.min_drift_ns
            or abs(topic.slope) < self.drift_sigmas * topic.slope_se
        ):
            return None
        way = "fast" if ppm < 0 else "slow"
        return self._event(
            topic,
            kind="clock_drift",
            severity="warning",
            message=f"{topic.topic}: the sensor clock runs {way} by {abs(ppm):.0f} ppm "
            f"(latency moves {ms(moved)} over {format_duration(span)})",
            evidence={
                "drift_ppm": round(ppm, 3),
                "moved_ns": round(moved),
                "span_ns": span,
                "slope_se_ppm": round(topic.slope_se * 1e6, 3),
                "threshold_ppm": self.drift_ppm,
                "min_moved_ns": self.min_drift_ns,
                "stamps_in_future": int((topic.latency < -self.future_ns).sum()),
            },
        )

    def _jitter(self, topic: _Topic) -> Event | None:
        if topic.stamp_sigma is None or topic.cad is None:
            return None
        period = topic.cad.period_ns
        limit = max(self.jitter_fraction * period, self.min_jitter_ns)
        if topic.stamp_sigma <= limit:
            return None
        future = int((topic.latency < -self.future_ns).sum())
        return self._event(
            topic,
            kind="stamp_jitter",
            severity="warning",
            message=f"{topic.topic}: stamps scatter by {ms(topic.stamp_sigma)} (sigma) around "
            f"their {ms(period)} period ({topic.stamp_sigma / period:.0%})",
            evidence={
                "stamp_sigma_ns": round(topic.stamp_sigma),
                "period_ns": period,
                "threshold_ns": round(limit),
                "stamps_in_future": future,
            },
        )

    def _spikes(self, topic: _Topic) -> list[Event]:
        period = topic.cad.period_ns if topic.cad is not None else 0
        limit = topic.median + max(self.spike_sigmas * topic.sigma, self.spike_floor_ns, period)
        over = np.flatnonzero(topic.latency > limit)
        return self._grouped(
            topic,
            over,
            kind="latency_spike",
            text=lambda n, worst: (
                f"{topic.topic}: {n} message{'s' if n > 1 else ''} logged up to {ms(worst)} "
                f"after {'their' if n > 1 else 'its'} stamp (median {ms(topic.median)})"
            ),
            extra={"threshold_ns": round(limit), "median_ns": round(topic.median)},
            worst=lambda chosen: float(topic.latency[chosen].max()),
        )

    def _future(self, topic: _Topic) -> list[Event]:
        ahead = np.flatnonzero(topic.latency < -self.future_ns)
        return self._grouped(
            topic,
            ahead,
            kind="stamp_in_future",
            text=lambda n, worst: (
                f"{topic.topic}: {n} message{'s' if n > 1 else ''} stamped up to {ms(worst)} "
                "after being logged"
            ),
            extra={"tolerance_ns": self.future_ns},
            worst=lambda chosen: float(-topic.latency[chosen].min()),
        )

    def _grouped(
        self,
        topic: _Topic,
        indices: NDArray[np.intp],
        *,
        kind: str,
        text: Callable[[int, float], str],
        extra: dict[str, Any],
        worst: Callable[[NDArray[np.intp]], float],
    ) -> list[Event]:
        events = []
        for start, end in group_times(topic.at[indices], round(self.merge_ns)):
            chosen = indices[start:end]
            value = worst(chosen)
            events.append(
                self._event(
                    topic,
                    (int(topic.at[chosen[0]]), int(topic.at[chosen[-1]])),
                    kind=kind,
                    severity="warning",
                    message=text(int(end - start), value),
                    evidence={"count": int(end - start), "worst_ns": round(value), **extra},
                )
            )
        return events

    def _siblings(self, topics: Sequence[_Topic]) -> None:
        """Compare topics that belong together: the same stamps (one measurement, published
        twice: they should arrive together), or the same arrivals (one event, published
        twice: they should carry the same stamp)."""
        for a in topics:
            for b in topics:
                if a is b:
                    continue
                same = self._same_stamps(a, b)
                if same is not None and same > self.sibling_ns:
                    a.events.append(self._late_sibling(a, b, same))
                    continue
                shift = self._same_arrivals(a, b)
                if shift is not None and self._blame(a, b, topics):
                    a.events.append(self._offset_sibling(a, b, shift))

    @staticmethod
    def _first_by_stamp(topic: _Topic) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Distinct stamps and when each first arrived (computed once per topic)."""
        if topic.by_stamp is None:
            good = topic.stamps > 0
            stamps, first = np.unique(topic.stamps[good], return_index=True)
            topic.by_stamp = (stamps, topic.log[good][first])
        return topic.by_stamp

    def _same_stamps(self, a: _Topic, b: _Topic) -> float | None:
        """How much later ``a`` arrives than ``b`` for the same stamps (median), if they share
        their stamps."""
        if a.cad is None or b.cad is None or not _same_rate(a.cad, b.cad):
            return None  # a 10 Hz lidar's stamps are all on a 100 Hz IMU's grid too
        sa, la = self._first_by_stamp(a)
        sb, lb = self._first_by_stamp(b)
        if min(sa.size, sb.size) < _MIN_JUDGED:
            return None
        common, ia, ib = np.intersect1d(sa, sb, assume_unique=True, return_indices=True)
        if common.size < _MATCH_SHARE * min(sa.size, sb.size):
            return None
        return float(np.median(la[ia] - lb[ib]))

    def _same_arrivals(self, a: _Topic, b: _Topic) -> float | None:
        """The constant stamp difference of two same-rate topics whose messages arrive
        pairwise together, when it is larger than the tolerance."""
        if a.cad is None or b.cad is None or not (a.cad.periodic and b.cad.periodic):
            return None
        pa = a.cad.period_ns
        if not _same_rate(a.cad, b.cad) or a.at.size < self.min_messages:
            return None
        window = min(self.sibling_ns, pa / 4)
        pos = np.clip(np.searchsorted(b.at, a.at), 1, max(b.at.size - 1, 1))
        left, right = b.at[pos - 1], b.at[np.minimum(pos, b.at.size - 1)]
        nearest = np.where(np.abs(a.at - left) <= np.abs(a.at - right), pos - 1, pos)
        nearest = np.minimum(nearest, b.at.size - 1)
        close = np.abs(a.at - b.at[nearest]) <= window
        if close.sum() < _MATCH_SHARE * a.at.size:
            return None
        shift = (a.at[close] - a.latency[close]) - (
            b.at[nearest[close]] - b.latency[nearest[close]]
        )
        spread = robust_sigma(shift.astype(np.float64))
        median = float(np.median(shift))
        if abs(median) <= self.sibling_ns or spread > max(self.min_jitter_ns, 0.05 * pa):
            return None
        return median

    @staticmethod
    def _blame(a: _Topic, b: _Topic, topics: Sequence[_Topic]) -> bool:
        """Which of two disagreeing siblings has the odd clock: the one whose latency is
        further from every other topic's (with nothing to compare, both are named)."""
        others = [t.median for t in topics if t is not a and t is not b]
        if not others:
            return True
        ref = float(np.median(others))
        return abs(a.median - ref) >= abs(b.median - ref)

    def _late_sibling(self, a: _Topic, b: _Topic, late: float) -> Event:
        return self._event(
            a,
            kind="latency_high",
            severity="warning",
            message=f"{a.topic}: arrives {ms(late)} after {b.topic}, which carries the same stamps "
            f"(latency {ms(a.median)} vs {ms(b.median)})",
            evidence={
                "late_ns": round(late),
                "sibling": b.topic,
                "median_latency_ns": round(a.median),
                "sibling_latency_ns": round(b.median),
                "tolerance_ns": self.sibling_ns,
            },
        )

    def _offset_sibling(self, a: _Topic, b: _Topic, shift: float) -> Event:
        way = "earlier" if shift < 0 else "later"
        return self._event(
            a,
            kind="clock_offset",
            severity="warning",
            message=f"{a.topic}: stamps {ms(abs(shift))} {way} than those of {b.topic}, which "
            "arrives with it: one of the two clocks is offset",
            evidence={
                "offset_ns": round(shift),
                "sibling": b.topic,
                "median_latency_ns": round(a.median),
                "sibling_latency_ns": round(b.median),
                "tolerance_ns": self.sibling_ns,
            },
        )

    def _relative(self, topic: _Topic, group_median: float | None) -> list[Event]:
        if any(e.kind in ("latency_high", "clock_offset") for e in topic.events):
            return []
        period = topic.cad.period_ns if topic.cad is not None else 0
        excess = topic.median - group_median if group_median is not None else 0.0
        limit = max(self.relative_ns, period)
        evidence = {
            "median_latency_ns": round(topic.median),
            "group_median_ns": None if group_median is None else round(group_median),
            "threshold_ns": round(limit),
            "info_ns": self.info_ns,
        }
        if group_median is not None and excess > limit:
            text = (
                f"{topic.topic}: median latency {ms(topic.median)}, {ms(excess)} more than "
                f"the other topics' ({ms(group_median)})"
            )
            return [
                self._event(
                    topic,
                    kind="latency_high",
                    severity="warning",
                    message=text,
                    evidence=evidence,
                )
            ]
        if topic.median > self.info_ns:
            text = f"{topic.topic}: median latency {ms(topic.median)}"
            return [
                self._event(
                    topic,
                    kind="latency_high",
                    severity="info",
                    message=text,
                    evidence=evidence,
                )
            ]
        return []

    def _event(
        self,
        topic: _Topic,
        span: tuple[int, int] | None = None,
        *,
        kind: str,
        severity: Severity,
        message: str,
        evidence: dict[str, Any],
    ) -> Event:
        """An event of ``topic`` over ``span`` (log times; default: from the topic's first to its
        last message with a plausible stamp)."""
        t0, t1 = (int(topic.at[0]), int(topic.at[-1])) if span is None else span
        return Event(
            t_ns=t0,
            end_ns=t1,
            topic=topic.topic,
            kind=kind,
            severity=severity,
            message=message,
            evidence=evidence,
        )

    # -- report ---------------------------------------------------------------------------
    def _checks(self, topic: _Topic) -> list[Check]:
        name = topic.topic
        if not topic.judged:
            why = (
                "relayed log/diagnostics: not judged"
                if topic.msgtype in RELAYED_TYPES
                else f"{topic.latency.size} plausible stamps: not judged"
            )
            value = "n/a" if not topic.latency.size else f"p50 {ms(topic.median)}"
            return [skip_check("latency", name, value, threshold=why)]
        lat = topic.latency
        p99 = float(np.percentile(lat, 99))

        def of(*kinds: str) -> list[Event]:
            return [e for e in topic.events if e.kind in kinds]

        checks = [
            Check(
                name="latency",
                topic=name,
                status=status_of(of("latency_high", "latency_spike", "stamp_in_future")),
                value=f"p50 {ms(topic.median)}, p99 {ms(p99)}",
                threshold=(
                    f"spikes > p50 + {ms(self.spike_floor_ns)}; "
                    f"p50 <= others' + {ms(self.relative_ns)}"
                ),
            ),
            Check(
                name="clock",
                topic=name,
                status=status_of(of("clock_offset", "clock_drift")),
                value=f"offset {ms(topic.intercept)}, drift {topic.slope * 1e6:.0f} ppm",
                threshold=f"|drift| <= {self.drift_ppm:g} ppm; stamps not ahead",
            ),
        ]
        if topic.stamp_sigma is not None and topic.cad is not None:
            period = topic.cad.period_ns
            checks.append(
                Check(
                    name="stamp_jitter",
                    topic=name,
                    status=status_of(of("stamp_jitter")),
                    value=f"{ms(topic.stamp_sigma)} ({topic.stamp_sigma / period:.1%} of period)",
                    threshold=f"<= {self.jitter_fraction:.0%} of {ms(period)}",
                )
            )
        return checks

    def _figures(self, topics: Sequence[_Topic]) -> list[FigureSpec]:
        if not topics:
            return []
        origin = self._origin_ns

        def draw_hist(fig: Figure) -> None:
            ax = fig.add_subplot(1, 1, 1)
            every = np.concatenate([t.latency for t in topics]) / _MS
            lo, hi = np.percentile(every, [0.5, 99.5])
            bins = np.linspace(lo - 1, hi + 1, 120).tolist()
            for i, t in enumerate(topics):
                ax.hist(
                    np.clip(t.latency / _MS, bins[0], bins[-1]),
                    bins=bins,
                    histtype="step",
                    label=t.topic,
                    color=TOPIC_COLOURS[i % len(TOPIC_COLOURS)],
                )
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.8)  # a single spike stays visible
            style_axes(
                ax,
                xlabel="latency = log time - stamp (ms)",
                ylabel="messages (count)",
                title="latency per topic",
            )
            legend(ax, fontsize=7, loc="best")

        def draw_timeline(fig: Figure) -> None:
            ax = fig.add_subplot(1, 1, 1)
            for i, t in enumerate(topics):
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                ax.plot(
                    seconds(t.at, origin), t.latency / _MS, ".", ms=2, color=colour, label=t.topic
                )
                if t.at.size >= 2:
                    ends = np.array([t.at[0], t.at[-1]])
                    fit = t.intercept + t.slope * (ends - t.at[0])
                    ax.plot(seconds(ends, origin), fit / _MS, "-", color=colour, linewidth=1)
                # whole-topic findings (offset, drift) are the line itself; mark the moments
                mark_events(ax, [e for e in t.events if e.kind in _MOMENT_KINDS], origin)
            style_axes(
                ax,
                xlabel="log time (s)",
                ylabel="latency (ms)",
                title="latency over time, with the fitted offset + drift line",
            )
            legend(ax, fontsize=7, loc="best")

        return [
            FigureSpec(name="latency_hist", title="Latency per topic", draw=draw_hist),
            FigureSpec(
                name="latency_timeline",
                title="Latency over time",
                draw=draw_timeline,
                size=(9.0, 3.6),
            ),
        ]
