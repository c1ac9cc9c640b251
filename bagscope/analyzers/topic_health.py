"""Topic health: does every topic arrive at its own steady rate, once, complete and in order?

A sensor topic is judged against *its own* nominal period (the median interval between its
messages), so a 10 Hz lidar and a 200 Hz IMU get the same treatment without configuration.
Only topics that are periodic are judged for rate, gaps and drops: a topic is periodic when
it has at least ``min_messages`` messages and at least ``regular_fraction`` of its intervals
lie within ±``tolerance`` of the median, by receive time or by sorted header stamps (a
receive-bursty driver such as a SICK scanner still stamps a steady cadence). Logs, diagnostics,
static TF, latched and event-driven topics are irregular and get a ``skip`` row, not findings.

Event kinds (fixed strings, matched by ``replay score`` to the simulator's fault kinds):

- ``gap`` - no message received for more than ``gap_factor`` x the period and at least
  ``min_gap_s`` (warning); error from ``error_factor`` x the period or ``outage_s`` on.
- ``drop`` - messages missing from the cadence (an interval of ~n periods is n-1 missed
  messages), counted on the header stamps where they are regular (reordered delivery then
  does not look like loss), else on receive times. Drops closer than ``merge_s`` are one event.
  Warning when the topic lost at least ``max_drop_ratio`` of its messages, error from
  ``error_drop_ratio``, info below. ROS1 header ``seq`` gaps are counted as evidence.
- ``duplicate`` - a message with the same header stamp and the same bytes as the message
  before it on its stream (grouped like drops; warning).
- ``empty_log`` - warning: no recorded topic holds a message (in the window): nothing was
  analysed. ``empty_topic`` - info: one recorded topic holds no messages.
- ``intermittent`` - info: a topic without stamps that runs at a steady rate in bursts with
  long pauses (teleop's ``cmd_vel``): event-driven, so its pauses are not gaps.
- ``out_of_order`` - a header stamp earlier than the previous message's (by at least half a
  period) after which the stream resumes: the message was *delivered* late (warning).
  A stream whose stamps go back and stay back is a clock that jumped: that is
  :mod:`bagscope.analyzers.timestamps`' ``non_monotonic``, not this.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.analyzers.findings import skip_check
from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, mark_events, seconds, style_axes
from bagscope.analyzers.streams import (
    NO_STAMP,
    RELAYED_TYPES,
    Cadence,
    backsteps,
    cadence,
    check_positive,
    group_times,
    header_stamp,
    ms,
    since_start,
    stamp_reader,
    stream_map,
)
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, Metrics, StageResult, status_of
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import RunContext, Severity
    from bagscope.replay.message import Message

__all__ = ["TopicHealth"]

_NS = 1_000_000_000


@dataclass(slots=True)
class _Stream:
    """One publisher's messages: arrival times, stamps, ROS1 seq, and duplicates seen."""

    topic: str
    read_stamp: Callable[[Message], int] | None
    read_seq: bool
    log: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[int] = field(default_factory=lambda: array("q"))
    seqs: array[int] = field(default_factory=lambda: array("q"))
    duplicates: array[int] = field(default_factory=lambda: array("q"))  # log times
    prev_stamp: int = NO_STAMP
    prev_data: bytes | memoryview | None = None


@dataclass(slots=True, kw_only=True)
class _TopicFindings:
    topic: str
    msgtype: str
    count: int
    rate_hz: float | None
    cadence: Cadence | None
    events: list[Event] = field(default_factory=list)
    log_sorted: NDArray[np.int64] | None = None
    stamped: bool = False
    intermittent: bool = False


_SEQ = struct.Struct("<I")
# A headerless topic paused at least this often, for this share of its span, is event-driven.
_INTERMITTENT_GAPS = 3
_INTERMITTENT_SHARE = 0.2


def _counted(found: _TopicFindings, kind: str, *, name: str, threshold: str) -> Check:
    """The check of one kind of grouped event: how many messages its events count."""
    events = [e for e in found.events if e.kind == kind]
    return Check(
        name=name,
        topic=found.topic,
        status=status_of(events),
        value=str(sum(int(e.evidence["count"]) for e in events)),
        threshold=threshold,
    )


