"""What the lidar actually saw: returns per sweep, range spread, azimuth coverage, damage.

A lidar that keeps publishing on time can still be useless: a wedge of azimuth with no returns
(mud, a mount, a cable across the window), half the usual returns, or a payload that disagrees
with its own sizes. Every PointCloud2 topic is read message by message, decoded (zero-copy) and
reduced to a few numbers per sweep; the judging happens at the end, against each topic's own
median, because absolute counts do not transfer between sensors.

A *return* is a point with finite, non-zero coordinates: organized clouds mark "no return" with
NaN (Velodyne) or with all-zero coordinates (Ouster). Azimuth is ``atan2(y, x)`` in the cloud's
own frame, in degrees counter-clockwise from +x, binned into ``sector_bins`` equal bins; range,
azimuth and intensity statistics use an evenly strided sample of at most 16384 points (the
counts of returns are exact), which keeps a 65k-point sweep near a millisecond.

Event kinds:

- ``corrupt``: payloads that fail to decode (sizes that disagree, unknown fields); one event per
  topic with the count and times (error).
- ``blocked_sector``: a run of azimuth bins that normally return points (median count per sweep
  at least ``min_bin_points``) returned almost none (below ``blocked_fraction`` of their median)
  for ``min_blocked_sweeps`` sweeps in a row; evidence has the azimuth range in degrees
  (warning). Bins that are empty most of the time (a 270° scanner's back, a mount that always
  hides the same wedge) are not judged.
- ``low_point_count``: sweeps with fewer than ``min_points_ratio`` x the topic's median returns
  (warning); judged on topics with at least 10 sweeps whose counts keep near their median.

Sweeps that repeat the previous one byte for byte (a driver stuck on a buffer) are
:mod:`bagscope.analyzers.freeze`'s ``freeze`` events, not judged here.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.analyzers.findings import (
    corrupt_findings,
    note_corrupt,
    per_topic_result,
    report_check,
    runs,
    skip_check,
)
from bagscope.errors import BagscopeError
from bagscope.pipeline.shards import ColumnShards
from bagscope.pipeline.stage import Event, FigureSpec, StageResult
from bagscope.replay.errors import DecodeError
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from bagscope.pipeline.stage import Metrics, RunContext
    from bagscope.replay.decode import PointCloud
    from bagscope.replay.message import Message

__all__ = ["PointCloudQuality"]

CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
_SAMPLE = 16384  # points for azimuth bins
_STATS_SAMPLE = 4096  # points for range and intensity percentiles
_RETURN_R2 = 1e-6  # squared range (m²) below which a point is "no return" (all-zero coordinates)
_MIN_SWEEPS = 10  # sweeps a topic needs before its own median is a baseline
_STABLE_SHARE = 0.5  # counts within ±25 % of the median in most sweeps: a steady sensor
_STABLE_TOLERANCE = 0.25
_INTENSITY_FIELDS = ("intensity", "intensities", "reflectivity")


def _pct(values: NDArray[Any], q: Sequence[float]) -> list[float]:
    if values.size == 0:
        return [math.nan] * len(q)
    ranks = [min(values.size - 1, max(0, math.ceil(p / 100 * values.size) - 1)) for p in q]
    part = np.partition(values, ranks)
    return [float(part[r]) for r in ranks]


@dataclass(slots=True)
class _Topic:
    """Per-topic columns, one entry per decoded sweep (plus the corrupt ones' times)."""

    times: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[int] = field(default_factory=lambda: array("q"))
    points: array[int] = field(default_factory=lambda: array("q"))  # points in the message
    returns: array[int] = field(default_factory=lambda: array("q"))
    nonfinite: array[int] = field(default_factory=lambda: array("q"))
    range_p5: array[float] = field(default_factory=lambda: array("d"))
    range_p50: array[float] = field(default_factory=lambda: array("d"))
    range_p95: array[float] = field(default_factory=lambda: array("d"))
    intensity_p50: array[float] = field(default_factory=lambda: array("d"))
    bins: array[int] = field(default_factory=lambda: array("q"))  # sweeps x bins, row-major
    corrupt_times: array[int] = field(default_factory=lambda: array("q"))
    first_error: str = ""
    messages: int = 0  # every message of the topic, judged or not
    unjudged: str = ""  # why the clouds have no coordinates to judge, if they have none


class PointCloudQuality(ColumnShards):
    """Per-sweep returns, ranges and azimuth coverage of every PointCloud2 topic."""

    # per-frame (per-message) columns: a long log's time shards are merged by joining them
    shard_fields = ("_topics",)

    def __init__(
        self,
        *,
        sector_bins: int = 36,
        min_blocked_sweeps: int = 5,
        blocked_fraction: float = 0.05,
        min_bin_points: int = 10,
        min_points_ratio: float = 0.5,
        name: str | None = None,
    ) -> None:
        if not 4 <= sector_bins <= 360:
            msg = f"sector_bins must be between 4 and 360, got {sector_bins}"
            raise BagscopeError(msg)
        if min_blocked_sweeps < 1:
            msg = f"min_blocked_sweeps must be at least 1, got {min_blocked_sweeps}"
            raise BagscopeError(msg)
        if not 0 <= blocked_fraction < 1:
            msg = f"blocked_fraction must be a fraction in [0, 1), got {blocked_fraction}"
            raise BagscopeError(msg)
        if min_bin_points < 1:
            msg = f"min_bin_points must be at least 1, got {min_bin_points}"
            raise BagscopeError(msg)
        if not 0 < min_points_ratio < 1:
            msg = f"min_points_ratio must be a fraction in (0, 1), got {min_points_ratio}"
            raise BagscopeError(msg)
        self.name = name or "pointcloud"
        self.sector_bins = int(sector_bins)
        self.min_blocked_sweeps = int(min_blocked_sweeps)
        self.blocked_fraction = float(blocked_fraction)
        self.min_bin_points = int(min_bin_points)
        self.min_points_ratio = float(min_points_ratio)
        self._topics: dict[str, _Topic] = {}
        self._origin_ns = 0
        self._bin_scale = np.float32(self.sector_bins / (2 * math.pi))
        self._r2 = np.empty(0, dtype=np.float32)
        self._tmp = np.empty(0, dtype=np.float32)
        self._valid = np.empty(0, dtype=bool)

    # ------------------------------------------------------------------------------ reading

    def setup(self, context: RunContext) -> None:
        self._origin_ns = context.info.start_ns
        self._topics = {
            t.name: _Topic() for t in context.info.topics if CLOUD_TYPE in t.msgtype.split(" | ")
        }

    @property
    def message_topics(self) -> Collection[str]:
        return tuple(self._topics)

    def on_message(self, msg: Message) -> None:
        state = self._topics[msg.topic]
        state.messages += 1
        try:
            cloud: PointCloud = msg.decode()  # type: ignore[assignment]
        except DecodeError as err:
            note_corrupt(state, msg.log_time_ns, err)
            return
        try:
            xyz = cloud.xyz
        except DecodeError as err:  # no scalar x, y, z (a feature or colour-only cloud)
            state.unjudged = state.unjudged or str(err)
            return
        state.times.append(msg.log_time_ns)
        state.stamps.append(cloud.stamp_ns)
        self._measure(state, cloud, xyz)

    def _scratch(self, n: int) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[Any]]:
        """Buffers reused from sweep to sweep: fresh 250 kB arrays cost page faults each time."""
        if self._r2.size < n:
            self._r2 = np.empty(n, dtype=np.float32)
            self._tmp = np.empty(n, dtype=np.float32)
            self._valid = np.empty(n, dtype=bool)
        return self._r2[:n], self._tmp[:n], self._valid[:n]

    def _measure(self, state: _Topic, cloud: PointCloud, xyz: NDArray[Any]) -> None:
        n = xyz.shape[0]
        x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        r2, tmp, valid = self._scratch(n)
        with np.errstate(invalid="ignore", over="ignore"):
            np.multiply(x, x, out=r2, casting="unsafe")
            np.multiply(y, y, out=tmp, casting="unsafe")
            r2 += tmp
            np.multiply(z, z, out=tmp, casting="unsafe")
            r2 += tmp
        np.isfinite(r2, out=valid)
        finite = int(np.count_nonzero(valid))
        np.greater(r2, _RETURN_R2, out=valid, where=valid)  # NaN and inf already False
        returns = int(np.count_nonzero(valid))
        state.points.append(n)
        state.returns.append(returns)
        state.nonfinite.append(n - finite)
        step = max(1, n // _SAMPLE)
        idx = np.flatnonzero(valid[::step]) * step
        self._azimuth_bins(state, x[idx], y[idx])
        stats_idx = idx[:: max(1, idx.size // _STATS_SAMPLE)]
        p5, p50, p95 = _pct(np.sqrt(r2[stats_idx]), (5, 50, 95))
        state.range_p5.append(p5)
        state.range_p50.append(p50)
        state.range_p95.append(p95)
        state.intensity_p50.append(self._intensity(cloud, stats_idx))

    def _azimuth_bins(self, state: _Topic, x: NDArray[Any], y: NDArray[Any]) -> None:
        azimuth = np.arctan2(y, x).astype(np.float32, copy=False)
        azimuth *= self._bin_scale
        bins = np.floor(azimuth).astype(np.intp)
        bins %= self.sector_bins
        state.bins.extend(np.bincount(bins, minlength=self.sector_bins).tolist())

    def _intensity(self, cloud: PointCloud, idx: NDArray[np.intp]) -> float:
        names = cloud.field_names
        for name in _INTENSITY_FIELDS:
            if name in names:
                values = cloud.fields[name].reshape(-1)
                if values.ndim != 1:
                    return math.nan
                return _pct(values[idx].astype(np.float64), (50,))[0]
        return math.nan

    # ------------------------------------------------------------------------------ results

    def finish(self) -> StageResult:
        return per_topic_result(
            self._topics,
            self._finish_topic,
            name="point clouds",
            none="no PointCloud2 topic in the log",
        )

    def _finish_topic(self, result: StageResult, topic: str, state: _Topic) -> None:
        times = np.frombuffer(state.times, dtype=np.int64)
        returns = np.frombuffer(state.returns, dtype=np.int64)
        self._metrics(result.metrics, topic, state=state, times=times, returns=returns)
        corrupt_findings(result, topic, state, noun="clouds")
        if state.unjudged and not times.size:
            result.checks.append(skip_check("returns per sweep", topic, state.unjudged))
            return
        self._low_points(result, topic, times=times, returns=returns)
        bins = np.frombuffer(state.bins, dtype=np.int64).reshape(-1, self.sector_bins)
        stamps = np.frombuffer(state.stamps, dtype=np.int64)
        self._blocked(result, topic, times=times, bins=bins, period=_period(stamps, times))
        if times.size:
            result.figures.extend(self._figures(topic, state, result.events))

    def _metrics(
        self,
        metrics: Metrics,
        topic: str,
        *,
        state: _Topic,
        times: NDArray[np.int64],
        returns: NDArray[np.int64],
    ) -> None:
        points = np.frombuffer(state.points, dtype=np.int64)
        nan_ratio = np.frombuffer(state.nonfinite, dtype=np.int64) / np.maximum(points, 1)
        metrics.add("sweeps", times.size, topic=topic)
        metrics.add("corrupt", len(state.corrupt_times), topic=topic)
        if not times.size:
            return
        metrics.extend("points", times, returns, topic=topic)
        metrics.extend("nan_ratio", times, nan_ratio, topic=topic)
        metrics.extend("range_p50", times, state.range_p50, topic=topic)
        metrics.add("points_median", float(np.median(returns)), topic=topic)
        metrics.add("nan_ratio_median", float(np.median(nan_ratio)), topic=topic)
        for key, values in (
            ("range_p5_median", state.range_p5),
            ("range_p50_median", state.range_p50),
            ("range_p95_median", state.range_p95),
            ("intensity_p50_median", state.intensity_p50),
        ):
            arr = np.frombuffer(values, dtype=np.float64)
            if np.isfinite(arr).any():
                metrics.add(key, float(np.nanmedian(arr)), topic=topic)

    def _low_points(
        self,
        result: StageResult,
        topic: str,
        *,
        times: NDArray[np.int64],
        returns: NDArray[np.int64],
    ) -> None:
        name = "returns per sweep"
        if times.size < _MIN_SWEEPS:
            result.checks.append(skip_check(name, topic, f"{times.size} sweeps: too few to judge"))
            return
        median = float(np.median(returns))
        steady = np.abs(returns - median) <= _STABLE_TOLERANCE * median
        if median <= 0 or steady.mean() <= _STABLE_SHARE:
            why = f"median {median:g}, counts vary too much to judge"
            result.checks.append(skip_check(name, topic, why))
            return
        limit = self.min_points_ratio * median
        low = returns < limit
        events = [
            self._low_event(
                topic, times=times, returns=returns, run=run, median=median, limit=limit
            )
            for run in runs(low)
        ]
        report_check(
            result,
            events,
            name=name,
            topic=topic,
            value=f"median {median:.0f}, min {int(returns.min())}; {int(low.sum())} low",
            threshold=f">= {limit:.0f} ({self.min_points_ratio:g} x median)",
        )

    def _low_event(
        self,
        topic: str,
        *,
        times: NDArray[np.int64],
        returns: NDArray[np.int64],
        run: tuple[int, int],
        median: float,
        limit: float,
    ) -> Event:
        first, last = run
        fewest = int(returns[first : last + 1].min())
        count = last - first + 1
        return Event(
            t_ns=int(times[first]),
            end_ns=int(times[last]),
            topic=topic,
            kind="low_point_count",
            severity="warning",
            message=(
                f"{topic}: {count} sweep{'s' if count > 1 else ''} with as few as {fewest} "
                f"returns, under {self.min_points_ratio:g} x the median {median:.0f}"
            ),
            evidence={
                "sweeps": count,
                "fewest": fewest,
                "median": median,
                "limit": limit,
                "min_points_ratio": self.min_points_ratio,
            },
        )

    def _blocked(
        self,
        result: StageResult,
        topic: str,
        *,
        times: NDArray[np.int64],
        bins: NDArray[np.int64],
        period: int,
    ) -> None:
        name = "azimuth coverage"
        if times.size < max(_MIN_SWEEPS, 2 * self.min_blocked_sweeps):
            result.checks.append(skip_check(name, topic, f"{times.size} sweeps: too few to judge"))
            return
        median = np.median(bins, axis=0)
        judged = median >= self.min_bin_points
        if not judged.any():
            result.checks.append(skip_check(name, topic, "no azimuth bin returns steadily"))
            return
        blocked = (bins < self.blocked_fraction * median) & judged
        keep = np.zeros_like(blocked)
        for b in np.flatnonzero(judged):
            for first, last in runs(blocked[:, b]):
                if last - first + 1 >= self.min_blocked_sweeps:
                    keep[first : last + 1, b] = True
        events = []
        for sweeps, sector in _sectors(keep, judged):
            if len(sector) >= int(judged.sum()):
                continue  # every judged bin at once: no returns at all (low_point_count's)
            events.append(
                self._blocked_event(
                    topic,
                    times=times,
                    bins=bins,
                    median=median,
                    sweeps=sweeps,
                    sector=sector,
                    period=period,
                )
            )
        width = 360 / self.sector_bins
        report_check(
            result,
            events,
            name=name,
            topic=topic,
            value=(
                f"{len(events)} blocked sector{'s' if len(events) != 1 else ''}; "
                f"{int(judged.sum())} of {self.sector_bins} bins judged"
            ),
            threshold=(
                f"no {width:g}° bin under {self.blocked_fraction:.0%} of its median for "
                f"{self.min_blocked_sweeps} sweeps"
            ),
        )

    def _blocked_event(
        self,
        topic: str,
        *,
        times: NDArray[np.int64],
        bins: NDArray[np.int64],
        period: int,
        median: NDArray[np.float64],
        sweeps: tuple[int, int],
        sector: list[int],
    ) -> Event:
        width = 360 / self.sector_bins
        start_deg = sector[0] * width
        end_deg = (sector[-1] + 1) * width
        if end_deg <= start_deg:
            end_deg += 360
        first, last = sweeps
        count = last - first + 1
        span = count * period  # each sweep covers one period of azimuth time
        seen = int(bins[first : last + 1][:, sector].sum())
        usual = float(median[sector].sum())
        shown_end = end_deg - 360 if end_deg > 360 else end_deg
        return Event(
            t_ns=int(times[first]),
            end_ns=int(times[last]),
            topic=topic,
            kind="blocked_sector",
            severity="warning",
            message=(
                f"{topic}: {'no' if seen == 0 else 'almost no'} returns between {start_deg:g}° "
                f"and {shown_end:g}° azimuth for {count} sweeps ({format_duration(span)})"
            ),
            evidence={
                "azimuth_deg": [start_deg, shown_end],
                "azimuth_width_deg": end_deg - start_deg,
                "bins": sector,
                "sweeps": count,
                "sampled_returns_in_sector": seen,
                "usual_sampled_returns_per_sweep": usual,
                "blocked_fraction": self.blocked_fraction,
                "min_blocked_sweeps": self.min_blocked_sweeps,
            },
        )

    # ------------------------------------------------------------------------------ figures

    def _figures(self, topic: str, state: _Topic, events: list[Event]) -> list[FigureSpec]:
        times = np.frombuffer(state.times, dtype=np.int64).copy()
        returns = np.frombuffer(state.returns, dtype=np.int64).copy()
        bins = np.frombuffer(state.bins, dtype=np.int64).reshape(-1, self.sector_bins).copy()
        mine = [e for e in events if e.topic == topic]
        origin = self._origin_ns
        slug = topic.strip("/").replace("/", "_") or "cloud"

        def draw_counts(fig: Figure) -> None:
            from bagscope.analyzers.plotting import TOPIC_COLOURS, mark_events, seconds, style_axes

            ax = fig.add_subplot(1, 1, 1)
            ax.plot(seconds(times.tolist(), origin), returns, color=TOPIC_COLOURS[0], lw=1.0)
            mark_events(ax, mine, origin)
            style_axes(ax, xlabel="time since log start (s)", ylabel="returns per sweep")

        def draw_coverage(fig: Figure) -> None:
            from bagscope.analyzers.plotting import style_axes

            ax = fig.add_subplot(1, 1, 1)
            median = np.median(bins, axis=0)
            share = bins / np.maximum(median, 1)
            t = seconds_array(times, origin)
            image = ax.imshow(
                share.T,
                aspect="auto",
                origin="lower",
                extent=(float(t[0]), float(t[-1]) if t.size > 1 else float(t[0]) + 0.1, 0, 360),
                vmin=0,
                vmax=1.5,
                cmap="viridis",
                interpolation="nearest",
            )
            for event in mine:
                if event.kind != "blocked_sector":
                    continue
                a, b = event.evidence["azimuth_deg"]
                x0 = (event.t_ns - origin) / 1e9
                x1 = (event.end_ns - origin) / 1e9
                b = b if b > a else b + 360
                ax.add_patch(_rectangle((x0, a), width=x1 - x0, height=b - a))
            fig.colorbar(image, ax=ax, label="returns / bin median")
            style_axes(ax, xlabel="time since log start (s)", ylabel="azimuth (°)")
            ax.set_yticks(np.linspace(0, 360, 7))
            ax.set_ylim(0, 360)
            ax.grid(False)

        return [
            FigureSpec(
                name=f"{self.name}_{slug}_points",
                title=f"{topic}: returns per sweep",
                draw=draw_counts,
            ),
            FigureSpec(
                name=f"{self.name}_{slug}_azimuth",
                title=f"{topic}: azimuth coverage per sweep",
                draw=draw_coverage,
                size=(8.0, 3.6),
            ),
        ]


def _period(stamps: NDArray[np.int64], times: NDArray[np.int64]) -> int:
    """The sweep period: the median step of the header stamps (exact ticks on most drivers),
    of the log times when the stamps do not advance."""
    for series in (stamps, times):
        steps = np.diff(series)
        steps = steps[steps > 0]
        if steps.size:
            return int(np.median(steps))
    return 0


def seconds_array(times: NDArray[np.int64], origin: int) -> NDArray[np.float64]:
    return (times - origin) / 1e9


def _rectangle(corner: tuple[float, float], *, width: float, height: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, fill=False, edgecolor="#e45756", linewidth=1.2)


def _sectors(
    blocked: NDArray[np.bool_], judged: NDArray[np.bool_]
) -> list[tuple[tuple[int, int], list[int]]]:
    """Group blocked (sweep, bin) cells into sectors: adjacent bins (around 360°) whose blocked
    runs overlap in time are one sector; returns ``((first sweep, last sweep), bins)``."""
    n_bins = blocked.shape[1]
    bin_runs: list[tuple[int, int, int]] = []  # (bin, first, last)
    for b in np.flatnonzero(judged):
        bin_runs.extend((int(b), first, last) for first, last in runs(blocked[:, b]))
    parent = list(range(len(bin_runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (bi, fi, li) in enumerate(bin_runs):
        for j in range(i + 1, len(bin_runs)):
            bj, fj, lj = bin_runs[j]
            adjacent = (bi - bj) % n_bins in (1, n_bins - 1)
            if adjacent and fi <= lj and fj <= li:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(bin_runs)):
        groups.setdefault(root(i), []).append(i)
    out = []
    for members in groups.values():
        bins = sorted({bin_runs[i][0] for i in members})
        first = min(bin_runs[i][1] for i in members)
        last = max(bin_runs[i][2] for i in members)
        out.append(((first, last), _circular_order(bins, n_bins)))
    return sorted(out, key=lambda item: (item[0][0], item[1][0]))


def _circular_order(bins: list[int], n_bins: int) -> list[int]:
    """Bins of one sector in counter-clockwise order, starting after the widest free gap."""
    if len(bins) == n_bins:
        return bins
    ordered = sorted(bins)
    gaps = [
        ((ordered[(k + 1) % len(ordered)] - ordered[k]) % n_bins, k) for k in range(len(ordered))
    ]
    _, k = max(gaps)
    start = (k + 1) % len(ordered)
    return ordered[start:] + ordered[:start]
