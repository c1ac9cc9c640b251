"""Timestamp anomalies: stamps that are wrong in themselves, whatever the transport did.

Event kinds:

- ``zero_stamp`` - error: a header stamp left unset (0, or within the epoch's first
  ``zero_limit_s`` while the log's clock is a real date). Nothing can be synced or looked up in
  TF at such a time. Neighbours within a second are one event.
- ``stamp_far_from_log_time`` - warning: a stamp more than ``max_skew_s`` from the time it was
  logged. When nearly all of a topic's stamps are (``other_clock_share``), the topic is on
  another clock (device uptime, simulation time) and gets one event; otherwise each stretch of
  such messages does.
- ``non_monotonic`` - warning: a stream's stamps step back (by at least ``min_back_ms`` and
  half a period) *and stay back*: the clock was set back. A stamp that steps back and after
  which the stream resumes is a late delivery: :mod:`bagscope.analyzers.topic_health`'s
  ``out_of_order``, not this.
- ``stamp_jump`` - warning: the stamp clock leaps against the log clock by more than
  ``jump_s`` between two messages and stays there (an NTP step, a device resync).

Stamps latency analysis ignores (zero, far off) are reported here; latency, offsets and drift
of plausible stamps are :mod:`bagscope.analyzers.latency`'s. Relayed topics (rosout,
diagnostics) carry many nodes' stamps and static TF carries none that matter: neither is
judged. Each publisher of a topic (ROS1 records one connection per publisher) is its own
stream for ordering.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from bagscope.analyzers.plotting import TOPIC_COLOURS, legend, mark_events, seconds, style_axes
from bagscope.analyzers.streams import (
    RELAYED_TYPES,
    backsteps,
    cadence,
    check_positive,
    group_times,
    int_median,
    since_start,
    stamp_reader,
    stream_map,
)
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, status_of
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Metrics, RunContext
    from bagscope.replay.message import Message

__all__ = ["TimestampAnomalies"]

_NS = 1_000_000_000
_MS = 1_000_000
# A log time past this is a real date (1973), so a stamp near zero cannot be simulation time.
_EPOCH_NS = 100_000_000 * _NS
_JUMP_CONTEXT = 5  # messages either side whose latency must agree that a jump happened


@dataclass(slots=True)
class _Stream:
    topic: str
    read_stamp: Callable[[Message], int]
    log: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[int] = field(default_factory=lambda: array("q"))


class TimestampAnomalies:
    """Zero stamps, stamps on another clock, clocks set back and clock jumps."""

    def __init__(
        self,
        *,
        zero_limit_s: float = 1.0,
        max_skew_s: float = 2.0,
        other_clock_share: float = 0.9,
        min_back_ms: float = 1.0,
        jump_s: float = 1.0,
        merge_s: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.zero_limit_ns = round(check_positive("zero_limit_s", zero_limit_s) * _NS)
        self.max_skew_ns = round(check_positive("max_skew_s", max_skew_s) * _NS)
        if not 0 < other_clock_share <= 1:
            msg = f"parameter other_clock_share must be in (0, 1], got {other_clock_share!r}"
            raise BagscopeError(msg)
        self.other_clock_share = float(other_clock_share)
        self.min_back_ns = round(check_positive("min_back_ms", min_back_ms) * _MS)
        self.jump_ns = round(check_positive("jump_s", jump_s) * _NS)
        self.merge_ns = round(check_positive("merge_s", merge_s, allow_zero=True) * _NS)
        self.name = name or "timestamps"
        self._streams: list[_Stream] = []
        self._by_conn: dict[int, _Stream] = {}
        self._origin_ns = 0
        self._skews: dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}

    # -- setup and reading ----------------------------------------------------------------
    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        types = context.topic_types
        topics = [t for t in types if types[t] not in RELAYED_TYPES and not t.endswith("tf_static")]
        readers = {t: stamp_reader(context.log, t) for t in topics}
        stamped = [t for t in topics if readers[t] is not None]
        index, topics_of = stream_map(context.log, stamped)
        self._streams = []
        for topic in topics_of:
            reader = readers[topic]
            assert reader is not None
            self._streams.append(_Stream(topic=topic, read_stamp=reader))
        self._by_conn = {cid: self._streams[i] for cid, i in index.items()}

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(dict.fromkeys(s.topic for s in self._streams))

    def on_message(self, msg: Message) -> None:
        stream = self._by_conn[msg.connection.id]
        stream.log.append(msg.log_time_ns)
        stream.stamps.append(stream.read_stamp(msg))

    # -- analysis -------------------------------------------------------------------------
    def finish(self) -> StageResult:
        result = StageResult()
        per_topic: dict[str, list[Event]] = {}
        counts: dict[str, dict[str, int]] = {}
        for stream in self._streams:
            events = self._stream(stream)
            per_topic.setdefault(stream.topic, []).extend(events)
            tally = counts.setdefault(
                stream.topic,
                {
                    "zero_stamp": 0,
                    "stamp_far_from_log_time": 0,
                    "non_monotonic": 0,
                    "stamp_jump": 0,
                },
            )
            for event in events:
                tally[event.kind] += int(event.evidence.get("count", 1))
        for topic, events in per_topic.items():
            result.events.extend(events)
            result.checks.append(self._check(topic, events, counts[topic]))
            self._metrics(result.metrics, topic, counts[topic])
        result.figures.extend(self._figures(per_topic))
        return result

    def _stream(self, stream: _Stream) -> list[Event]:
        log = np.asarray(stream.log, dtype=np.int64)
        stamps = np.asarray(stream.stamps, dtype=np.int64)
        readable = stamps >= 0
        log, stamps = log[readable], stamps[readable]
        if not log.size:
            return []
        zero = (stamps == 0) | ((stamps < self.zero_limit_ns) & (log >= _EPOCH_NS))
        events = self._zero(stream.topic, log[zero])
        log, stamps = log[~zero], stamps[~zero]
        skew = log - stamps
        self._skews.setdefault(stream.topic, (log, skew))
        far = np.abs(skew) > self.max_skew_ns
        events += self._far(stream.topic, log=log, skew=skew, far=far)
        if far.any() and far.mean() < self.other_clock_share:
            # a few stray stamps would read as the clock jumping there and back
            log, stamps, skew = log[~far], stamps[~far], skew[~far]
        events += self._order(stream.topic, log=log, stamps=stamps, skew=skew)
        return events

    def _zero(self, topic: str, at: NDArray[np.int64]) -> list[Event]:
        events = []
        for start, end in group_times(at, self.merge_ns):
            n = end - start
            t0, t1 = int(at[start]), int(at[end - 1])
            where = (
                f"at {since_start(t0, self._origin_ns)}"
                if n == 1
                else f"between {since_start(t0, self._origin_ns)} and "
                f"{since_start(t1, self._origin_ns)}"
            )
            events.append(
                Event(
                    t_ns=t0,
                    end_ns=t1,
                    topic=topic,
                    kind="zero_stamp",
                    severity="error",
                    message=f"{topic}: {n} message{'s' if n > 1 else ''} with a zero "
                    f"(unset) header stamp {where}",
                    evidence={
                        "count": int(n),
                        "log_times_ns": at[start:end].tolist()[:50],
                        "zero_limit_ns": self.zero_limit_ns,
                    },
                )
            )
        return events

    def _far(
        self,
        topic: str,
        *,
        log: NDArray[np.int64],
        skew: NDArray[np.int64],
        far: NDArray[np.bool_],
    ) -> list[Event]:
        if not far.any():
            return []
        if far.mean() >= self.other_clock_share:
            median = int_median(skew)
            way = "behind" if median > 0 else "ahead of"
            return [
                Event(
                    t_ns=int(log[0]),
                    end_ns=int(log[-1]),
                    topic=topic,
                    kind="stamp_far_from_log_time",
                    severity="warning",
                    message=(
                        f"{topic}: stamps are on another clock, {format_duration(abs(median))} "
                        f"{way} the log's (device uptime or simulation time?)"
                    ),
                    evidence={
                        "count": int(far.sum()),
                        "median_skew_ns": median,
                        "share": round(float(far.mean()), 4),
                        "max_skew_ns": self.max_skew_ns,
                    },
                )
            ]
        at = log[far]
        off = skew[far]
        events = []
        for start, end in group_times(at, self.merge_ns):
            n = end - start
            worst = int(off[start:end][np.argmax(np.abs(off[start:end]))])
            events.append(
                Event(
                    t_ns=int(at[start]),
                    end_ns=int(at[end - 1]),
                    topic=topic,
                    kind="stamp_far_from_log_time",
                    severity="warning",
                    message=(
                        f"{topic}: {n} message{'s' if n > 1 else ''} stamped up to "
                        f"{format_duration(abs(worst))} {'before' if worst > 0 else 'after'} "
                        f"being logged, from {since_start(int(at[start]), self._origin_ns)}"
                    ),
                    evidence={
                        "count": int(n),
                        "worst_skew_ns": worst,
                        "max_skew_ns": self.max_skew_ns,
                    },
                )
            )
        return events

    def _order(
        self,
        topic: str,
        *,
        log: NDArray[np.int64],
        stamps: NDArray[np.int64],
        skew: NDArray[np.int64],
    ) -> list[Event]:
        if stamps.size < 2:
            return []
        cad = cadence(log, stamps)
        period = cad.period_ns if cad is not None and cad.periodic else 0
        min_back = max(self.min_back_ns, period // 2)
        idx, back, resumes = backsteps(stamps, min_back_ns=min_back)
        events = []
        for i, b in zip(idx[~resumes].tolist(), back[~resumes].tolist(), strict=True):
            events.append(
                Event(
                    t_ns=int(log[i - 1]),
                    end_ns=int(log[i]),
                    topic=topic,
                    kind="non_monotonic",
                    severity="warning",
                    message=(
                        f"{topic}: stamps go back by {format_duration(b)} at "
                        f"{since_start(int(log[i]), self._origin_ns)} and stay back (the clock "
                        "was set back)"
                    ),
                    evidence={"back_ns": int(b), "min_back_ns": int(min_back)},
                )
            )
        set_back = set(idx[~resumes].tolist())
        events += self._jumps(topic, log=log, skew=skew, exclude=set_back)
        return events

    def _jumps(
        self,
        topic: str,
        *,
        log: NDArray[np.int64],
        skew: NDArray[np.int64],
        exclude: set[int],
    ) -> list[Event]:
        steps = np.diff(skew)
        events = []
        for i in (np.flatnonzero(np.abs(steps) > self.jump_ns) + 1).tolist():
            if i in exclude:
                continue
            before = skew[max(0, i - _JUMP_CONTEXT) : i]
            after = skew[i : i + _JUMP_CONTEXT]
            shift = int_median(after) - int_median(before)
            if abs(shift) <= self.jump_ns:
                continue  # one odd stamp, not a clock that moved
            way = "forward" if shift < 0 else "back"
            events.append(
                Event(
                    t_ns=int(log[i - 1]),
                    end_ns=int(log[i]),
                    topic=topic,
                    kind="stamp_jump",
                    severity="warning",
                    message=(
                        f"{topic}: the stamp clock jumps {way} by {format_duration(abs(shift))} "
                        f"against the log clock at {since_start(int(log[i]), self._origin_ns)}"
                    ),
                    evidence={"shift_ns": -shift, "jump_ns": self.jump_ns},
                )
            )
        return events

    # -- report ---------------------------------------------------------------------------
    def _check(self, topic: str, events: Sequence[Event], counts: dict[str, int]) -> Check:
        value = (
            f"{counts['zero_stamp']} zero, {counts['stamp_far_from_log_time']} off-clock, "
            f"{counts['non_monotonic']} set back, {counts['stamp_jump']} jumps"
        )
        return Check(
            name="stamps",
            topic=topic,
            status=status_of(events),
            value=value,
            threshold=f"none; |stamp - log time| <= {format_duration(self.max_skew_ns)}",
        )

    @staticmethod
    def _metrics(metrics: Metrics, topic: str, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            metrics.add(kind, n, topic=topic)

    def _figures(self, per_topic: dict[str, list[Event]]) -> list[FigureSpec]:
        flagged = [t for t, events in per_topic.items() if events and t in self._skews]
        if not flagged:
            return []
        origin = self._origin_ns
        skews = {t: self._skews[t] for t in flagged}

        def draw(fig: Figure) -> None:
            ax = fig.add_subplot(1, 1, 1)
            for i, topic in enumerate(flagged):
                log, skew = skews[topic]
                ax.plot(
                    seconds(log, origin),
                    skew / _MS,
                    ".",
                    ms=2,
                    label=topic,
                    color=TOPIC_COLOURS[i % len(TOPIC_COLOURS)],
                )
                mark_events(ax, per_topic[topic], origin)
            ax.set_yscale("symlog", linthresh=10)
            style_axes(
                ax,
                xlabel="log time (s)",
                ylabel="log time - stamp (ms)",
                title="stamps against the log clock (zero stamps left out)",
            )
            legend(ax, fontsize=7, loc="best")

        return [FigureSpec(name="stamp_skew", title="Stamp anomalies", draw=draw)]
