"""How well the synced topics line up: per-frame skew between the members, and what the sync lost.

A frame is only as good as the time its members agree on: a camera image 40 ms off a 10 Hz
sweep paints the wrong pixels on every moving object. Skew is measured per pair - the
reference (the first synced topic, the one every frame is made for) against each other topic -
as the difference of the stamps the policy synced on (``frame.stamps_ns``), signed (positive:
the partner is later). For a partner that keeps its rhythm, the nearest message is never more
than half its period away, so the default limit is ``skew_factor`` (0.75) x the partner's own
median period: half a period plus a quarter for stamp jitter. Single frames over it are
counted; a stretch of ``min_stretch`` consecutive frames is a finding.

The sync policy's accounting (:class:`~bagscope.replay.framing.FrameStats`) tells what never
made it into a frame: per topic *used*, *not needed* (a closer message won: a rate
difference, not a loss), *dropped* (no frame was possible for it) and decode errors. No policy
emits partial frames, so a frame "missing a topic" shows as a stretch without frames: those
stretches (frames further apart than 1.5 median spacings, the framing's own rule) are the
evidence of a drop.

Event kinds:

- ``sync_skew``: a pair's skew stayed above the limit for ``min_stretch`` frames or more
  (warning).
- ``sync_dropped``: the sync policy dropped more than ``max_dropped`` of a topic's messages
  (warning); decode errors are the point cloud and image analyzers' findings and are only
  counted here.
- ``sync_no_frames``: the synced topics carried messages but not one frame came out (error).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

import numpy as np

from bagscope.analyzers.findings import report_check, runs, skip_check
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, StageResult, status_of
from bagscope.replay.errors import DecodeError
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import RunContext
    from bagscope.replay.frame import Frame
    from bagscope.replay.framing import FrameStats
    from bagscope.replay.message import Message

__all__ = ["SyncQuality"]

# Frames further apart than this many median spacings leave a stretch without frames (the
# framing module's own rule for telling a loss from a rate difference).
_NORMAL_GAP = 1.5
# A partner whose intervals are mostly (this share) within ±25 % of the median keeps a rhythm.
_PERIODIC_SHARE = 0.5
_PERIODIC_TOLERANCE = 0.25
_MIN_INTERVALS = 5
_MAX_WINDOWS = 20  # stretches without frames listed in an event's evidence


def _period(times: array[int]) -> tuple[int | None, bool]:
    """Median interval of a topic's log times and whether the topic keeps that rhythm."""
    if len(times) < _MIN_INTERVALS + 1:
        return None, False
    t = np.unique(np.frombuffer(times, dtype=np.int64))
    if t.size < _MIN_INTERVALS + 1:
        return None, False
    intervals = np.diff(t)
    median = int(np.median(intervals))
    if median <= 0:
        return None, False
    near = np.abs(intervals - median) <= _PERIODIC_TOLERANCE * median
    return median, bool(near.mean() > _PERIODIC_SHARE)


