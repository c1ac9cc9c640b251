"""Whether the pipeline keeps up with the sensors: time per frame per stage, against the period.

A replay is offline, but the stages stand for what would run on the robot: a detector that
needs 150 ms per frame on a 10 Hz lidar falls behind in real time however well it scores. The
runner times every ``process`` call (:class:`~bagscope.pipeline.timing.StageTimings`); this
stage reads those times at ``finish`` - the runner finishes the stages only after the last
frame, so every frame's time is in - and judges a percentile (p95 by default: one slow frame in
a hundred is jitter, five are a backlog) against the budget, the sensor period the frames come
at (the median frame spacing), per stage and for all stages together.

Event kinds:

- ``over_budget``: a stage's p95 time per frame, or all stages' together, is longer than the
  frame period: warning (the pipeline cannot keep up in real time).
- ``within_budget``: info, for the total when it fits: how much of the budget it uses.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bagscope.analyzers.findings import skip_check
from bagscope.errors import BagscopeError
from bagscope.pipeline.stage import Check, Event, FigureSpec, Metrics, StageResult, status_of
from bagscope.pipeline.timing import percentiles_ns
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from array import array

    from matplotlib.figure import Figure

    from bagscope.pipeline.stage import RunContext
    from bagscope.pipeline.timing import StageTimings

__all__ = ["StageTiming"]

TOTAL = "all stages"


def _nearest_rank(values: array[int], percentile: float) -> int:
    """The nearest-rank percentile (as :func:`percentiles_ns` computes p50/p95/p99)."""
    arr = np.sort(np.frombuffer(values, dtype=np.int64))
    rank = max(1, math.ceil(percentile / 100 * arr.size))
    return int(arr[rank - 1])


def _ms(ns: int | None) -> float:
    return float("nan") if ns is None else ns / 1e6


class StageTiming:
    """Per-stage percentiles of the time per frame, judged against the sensor period.

    ``budget_ns`` overrides the budget (default: the run's frame period, the median spacing of
    the frames); ``percentile`` is the one judged (default 95).
    """

    def __init__(
        self,
        *,
        budget_ns: int | None = None,
        percentile: float = 95.0,
        name: str | None = None,
    ) -> None:
        if budget_ns is not None and budget_ns <= 0:
            msg = f"budget_ns must be a positive number of nanoseconds, got {budget_ns}"
            raise BagscopeError(msg)
        if not 0 < percentile <= 100:
            msg = f"percentile must be in (0, 100], got {percentile}"
            raise BagscopeError(msg)
        self.name = name or "stage_timing"
        self.budget_ns = budget_ns
        self.percentile = float(percentile)
        self._timings: StageTimings | None = None
        self._origin_ns = 0
        self._context: RunContext | None = None

    def setup(self, context: RunContext) -> None:
        self._timings = context.timings
        self._origin_ns = context.info.start_ns
        self._context = context

    def finish(self) -> StageResult:
        result = StageResult()
        timings = self._timings
        series = {} if timings is None else {k: v for k, v in timings.frames.items() if v}
        if timings is None or not series:
            result.checks.append(self._skip("no frames were processed by a frame stage"))
            return result
        budget = self.budget_ns if self.budget_ns is not None else timings.period_ns
        self._metrics(result.metrics, timings, series)
        if budget is None:
            result.checks.append(self._skip("fewer than two frames: no frame period to judge by"))
            return result
        label = f"p{self.percentile:g}"
        judged: dict[str, int] = {}
        for stage, values in series.items():
            judged[stage] = value = _nearest_rank(values, self.percentile)
            events = []
            if value > budget:
                events.append(
                    self._stage_event(stage, value=value, budget=budget, frames=len(values))
                )
            result.events.extend(events)
            result.checks.append(self._check(stage, value=value, budget=budget, events=events))
        total = timings.frame_totals()
        total_value = _nearest_rank(total, self.percentile)
        total_event = self._total_event(
            total_value, budget=budget, per_stage=judged, frames=len(total)
        )
        result.events.append(total_event)
        result.checks.append(
            self._check(TOTAL, value=total_value, budget=budget, events=[total_event])
        )
        result.metrics.add("budget_ms", budget / 1e6)
        result.metrics.add(f"total_{label}_ms", total_value / 1e6)
        result.figures.append(
            self._figure(series, total=total, budget=budget, events=result.events)
        )
        return result

    # ------------------------------------------------------------------------------ results

    def _skip(self, why: str) -> Check:
        return skip_check("time per frame", None, why)

    def _metrics(
        self, metrics: Metrics, timings: StageTimings, series: dict[str, array[int]]
    ) -> None:
        frame_times = self._frame_times_ns()
        for stage, values in series.items():
            stats = percentiles_ns(values)
            for key, value in stats.items():
                metrics.add(f"frame_{key}_ms", _ms(value), label=stage)
            metrics.add("frames", len(values), label=stage)
            metrics.add("frame_total_ms", sum(values) / 1e6, label=stage)
            if len(frame_times) == len(values):
                metrics.extend("frame_ms", frame_times, np.asarray(values) / 1e6, label=stage)
        for stage, spent in timings.messages.items():
            calls = timings.message_calls.get(stage, 0)
            metrics.add("message_total_ms", spent / 1e6, label=stage)
            metrics.add("message_calls", calls, label=stage)
            if calls:
                metrics.add("message_us_per_call", spent / calls / 1e3, label=stage)
        total = timings.frame_totals()
        for key, value in percentiles_ns(total).items():
            metrics.add(f"frame_{key}_ms", _ms(value), label=TOTAL)
        if len(frame_times) == len(total):
            metrics.extend("frame_ms", frame_times, np.asarray(total) / 1e6, label=TOTAL)
        if timings.period_ns is not None:
            metrics.add("period_ms", timings.period_ns / 1e6)

    def _frame_times_ns(self) -> list[int]:
        stats = self._context.frame_stats() if self._context is not None else None
        return [] if stats is None else list(stats.frame_times_ns)

    def _stage_event(self, stage: str, *, value: int, budget: int, frames: int) -> Event:
        label = f"p{self.percentile:g}"
        return Event(
            t_ns=self._origin_ns,
            end_ns=self._context.info.end_ns if self._context else self._origin_ns,
            topic=None,
            kind="over_budget",
            severity="warning",
            message=(
                f"stage {stage!r} takes {format_duration(value)} per frame ({label}), longer "
                f"than the {format_duration(budget)} frame period: it cannot keep up in real time"
            ),
            evidence={
                "stage": stage,
                "percentile": self.percentile,
                "value_ns": value,
                "budget_ns": budget,
                "frames": frames,
            },
        )

    def _total_event(
        self, value: int, *, budget: int, per_stage: dict[str, int], frames: int
    ) -> Event:
        label = f"p{self.percentile:g}"
        over = value > budget
        share = value / budget
        if over:
            text = (
                f"all stages together take {format_duration(value)} per frame ({label}), "
                f"{share:.1f}x the {format_duration(budget)} frame period: the pipeline cannot "
                "keep up in real time"
            )
        else:
            text = (
                f"all stages together take {format_duration(value)} per frame ({label}), "
                f"{share:.0%} of the {format_duration(budget)} frame period"
            )
        return Event(
            t_ns=self._origin_ns,
            end_ns=self._context.info.end_ns if self._context else self._origin_ns,
            topic=None,
            kind="over_budget" if over else "within_budget",
            severity="warning" if over else "info",
            message=text,
            evidence={
                "stage": TOTAL,
                "percentile": self.percentile,
                "value_ns": value,
                "budget_ns": budget,
                "frames": frames,
                "stages_ns": dict(per_stage),
            },
        )

    def _check(self, stage: str, *, value: int, budget: int, events: list[Event]) -> Check:
        return Check(
            name=f"time per frame: {stage}",
            topic=None,
            status=status_of(events),
            value=f"p{self.percentile:g} {format_duration(value)}",
            threshold=f"<= {format_duration(budget)} (frame period)",
        )

    # ------------------------------------------------------------------------------ figure

    def _figure(
        self,
        series: dict[str, array[int]],
        *,
        total: array[int],
        budget: int,
        events: list[Event],
    ) -> FigureSpec:
        rows = {stage: percentiles_ns(values) for stage, values in series.items()}
        rows[TOTAL] = percentiles_ns(total)
        over = {e.evidence["stage"] for e in events if e.severity != "info"}

        def draw(fig: Figure) -> None:
            from bagscope.analyzers.plotting import (
                SEVERITY_COLOURS,
                TOPIC_COLOURS,
                legend,
                style_axes,
            )

            ax = fig.add_subplot(1, 1, 1)
            names = list(rows)
            y = np.arange(len(names), dtype=float)
            height = 0.26
            budget_ms = budget / 1e6
            shown = [_ms(rows[n][k]) for n in names for k in ("p50", "p95", "max")]
            positive = [v for v in shown if v > 0]
            # Microsecond stages next to a 100 ms budget vanish on a linear axis: go log.
            floor = min(positive) / 3 if positive else 0.0
            log = bool(positive) and max(positive) < budget_ms / 20
            for k, (key, colour) in enumerate(
                (("p50", TOPIC_COLOURS[0]), ("p95", TOPIC_COLOURS[2]), ("max", TOPIC_COLOURS[7]))
            ):
                values = np.array([_ms(rows[n][key]) for n in names])
                left = floor if log else 0.0
                ax.barh(
                    y + (k - 1) * height,
                    np.maximum(values - left, 0),
                    left=left,
                    height=height,
                    color=colour,
                    label=key,
                )
            if log:
                ax.set_xscale("log")
            ax.axvline(budget_ms, color=SEVERITY_COLOURS["error"], linewidth=1.2)
            ax.text(
                budget_ms,
                -0.5,
                " frame period",
                color=SEVERITY_COLOURS["error"],
                fontsize=8,
                va="bottom",
            )
            ax.set_yticks(y, [f"{n} (!)" if n in over else n for n in names])
            ax.invert_yaxis()
            style_axes(ax, xlabel="time per frame (ms)", ylabel="stage")
            legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

        height = max(2.4, 0.6 * (len(rows) + 1))
        return FigureSpec(
            name=f"{self.name}_per_stage",
            title="Time per frame per stage against the frame period",
            draw=draw,
            size=(8.0, height),
        )