class TopicHealth:
    """Rate, gaps, drops, duplicates and delivery order of every topic in the log."""

    def __init__(
        self,
        *,
        gap_factor: float = 3.0,
        error_factor: float = 10.0,
        outage_s: float = 1.0,
        min_gap_s: float = 0.1,
        max_drop_ratio: float = 0.001,
        error_drop_ratio: float = 0.1,
        merge_s: float = 1.0,
        min_messages: int = 10,
        tolerance: float = 0.25,
        regular_fraction: float = 0.75,
        name: str | None = None,
    ) -> None:
        self.gap_factor = check_positive("gap_factor", gap_factor)
        if self.gap_factor < 1.5:
            msg = f"parameter gap_factor must be >= 1.5 (periods), got {gap_factor!r}"
            raise BagscopeError(msg)
        self.error_factor = check_positive("error_factor", error_factor)
        self.outage_ns = round(check_positive("outage_s", outage_s) * _NS)
        self.min_gap_ns = round(check_positive("min_gap_s", min_gap_s, allow_zero=True) * _NS)
        self.max_drop_ratio = check_positive("max_drop_ratio", max_drop_ratio, allow_zero=True)
        self.error_drop_ratio = check_positive("error_drop_ratio", error_drop_ratio)
        self.merge_ns = round(check_positive("merge_s", merge_s, allow_zero=True) * _NS)
        self.min_messages = int(check_positive("min_messages", min_messages))
        self.tolerance = check_positive("tolerance", tolerance)
        if not 0 < regular_fraction <= 1:
            msg = f"parameter regular_fraction must be in (0, 1], got {regular_fraction!r}"
            raise BagscopeError(msg)
        self.regular_fraction = float(regular_fraction)
        self.name = name or "topic_health"
        self._streams: list[_Stream] = []
        self._by_conn: dict[int, _Stream] = {}
        self._types: dict[str, str] = {}
        self._origin_ns = 0
        self._end_ns = 0

    # -- setup and reading ----------------------------------------------------------------
    def setup(self, context: RunContext) -> None:
        log = context.log
        self._types = context.topic_types
        self._origin_ns = context.info.start_ns
        self._end_ns = context.info.end_ns
        index, topics_of = stream_map(log, self._types)
        readers = {t: stamp_reader(log, t) for t in self._types}
        self._streams = []
        for topic in topics_of:
            reader = readers[topic]
            conns = log.connections([topic])
            ros1_header = (
                reader is header_stamp and bool(conns) and conns[0].serialization == "ros1"
            )
            self._streams.append(_Stream(topic=topic, read_stamp=reader, read_seq=ros1_header))
        self._by_conn = {cid: self._streams[i] for cid, i in index.items()}

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(self._types)

    def on_message(self, msg: Message) -> None:
        stream = self._by_conn[msg.connection.id]
        stream.log.append(msg.log_time_ns)
        read = stream.read_stamp
        if read is None:
            return
        stamp = read(msg)
        stream.stamps.append(stamp)
        data = msg.data
        if stream.read_seq:
            stream.seqs.append(_SEQ.unpack_from(data, 0)[0] if len(data) >= 4 else -1)
        prev = stream.prev_data
        if (
            stamp == stream.prev_stamp
            and stamp != NO_STAMP
            and prev is not None
            and len(prev) == len(data)
            and bytes(prev) == bytes(data)
        ):
            stream.duplicates.append(msg.log_time_ns)
        stream.prev_stamp = stamp
        stream.prev_data = data

    # -- analysis -------------------------------------------------------------------------
    def finish(self) -> StageResult:
        result = StageResult()
        by_topic: dict[str, list[_Stream]] = {}
        for stream in self._streams:
            stream.prev_data = None  # release the reader's buffers
            by_topic.setdefault(stream.topic, []).append(stream)
        findings = [
            self._topic(topic, streams, result.metrics) for topic, streams in by_topic.items()
        ]
        for found in findings:
            result.events.extend(found.events)
            result.checks.extend(self._checks(found))
        result.events.extend(self._empty(findings))
        result.figures.extend(self._figures(findings))
        return result

    def _empty(self, findings: Sequence[_TopicFindings]) -> list[Event]:
        """A log (or window) with nothing in it is worth a warning: an analysis of nothing must
        not read as a clean bill of health. A single recorded-but-silent topic is common (ROS 2
        records /parameter_events and /rosout whether or not anyone speaks) and only noted."""
        at = self._origin_ns
        if all(f.count == 0 for f in findings):
            topics = [f.topic for f in findings]
            where = f"any of the {len(topics)} recorded topics" if topics else "any topic"
            return [
                Event(
                    t_ns=at,
                    end_ns=self._end_ns,
                    topic=None,
                    kind="empty_log",
                    severity="warning",
                    message=f"no messages on {where}: nothing to analyse",
                    evidence={"topics": topics},
                )
            ]
        return [
            Event(
                t_ns=at,
                end_ns=at,
                topic=f.topic,
                kind="empty_topic",
                severity="info",
                message=f"{f.topic}: recorded ({f.msgtype}) but holds no messages",
                evidence={"msgtype": f.msgtype},
            )
            for f in findings
            if f.count == 0
        ]

    def _topic(self, topic: str, streams: list[_Stream], metrics: Metrics) -> _TopicFindings:
        log_times = np.sort(np.concatenate([np.asarray(s.log, dtype=np.int64) for s in streams]))
        stamped = [s for s in streams if s.read_stamp is not None]
        single = streams[0] if len(streams) == 1 else None
        stamps = (
            np.asarray(single.stamps, dtype=np.int64)
            if single is not None and single.read_stamp is not None
            else None
        )
        count = int(log_times.size)
        span = int(log_times[-1] - log_times[0]) if count else 0
        rate = (count - 1) * _NS / span if count > 1 and span > 0 else None
        msgtype = self._types.get(topic, "")
        cad = None
        if count > 1:
            cad = cadence(
                log_times,
                stamps,
                min_messages=self.min_messages,
                tolerance=self.tolerance,
                regular_fraction=self.regular_fraction,
            )
        found = _TopicFindings(
            topic=topic,
            msgtype=msgtype,
            count=count,
            rate_hz=rate,
            cadence=cad,
            log_sorted=log_times,
            stamped=bool(stamped),
        )
        metrics.add("messages", count, topic=topic)
        if rate is not None:
            metrics.add("rate_hz", rate, topic=topic)
        if cad is not None and cad.periodic and msgtype not in RELAYED_TYPES:
            metrics.add("period_ms", cad.period_ns / 1e6, topic=topic)
            self._jitter(log_times, cad, topic=topic, metrics=metrics)
            self._rate_series(log_times, topic, metrics)
            timeline, log_at = self._timeline(single, cad) if single else (log_times, log_times)
            gaps = self._gaps(timeline, log_at, cad=cad, topic=topic, metrics=metrics)
            if stamps is None and self._intermittent(gaps, span):
                found.intermittent = True
                found.events.append(
                    self._intermittent_event(topic, gaps, log_times=log_times, cad=cad)
                )
            else:
                found.events += gaps
                if single is not None:
                    found.events += self._drops(
                        single, times=timeline, log_at=log_at, cad=cad, metrics=metrics
                    )
        for stream in stamped:
            found.events += self._duplicates(stream, metrics)
            if cad is not None and cad.periodic and msgtype not in RELAYED_TYPES:
                found.events += self._order(stream, cad, metrics)
        return found

    def _jitter(
        self, log_times: NDArray[np.int64], cad: Cadence, *, topic: str, metrics: Metrics
    ) -> None:
        steps = np.diff(log_times)
        median = float(np.median(steps))
        dev = np.abs(steps - median)
        metrics.add("interval_median_ms", median / 1e6, topic=topic)
        metrics.add("jitter_std_ms", float(np.std(steps - median)) / 1e6, topic=topic)
        metrics.add("jitter_p99_ms", float(np.percentile(dev, 99)) / 1e6, topic=topic)
        metrics.add("regular_fraction", cad.regular, topic=topic)

    def _rate_series(self, log_times: NDArray[np.int64], topic: str, metrics: Metrics) -> None:
        start, end = self._origin_ns, max(self._end_ns, int(log_times[-1]) + 1)
        edges = np.arange(start, end + _NS, _NS, dtype=np.int64)
        counts, _ = np.histogram(log_times, bins=edges)
        widths = np.minimum(edges[1:], end) - edges[:-1]
        keep = widths > _NS // 2  # a short last bin would show a misleading rate
        metrics.extend(
            "rate_hz",
            edges[:-1][keep],
            counts[keep] * _NS / widths[keep],
            topic=topic,
        )

    def _gap_ns(self, period: int) -> float:
        """The silence that is a gap, not a few lost messages: ``gap_factor`` periods, and at
        least ``min_gap_s`` (three lost samples of a 1 kHz IMU are drops, not an outage)."""
        return max(self.gap_factor * period, self.min_gap_ns)

    def _timeline(
        self, stream: _Stream, cad: Cadence
    ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Sorted times on the clock the cadence was measured on, and each one's log time.

        On the stamps (where they are the more regular clock, e.g. a driver that delivers in
        bursts) a missing or zero stamp is estimated from its receive time, so a message with a
        bad stamp is not counted as lost; otherwise the receive times themselves.
        """
        log_times = np.asarray(stream.log, dtype=np.int64)
        if cad.source != "stamp" or not len(stream.stamps):
            return log_times, log_times
        stamps = np.asarray(stream.stamps, dtype=np.int64)
        good = stamps > 0
        if not good.all():
            latency = int(np.median(log_times[good] - stamps[good])) if good.any() else 0
            stamps = np.where(good, stamps, log_times - latency)
        unique, first = np.unique(stamps, return_index=True)
        return unique, log_times[first]

    def _gaps(
        self,
        times: NDArray[np.int64],
        log_at: NDArray[np.int64],
        *,
        cad: Cadence,
        topic: str,
        metrics: Metrics,
    ) -> list[Event]:
        period = cad.period_ns
        steps = np.diff(times)
        metrics.add("max_gap_ms", float(steps.max()) / 1e6 if steps.size else 0.0, topic=topic)
        events = []
        clock = "stamps" if cad.source == "stamp" else "receive times"
        for i in np.flatnonzero(steps > self._gap_ns(period)):
            gap = int(steps[i])
            severe = gap >= self.error_factor * period or gap >= self.outage_ns
            factor = gap / period
            t0, t1 = sorted((int(log_at[i]), int(log_at[i + 1])))
            events.append(
                Event(
                    t_ns=t0,
                    end_ns=t1,
                    topic=topic,
                    kind="gap",
                    severity="error" if severe else "warning",
                    message=(
                        f"{topic}: no message for {format_duration(gap)} ({factor:.0f}x its "
                        f"{ms(period)} period) from {since_start(t0, self._origin_ns)}"
                    ),
                    evidence={
                        "gap_ns": gap,
                        "period_ns": period,
                        "factor": round(factor, 3),
                        "missed": max(round(factor) - 1, 0),
                        "clock": clock,
                        "threshold_factor": self.gap_factor,
                        "min_gap_ns": self.min_gap_ns,
                        "error_factor": self.error_factor,
                        "outage_ns": self.outage_ns,
                    },
                )
            )
        return events

    @staticmethod
    def _intermittent(gaps: Sequence[Event], span: int) -> bool:
        """Steady bursts with long pauses: a command stream (teleop's ``cmd_vel`` while a key
        is held), not a sensor that fails. Only said of topics without stamps - a sensor with
        headers that keeps pausing is reported, however often it does it."""
        paused = sum(int(e.evidence["gap_ns"]) for e in gaps)
        return len(gaps) >= _INTERMITTENT_GAPS and paused >= _INTERMITTENT_SHARE * span

    def _intermittent_event(
        self, topic: str, gaps: Sequence[Event], *, log_times: NDArray[np.int64], cad: Cadence
    ) -> Event:
        longest = max(int(e.evidence["gap_ns"]) for e in gaps)
        paused = sum(int(e.evidence["gap_ns"]) for e in gaps)
        return Event(
            t_ns=int(log_times[0]),
            end_ns=int(log_times[-1]),
            topic=topic,
            kind="intermittent",
            severity="info",
            message=(
                f"{topic}: sent in bursts at {_NS / cad.period_ns:.1f} Hz with {len(gaps)} "
                f"pauses (up to {format_duration(longest)}): event-driven, gaps not judged"
            ),
            evidence={
                "pauses": len(gaps),
                "paused_ns": paused,
                "longest_ns": longest,
                "period_ns": cad.period_ns,
                "min_pauses": _INTERMITTENT_GAPS,
                "min_share": _INTERMITTENT_SHARE,
            },
        )

    def _drops(
        self,
        stream: _Stream,
        *,
        times: NDArray[np.int64],
        log_at: NDArray[np.int64],
        cad: Cadence,
        metrics: Metrics,
    ) -> list[Event]:
        topic, period = stream.topic, cad.period_ns
        steps = np.diff(times)
        missed = np.rint(steps / period).astype(np.int64) - 1
        gap_ns = self._gap_ns(period)
        holes = np.flatnonzero((steps >= 1.5 * period) & (steps <= gap_ns))
        in_gaps = int(missed[steps > gap_ns].sum())
        total = int(missed[holes].sum())
        seq_missing = self._seq_missing(stream)
        expected = len(stream.log) - len(stream.duplicates) + total + in_gaps
        ratio = total / expected if expected else 0.0
        metrics.add("missed", total + in_gaps, topic=topic)
        metrics.add("dropped", total, topic=topic)
        metrics.add("drop_ratio", ratio, topic=topic)
        if seq_missing is not None:
            metrics.add("seq_missing", seq_missing, topic=topic)
        if not total:
            return []
        severity: Severity = "info"
        if ratio >= self.error_drop_ratio:
            severity = "error"
        elif ratio >= self.max_drop_ratio:
            severity = "warning"
        events = []
        for start, end in group_times(times[holes], self.merge_ns):
            chosen = holes[start:end]
            n = int(missed[chosen].sum())
            t0, t1 = sorted((int(log_at[chosen[0]]), int(log_at[chosen[-1] + 1])))
            where = (
                f"at {since_start(t0, self._origin_ns)}"
                if end - start == 1
                else f"between {since_start(t0, self._origin_ns)} and "
                f"{since_start(t1, self._origin_ns)}"
            )
            noun = "message" if n == 1 else "messages"
            evidence: dict[str, Any] = {
                "missed": n,
                "holes": int(end - start),
                "period_ns": period,
                "clock": "stamps" if cad.source == "stamp" else "receive times",
                "topic_missed": total,
                "topic_drop_ratio": round(ratio, 6),
                "max_drop_ratio": self.max_drop_ratio,
                "error_drop_ratio": self.error_drop_ratio,
            }
            if seq_missing is not None:
                evidence["topic_seq_missing"] = seq_missing
            events.append(
                Event(
                    t_ns=t0,
                    end_ns=t1,
                    topic=topic,
                    kind="drop",
                    severity=severity,
                    message=(
                        f"{topic}: {n} {noun} missing {where} ({ratio:.1%} of the topic's "
                        f"{expected} expected at {ms(period)})"
                    ),
                    evidence=evidence,
                )
            )
        return events

    @staticmethod
    def _seq_missing(stream: _Stream) -> int | None:
        """Missing ROS1 ``seq`` numbers, when the publisher fills them (not all zero)."""
        if not stream.read_seq or len(stream.seqs) < 2:
            return None
        seqs = np.unique(np.asarray(stream.seqs, dtype=np.int64))
        seqs = seqs[seqs >= 0]
        if seqs.size < 2:
            return None
        span = int(seqs[-1] - seqs[0] + 1)
        if seqs.size < span / 2:  # not a per-message counter
            return None
        return span - int(seqs.size)

    def _duplicates(self, stream: _Stream, metrics: Metrics) -> list[Event]:
        topic = stream.topic
        dup = np.asarray(stream.duplicates, dtype=np.int64)
        metrics.add("duplicates", int(dup.size), topic=topic, label=None)
        events = []
        for start, end in group_times(dup, self.merge_ns):
            n = end - start
            t0, t1 = int(dup[start]), int(dup[end - 1])
            noun = "copy" if n == 1 else "copies"
            events.append(
                Event(
                    t_ns=t0,
                    end_ns=t1,
                    topic=topic,
                    kind="duplicate",
                    severity="warning",
                    message=(
                        f"{topic}: {n} duplicate {noun} (same stamp and bytes as the message "
                        f"before) from {since_start(t0, self._origin_ns)}"
                    ),
                    evidence={"count": int(n), "log_times_ns": dup[start:end].tolist()[:50]},
                )
            )
        return events

    def _order(self, stream: _Stream, cad: Cadence, metrics: Metrics) -> list[Event]:
        topic = stream.topic
        stamps = np.asarray(stream.stamps, dtype=np.int64)
        log_times = np.asarray(stream.log, dtype=np.int64)
        good = stamps > 0
        idx, back, resumes = backsteps(stamps[good], min_back_ns=cad.period_ns // 2)
        idx, back = idx[resumes], back[resumes]
        metrics.add("out_of_order", int(idx.size), topic=topic)
        if not idx.size:
            return []
        at = log_times[good][idx]
        events = []
        for start, end in group_times(at, self.merge_ns):
            n = end - start
            worst = int(back[start:end].max())
            t0, t1 = int(at[start]), int(at[end - 1])
            noun = "message" if n == 1 else "messages"
            events.append(
                Event(
                    t_ns=t0,
                    end_ns=t1,
                    topic=topic,
                    kind="out_of_order",
                    severity="warning",
                    message=(
                        f"{topic}: {n} {noun} arrived after a newer one (stamp back by up to "
                        f"{ms(worst)}) from {since_start(t0, self._origin_ns)}"
                    ),
                    evidence={
                        "count": int(n),
                        "max_back_ns": worst,
                        "back_ns": back[start:end].tolist()[:50],
                        "min_back_ns": cad.period_ns // 2,
                    },
                )
            )
        return events

    # -- report ---------------------------------------------------------------------------
    def _checks(self, found: _TopicFindings) -> list[Check]:
        topic, cad = found.topic, found.cadence
        rate = "n/a" if found.rate_hz is None else f"{found.rate_hz:.2f} Hz"
        checks: list[Check] = []
        judged = cad is not None and cad.periodic and found.msgtype not in RELAYED_TYPES
        if judged and cad is not None and not found.intermittent:
            rate_events = [e for e in found.events if e.kind in ("gap", "drop")]
            checks.append(
                Check(
                    name="rate",
                    topic=topic,
                    status=status_of(rate_events),
                    value=rate,
                    threshold=(
                        f"period {ms(cad.period_ns)}; gaps <= {self.gap_factor:g}x "
                        f"(>= {format_duration(self.min_gap_ns)})"
                    ),
                )
            )
        else:
            if found.count < self.min_messages:
                why = f"{found.count} messages: not judged"
            elif found.msgtype in RELAYED_TYPES:
                why = "relayed log/diagnostics: not judged"
            elif found.intermittent:
                why = "event-driven bursts: not judged"
            else:
                why = "irregular: not judged"
            checks.append(skip_check("rate", topic, rate, threshold=why))
        if found.stamped:
            checks.append(
                _counted(
                    found, "duplicate", name="duplicates", threshold="0 (same stamp and bytes)"
                )
            )
            if judged:
                checks.append(
                    _counted(
                        found, "out_of_order", name="order", threshold="stamps in arrival order"
                    )
                )
        return checks

    def _figures(self, findings: Sequence[_TopicFindings]) -> list[FigureSpec]:
        periodic = [
            f
            for f in findings
            if f.cadence is not None
            and f.cadence.periodic
            and f.msgtype not in RELAYED_TYPES
            and f.log_sorted is not None
        ]
        if not periodic:
            return []
        origin = self._origin_ns

        def draw_rates(fig: Figure) -> None:
            ax = fig.add_subplot(1, 1, 1)
            for i, found in enumerate(periodic):
                times = found.log_sorted
                assert times is not None
                if times.size < 2:
                    continue
                mid = (times[1:] + times[:-1]) // 2
                inst = _NS / np.maximum(np.diff(times), 1)
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                ax.plot(seconds(mid, origin), inst, ".", ms=2, color=colour, alpha=0.35)
                # whole seconds only: a partial last bin would show a false dip
                edges = np.arange(origin, int(times[-1]) + 1, _NS, dtype=np.int64)
                if edges.size >= 2:
                    counts, _ = np.histogram(times, bins=edges)
                    ax.stairs(
                        counts,
                        seconds(edges, origin),
                        color=colour,
                        label=found.topic,
                        linewidth=1.2,
                        baseline=None,  # no edges down to 0 at the first and last bin
                    )
                mark_events(ax, found.events, origin)
            ax.set_yscale("log")
            style_axes(
                ax,
                xlabel="log time (s)",
                ylabel="rate (Hz)",
                title="messages per second (lines) and per interval (dots)",
            )
            legend(ax, fontsize=7, loc="best")

        def draw_intervals(fig: Figure) -> None:
            ax = fig.add_subplot(1, 1, 1)
            bins = np.linspace(0, 4, 161).tolist()
            for i, found in enumerate(periodic):
                times = found.log_sorted
                assert times is not None
                assert found.cadence is not None
                ratio = np.clip(np.diff(times) / found.cadence.period_ns, 0, 4)
                ax.hist(
                    ratio,
                    bins=bins,
                    histtype="step",
                    label=found.topic,
                    color=TOPIC_COLOURS[i % len(TOPIC_COLOURS)],
                )
            ax.axvline(self.gap_factor, color="#e45756", linestyle="--", linewidth=1)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.8)  # single odd intervals stay visible
            style_axes(
                ax,
                xlabel="interval / nominal period (clipped at 4)",
                ylabel="intervals (count)",
                title="inter-arrival times",
            )
            legend(ax, fontsize=7, loc="best")

        height = 3.2 + 0.15 * len(periodic)
        return [
            FigureSpec(
                name="topic_rates",
                title="Topic rates over time",
                draw=draw_rates,
                size=(9.0, height),
            ),
            FigureSpec(
                name="inter_arrival",
                title="Inter-arrival times",
                draw=draw_intervals,
                size=(8.0, height),
            ),
        ]