class SyncQuality:
    """Skew per synced pair and the sync policy's losses per topic.

    ``max_skew_ns`` fixes the skew limit for every pair (default: ``skew_factor`` x each
    partner's median period); ``min_stretch`` frames in a row over it make a finding;
    ``max_dropped`` is the share of a topic's messages the policy may drop.
    """

    uses_outputs = False  # reads a frame's stamps only: time shards need not split it

    def __init__(
        self,
        *,
        max_skew_ns: int | None = None,
        skew_factor: float = 0.75,
        min_stretch: int = 3,
        max_dropped: float = 0.05,
        name: str | None = None,
    ) -> None:
        if max_skew_ns is not None and max_skew_ns <= 0:
            msg = f"max_skew_ns must be positive, got {max_skew_ns}"
            raise BagscopeError(msg)
        if not skew_factor > 0:
            msg = f"skew_factor must be positive, got {skew_factor}"
            raise BagscopeError(msg)
        if min_stretch < 1:
            msg = f"min_stretch must be at least 1 frame, got {min_stretch}"
            raise BagscopeError(msg)
        if not 0 <= max_dropped < 1:
            msg = f"max_dropped must be a fraction in [0, 1), got {max_dropped}"
            raise BagscopeError(msg)
        self.name = name or "sync"
        self.max_skew_ns = max_skew_ns
        self.skew_factor = float(skew_factor)
        self.min_stretch = int(min_stretch)
        self.max_dropped = float(max_dropped)
        self._recorded: tuple[str, ...] = ()
        self._times: dict[str, array[int]] = {}  # log times per recorded topic
        self._stamps: dict[str, array[int]] = {}  # header stamps (log time without a header)
        self._by_log_time: set[str] = set()  # recorded topics the policy synced on log time
        self._policy: tuple[str, ...] = ()
        self._frame_t: array[int] = array("q")
        self._skews: list[array[int]] = []
        self._stats: Callable[[], FrameStats | None] = lambda: None
        self._origin_ns = 0
        self._end_ns = 0

    # ------------------------------------------------------------------------------ reading

    def setup(self, context: RunContext) -> None:
        self._recorded = tuple(context.sync_topics)
        self._times = {topic: array("q") for topic in self._recorded}
        self._stamps = {topic: array("q") for topic in self._recorded}
        self._stats = context.frame_stats
        self._origin_ns = context.info.start_ns
        self._end_ns = context.info.end_ns

    @property
    def message_topics(self) -> Collection[str]:
        return self._recorded

    def on_message(self, msg: Message) -> None:
        log_time = msg.log_time_ns
        try:
            stamp = msg.header_stamp_ns
        except DecodeError:  # too short for a header: the framing counts it as corrupt
            stamp = None
        self._times[msg.topic].append(log_time)
        self._stamps[msg.topic].append(log_time if stamp is None else stamp)

    def process(self, frame: Frame) -> None:
        stamps = frame.stamps_ns
        if not self._policy:
            self._policy = tuple(stamps)
            self._skews = [array("q") for _ in self._policy[1:]]
            self._stamp_sources(frame)
        reference = stamps[self._policy[0]]
        self._frame_t.append(frame.t_ns)
        for topic, skews in zip(self._policy[1:], self._skews, strict=True):
            skews.append(stamps[topic] - reference)

    def _stamp_sources(self, frame: Frame) -> None:
        """Which topics the policy synced on log time (``--stamp log``): their periods must be
        measured on the same clock as their skew."""
        for policy_topic, recorded in zip(self._policy, self._recorded, strict=False):
            msg = frame.messages[policy_topic]
            if msg.header_stamp_ns != frame.stamps_ns[policy_topic]:
                self._by_log_time.add(recorded)

    # ------------------------------------------------------------------------------ results

    def finish(self) -> StageResult:
        result = StageResult()
        if not self._recorded:
            result.checks.append(skip_check("sync", None, "no sync policy: no frames to judge"))
            return result
        stats = self._stats()
        policy = stats.topics if stats is not None and stats.topics else self._policy
        names = dict(zip(policy, self._recorded, strict=False))
        frames = np.frombuffer(self._frame_t, dtype=np.int64)
        result.metrics.add("frames", frames.size)
        if frames.size == 0:
            self._no_frames(result, stats)
        else:
            for k, partner in enumerate(self._policy[1:]):
                skews = np.frombuffer(self._skews[k], dtype=np.int64)
                self._pair(result, names=names, partner=partner, skews=skews)
        if stats is not None:
            self._accounting(result, stats, names=names, frames=frames)
        if frames.size:
            result.figures.append(self._figure(names, frames, result.events))
        return result

    def _pair(
        self,
        result: StageResult,
        *,
        names: dict[str, str],
        partner: str,
        skews: NDArray[np.int64],
    ) -> None:
        reference = names.get(self._policy[0], self._policy[0])
        topic = names.get(partner, partner)
        frames = np.frombuffer(self._frame_t, dtype=np.int64)
        metrics = result.metrics
        metrics.extend("skew_ms", frames, skews / 1e6, topic=topic, label=reference)
        magnitude = np.abs(skews)
        p50, p95 = np.percentile(magnitude, [50, 95], method="nearest")
        worst = int(magnitude.max())
        metrics.add("skew_p50_ms", float(p50) / 1e6, topic=topic, label=reference)
        metrics.add("skew_p95_ms", float(p95) / 1e6, topic=topic, label=reference)
        metrics.add("skew_max_ms", worst / 1e6, topic=topic, label=reference)
        limit, why = self._limit(topic)
        value = f"p95 {format_duration(int(p95))}, max {format_duration(worst)}"
        name = f"skew vs {reference}"
        if limit is None:
            result.checks.append(skip_check(name, topic, f"{value} ({why}: not judged)"))
            return
        over = magnitude > limit
        metrics.add("frames_over_skew", int(over.sum()), topic=topic, label=reference)
        events = [
            self._skew_event(
                reference, topic, skews=skews, frames=frames, run=run, limit=limit, why=why
            )
            for run in runs(over)
            if run[1] - run[0] + 1 >= self.min_stretch
        ]
        report_check(
            result,
            events,
            name=name,
            topic=topic,
            value=f"{value}; {int(over.sum())} of {skews.size} frames over",
            threshold=f"<= {format_duration(limit)} for < {self.min_stretch} frames in a row",
        )

    def _limit(self, topic: str) -> tuple[int | None, str]:
        """The skew limit for a pair with ``topic`` and why it is that."""
        if self.max_skew_ns is not None:
            return self.max_skew_ns, "max_skew_ns"
        source = self._times if topic in self._by_log_time else self._stamps
        period, periodic = _period(source.get(topic, array("q")))
        if period is None:
            return None, "too few messages to know the partner's period"
        if not periodic:
            return None, "partner's intervals are irregular"
        return (
            round(self.skew_factor * period),
            f"{self.skew_factor:g} x its {format_duration(period)} period",
        )

    def _skew_event(
        self,
        reference: str,
        topic: str,
        *,
        skews: NDArray[np.int64],
        frames: NDArray[np.int64],
        run: tuple[int, int],
        limit: int,
        why: str,
    ) -> Event:
        first, last = run
        stretch = skews[first : last + 1]
        worst = int(stretch[np.argmax(np.abs(stretch))])
        count = last - first + 1
        return Event(
            t_ns=int(frames[first]),
            end_ns=int(frames[last]),
            topic=topic,
            kind="sync_skew",
            severity="warning",
            message=(
                f"{topic}: {format_duration(abs(worst))} off {reference} (worst) for {count} "
                f"frames in a row over {format_duration(int(frames[last] - frames[first]))}, "
                f"above {format_duration(limit)} ({why})"
            ),
            evidence={
                "reference": reference,
                "frames": count,
                "worst_skew_ns": worst,
                "median_skew_ns": int(np.median(stretch)),
                "limit_ns": limit,
                "min_stretch": self.min_stretch,
            },
        )

    def _no_frames(self, result: StageResult, stats: FrameStats | None) -> None:
        counts = {t: len(self._times.get(t, ())) for t in self._recorded}
        reasons = list(stats.reasons) if stats is not None else []
        events: list[Event] = []
        if any(counts.values()):
            because = f": {reasons[0]}" if reasons else ""
            events.append(
                Event(
                    t_ns=self._origin_ns,
                    end_ns=self._end_ns,
                    topic=self._recorded[0],
                    kind="sync_no_frames",
                    severity="error",
                    message=f"the sync made no frame from {', '.join(self._recorded)}{because}",
                    evidence={"messages": counts, "reasons": reasons},
                )
            )
        result.events.extend(events)
        result.checks.append(
            Check(
                name="frames",
                topic=self._recorded[0],
                status=status_of(events) if events else "skip",
                value="0 frames" if events else "no messages on the synced topics",
                threshold="> 0",
            )
        )

    def _accounting(
        self,
        result: StageResult,
        stats: FrameStats,
        *,
        names: dict[str, str],
        frames: NDArray[np.int64],
    ) -> None:
        windows = _frameless_windows(frames)
        metrics = result.metrics
        for policy_topic in stats.topics:
            topic = names.get(policy_topic, policy_topic)
            messages = stats.messages.get(policy_topic, 0)
            counts = {
                "messages": messages,
                "used": stats.used.get(policy_topic, 0),
                "not_needed": stats.not_needed.get(policy_topic, 0),
                "dropped": stats.dropped.get(policy_topic, 0),
                "decode_errors": stats.decode_errors.get(policy_topic, 0),
            }
            for key, value in counts.items():
                metrics.add(key, value, topic=topic)
            if not messages:
                continue
            name = "dropped by sync"
            if not frames.size:
                result.checks.append(
                    skip_check(
                        name, topic, f"no frames at all ({counts['dropped']} of {messages} dropped)"
                    )
                )
                continue
            share = counts["dropped"] / messages
            metrics.add("dropped_share", share, topic=topic)
            events = []
            if share > self.max_dropped:
                cause = self._cause(stats, names) if policy_topic != stats.topics[0] else ""
                events.append(
                    self._dropped_event(
                        topic, counts, share=share, windows=windows, frames=frames, cause=cause
                    )
                )
            report_check(
                result,
                events,
                name=name,
                topic=topic,
                value=(
                    f"{share:.1%} ({counts['dropped']} of {messages}); "
                    f"{counts['not_needed']} not needed, {counts['decode_errors']} corrupt"
                ),
                threshold=f"<= {self.max_dropped:.1%}",
            )

    def _dropped_event(
        self,
        topic: str,
        counts: dict[str, int],
        *,
        share: float,
        windows: list[tuple[int, int]],
        frames: NDArray[np.int64],
        cause: str,
    ) -> Event:
        silent = self._silent_topics(windows)
        if windows:
            start, end = windows[0][0], windows[-1][1]
            where = (
                f"; {len(windows)} stretch{'es' if len(windows) > 1 else ''} without frames, "
                f"the longest {format_duration(max(b - a for a, b in windows))}"
            )
            if silent:
                where += f", while {', '.join(silent)} sent nothing"
        else:
            start, end = int(frames[0]), int(frames[-1])
            where = ""
        return Event(
            t_ns=start,
            end_ns=end,
            topic=topic,
            kind="sync_dropped",
            severity="warning",
            message=(
                f"{topic}: the sync dropped {counts['dropped']} of {counts['messages']} "
                f"messages ({share:.1%}, no frame was possible for them){where}{cause}"
            ),
            evidence={
                **counts,
                "dropped_share": share,
                "max_dropped": self.max_dropped,
                "windows_ns": [list(w) for w in windows[:_MAX_WINDOWS]],
                "windows": len(windows),
                "silent_topics": silent,
                "reference": self._recorded[0],
            },
        )

    def _silent_topics(self, windows: list[tuple[int, int]]) -> list[str]:
        """The synced topics with no message at all inside some stretch without frames: the
        partner whose absence made the frames impossible."""
        silent = []
        for topic in self._recorded:
            source = self._times if topic in self._by_log_time else self._stamps
            stamps = np.sort(np.frombuffer(source.get(topic, array("q")), dtype=np.int64))
            for start, end in windows:
                lo = np.searchsorted(stamps, start, side="right")
                hi = np.searchsorted(stamps, end, side="left")
                if hi <= lo:
                    silent.append(topic)
                    break
        return silent

    def _cause(self, stats: FrameStats, names: dict[str, str]) -> str:
        """Why a partner's messages found no frame, when the reference lost messages itself."""
        reference = stats.topics[0]
        lost = stats.dropped.get(reference, 0)
        corrupt = stats.decode_errors.get(reference, 0)
        if not lost and not corrupt:
            return ""
        parts = [f"{n} {what}" for n, what in ((corrupt, "corrupt"), (lost, "dropped")) if n]
        return (
            f" (the reference {names.get(reference, reference)} lost messages: "
            f"{' and '.join(parts)}; frames are made for reference messages only)"
        )

    # ------------------------------------------------------------------------------ figure

    def _figure(
        self, names: dict[str, str], frames: NDArray[np.int64], events: Sequence[Event]
    ) -> FigureSpec:
        reference = names.get(self._policy[0], self._policy[0])
        pairs: list[tuple[str, NDArray[np.int64], int | None]] = []
        for k, partner in enumerate(self._policy[1:]):
            topic = names.get(partner, partner)
            pairs.append(
                (topic, np.frombuffer(self._skews[k], dtype=np.int64).copy(), self._limit(topic)[0])
            )
        times = frames.copy()
        origin = self._origin_ns
        skew_events = [e for e in events if e.kind in ("sync_skew", "sync_dropped")]

        def draw(fig: Figure) -> None:
            from bagscope.analyzers.plotting import (
                TOPIC_COLOURS,
                legend,
                mark_events,
                seconds,
                style_axes,
            )

            grid = fig.add_gridspec(1, 2, width_ratios=(3, 1))
            ax = fig.add_subplot(grid[0, 0])
            hist = fig.add_subplot(grid[0, 1], sharey=ax)
            x = seconds(times.tolist(), origin)
            for i, (topic, skews, limit) in enumerate(pairs):
                colour = TOPIC_COLOURS[i % len(TOPIC_COLOURS)]
                ms = skews / 1e6
                ax.plot(x, ms, ".", markersize=3, color=colour, label=topic)
                hist.hist(ms, bins=40, orientation="horizontal", color=colour, alpha=0.7)
                if limit is not None:
                    for sign in (1, -1):
                        ax.axhline(sign * limit / 1e6, color=colour, linewidth=0.8, ls="--")
            mark_events(ax, skew_events, origin)
            style_axes(
                ax,
                xlabel="time since log start (s)",
                ylabel=f"stamp - {reference} (ms)",
            )
            style_axes(hist, xlabel="frames", ylabel="")
            legend(ax, loc="upper right", fontsize=8, frameon=False)

        return FigureSpec(
            name=f"{self.name}_skew",
            title=f"Skew of each synced topic against {reference}",
            draw=draw,
            size=(9.0, 3.4),
        )


def _frameless_windows(frames: NDArray[np.int64]) -> list[tuple[int, int]]:
    """``(last frame before, first frame after)`` of every stretch without frames."""
    if frames.size < 3:
        return []
    times = np.sort(frames)
    spacing = np.diff(times)
    median = float(np.median(spacing))
    gaps = np.flatnonzero(spacing > _NORMAL_GAP * median)
    return [(int(times[i]), int(times[i + 1])) for i in gaps]
