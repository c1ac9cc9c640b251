"""``summary.html``: the batch at a glance, aggregate figures first, then one line per log.

Read from the run directories the batch wrote (``report.json``, ``events.jsonl``,
``metrics.parquet``), never from memory, so a resumed batch's page covers the logs run before
as well as those run now.

The page is for someone looking at hundreds of drives: which share failed, which findings
come up across the fleet, which logs are the worst, and whether run-wide numbers such as a
topic's rate hold from drive to drive. Every figure states its numbers in a table beside it as
well, so the page can be read without the images (and checked). Like ``report.html`` the page
is one self-contained file: CSS inline, figures as base64 PNG data URIs, no script, and a
Content-Security-Policy that forbids scripts and network access; every value that came from a
log (names, topics, kinds, errors) is escaped on its way into the page and into a figure.
"""

from __future__ import annotations

import base64
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.analyzers.plotting import SEVERITY_COLOURS, style_axes
from bagscope.viz.page import escape as _e
from bagscope.viz.page import section as _section
from bagscope.viz.page import table as _table
from bagscope.viz.report_template import CSP, CSS, VERDICT_COLOURS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bagscope.batch import BatchResult

__all__ = ["summary_html"]

_VERDICT_RANK = {"failed": 0, "fail": 1, "warn": 2, "pass": 3}
_VERDICT_LABELS = {"failed": "failed to run", "fail": "fail", "warn": "warn", "pass": "pass"}
# "failed to run" is worse than "fail" (nothing is known about the log): darkest.
_VERDICT_FILL = {**VERDICT_COLOURS, "failed": "#6e1020"}
_SEVERITIES = ("error", "warning", "info")
_SEVERITY_RANK = {s: i for i, s in enumerate(_SEVERITIES)}
# Past these, a bar chart stops being readable at a glance; the tables keep every row.
MAX_KIND_BARS = 25
MAX_LOG_BARS = 40
MAX_TOPICS = 16
_LABEL_CHARS = 34  # of a log or topic name on a figure axis
_DASH = "—"
# Figures are laid out at 100 px per inch and saved at twice that, so they stay sharp on a
# high-density screen while the page shows them at their intended size.
_CSS_DPI = 100
_PNG_SCALE = 2
_WIDTH = 11.4  # inches: 1140 px, what a card holds at the page's widest
_FONT = 9.5  # points: about the size of the page's table text


@dataclass(frozen=True, slots=True, kw_only=True)
class _MetricSpec:
    """A run-wide per-topic metric worth comparing across logs, and how to read it."""

    stage: str
    metric: str
    title: str
    unit: str
    log_scale: bool  # rates of 10 Hz and 100 Hz topics share one axis only on a log scale
    worse: str  # "low" or "high": which end the "worst log" column names


# Chosen over dumping every metric: a topic's measured rate says whether the sensors held
# their rates drive after drive (drops and outages pull it down), and the latency p95 whether
# recording kept up. Both exist for every topic in the default analysis.
_METRICS = (
    _MetricSpec(
        stage="topic_health",
        metric="rate_hz",
        title="Measured rate",
        unit="Hz",
        log_scale=True,
        worse="low",
    ),
    _MetricSpec(
        stage="latency",
        metric="latency_p95_ms",
        title="Latency p95 (log time − header stamp)",
        unit="ms",
        log_scale=False,
        worse="high",
    ),
)


# -- what the run directories say ------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class _KindStat:
    """One event kind across the batch: events by severity, and logs by their worst one."""

    kind: str
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SEVERITIES, 0))
    logs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SEVERITIES, 0))

    @property
    def total_events(self) -> int:
        return sum(self.events.values())

    @property
    def total_logs(self) -> int:
        return sum(self.logs.values())

    @property
    def problem_logs(self) -> int:
        return self.logs["error"] + self.logs["warning"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Sample:
    value: float
    row: dict[str, Any]  # the log's summary row (its name and report link)


def _summary_rows(result: BatchResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for log in (str(p) for p in result.logs):
        run_dir = result.run_dirs.get(log)
        if run_dir is None:
            error = result.failures.get(log, "not run")
            rows.append({"log": log, "verdict": "failed", "errors": 0, "warnings": 0,
                         "note": error, "report": None, "run_dir": None})  # fmt: skip
            continue
        report = json.loads((run_dir / "report.json").read_text())
        counts = report.get("event_counts", {})
        rows.append(
            {
                "log": log,
                "verdict": str(report.get("verdict", "pass")),
                "errors": int(counts.get("error", 0)),
                "warnings": int(counts.get("warning", 0)),
                "note": "" if report.get("complete", True) else "incomplete run",
                "report": f"{run_dir.relative_to(result.out).as_posix()}/report.html",
                "run_dir": run_dir,
            }
        )
    rows.sort(key=lambda r: (_VERDICT_RANK.get(r["verdict"], 9), -r["errors"], -r["warnings"]))
    _name_rows(rows)
    return rows


def _name_rows(rows: list[dict[str, Any]]) -> None:
    """A short name per log for figures and aggregate tables: the file name, unless two logs
    share it (the same drive name in two folders), then the run directory's name, which has
    a digest of the path."""
    seen: dict[str, int] = {}
    for row in rows:
        name = Path(row["log"]).name or row["log"]
        seen[name] = seen.get(name, 0) + 1
        row["name"] = name
    for row in rows:
        if seen[row["name"]] > 1 and row["run_dir"] is not None:
            row["name"] = Path(row["run_dir"]).name


def _kind_stats(rows: Sequence[dict[str, Any]]) -> list[_KindStat]:
    """Findings per kind, problems first: kinds that were an error or a warning in the most
    logs lead, so the "what goes wrong most" answer is the top bar and purely informational
    kinds (which every healthy log may have) sink to the bottom.

    A log counts once per kind, under the worst severity it had for it, so a detector that
    flaps thousands of times in one drive does not outweigh a problem seen in many drives.
    """
    stats: dict[str, _KindStat] = {}
    for row in rows:
        if row["run_dir"] is None:
            continue
        worst: dict[str, str] = {}
        path = Path(row["run_dir"]) / "events.jsonl"
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = str(event.get("kind", ""))
                severity = str(event.get("severity", "info"))
                if severity not in _SEVERITY_RANK:
                    severity = "info"
                stat = stats.setdefault(kind, _KindStat(kind=kind))
                stat.events[severity] += 1
                if kind not in worst or _SEVERITY_RANK[severity] < _SEVERITY_RANK[worst[kind]]:
                    worst[kind] = severity
        for kind, severity in worst.items():
            stats[kind].logs[severity] += 1
    return sorted(
        stats.values(),
        key=lambda s: (-s.problem_logs, -s.total_logs, -s.total_events, s.kind),
    )


def _metric_samples(
    rows: Sequence[dict[str, Any]],
) -> dict[_MetricSpec, dict[str, list[_Sample]]]:
    """Per chosen metric and topic, the run-wide value of every log that has one.

    A topic is kept only when at least half of the logs that ran have it: a topic a single
    drive recorded would otherwise add a row of one dot that says nothing about the fleet.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = {(m.stage, m.metric): m for m in _METRICS}
    samples: dict[_MetricSpec, dict[str, list[_Sample]]] = {m: {} for m in _METRICS}
    ran = [row for row in rows if row["run_dir"] is not None]
    for row in ran:
        path = Path(row["run_dir"]) / "metrics.parquet"
        table = pq.read_table(path, columns=["t_ns", "stage", "metric", "value", "topic"])
        table = table.filter(pc.is_null(table.column("t_ns")))
        columns = {
            name: table.column(name).cast(pa.string()).to_pylist()
            for name in ("stage", "metric", "topic")
        }
        values = table.column("value").to_pylist()
        for stage, metric, topic, value in zip(
            columns["stage"], columns["metric"], columns["topic"], values, strict=True
        ):
            spec = wanted.get((stage, metric))
            if spec is None or topic is None or value is None or not math.isfinite(value):
                continue
            if spec.log_scale and value <= 0:
                continue  # a topic with one message has no rate, and log(0) has no place
            samples[spec].setdefault(topic, []).append(_Sample(value=float(value), row=row))
    need = (len(ran) + 1) // 2
    kept: dict[_MetricSpec, dict[str, list[_Sample]]] = {}
    for spec, by_topic in samples.items():
        common = {t: s for t, s in by_topic.items() if len(s) >= need}
        if common:
            top = sorted(common, key=lambda t: (-len(common[t]), t))[:MAX_TOPICS]
            kept[spec] = {t: common[t] for t in sorted(top)}
    return kept


# -- figures ---------------------------------------------------------------------------------


def _new_figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=_CSS_DPI, layout="constrained")


def _img(fig: Figure, alt: str) -> str:
    """The figure as an ``<img>`` with a PNG data URI, at its intended size on the page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_CSS_DPI * _PNG_SCALE)
    width, height = (round(v * _CSS_DPI) for v in fig.get_size_inches())
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    # The width as a style too: report.html's CSS stretches every figure to the card's width,
    # which blows a small chart up to twice its size.
    return (
        f'<img src="{uri}" width="{width}" height="{height}" style="width:{width}px" '
        f'alt="{_e(alt)}">'
    )


def _plain(text: str) -> str:
    """Text Matplotlib shows as written: two ``$`` in a topic or file name start mathtext
    (and a bad formula raises). With every ``$`` escaped none is left to pair up; backslashes
    outside mathtext are shown as they are."""
    return text.replace("$", r"\$")


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    """A name that fits an axis: the middle elided, since both ends tell drives apart."""
    if len(text) <= limit:
        return _plain(text)
    keep = limit - 1
    return _plain(text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2) :])


def _bar_labels(ax: Axes, ends: Sequence[float], labels: Sequence[str]) -> None:
    """Each bar's total just past its end, and room on the axis so the text stays inside."""
    top = max(ends, default=0) or 1
    for y, (end, label) in enumerate(zip(ends, labels, strict=True)):
        ax.text(end + top * 0.01, y, label, va="center", ha="left", fontsize=_FONT, color="#444")
    ax.set_xlim(0, top * 1.16)


def _verdict_figure(counts: dict[str, int]) -> Figure:
    """One bar split by verdict, worst on the left: the share of the fleet that is in
    trouble reads off its length, even for hundreds of logs."""
    total = sum(counts.values())
    fig = _new_figure(_WIDTH, 0.8)
    ax = fig.add_subplot()
    left = 0
    for verdict in sorted(counts, key=lambda v: _VERDICT_RANK.get(v, 9)):
        n = counts[verdict]
        if not n:
            continue
        label = f"{_VERDICT_LABELS.get(verdict, verdict)} ({n:,})"
        colour = _VERDICT_FILL.get(verdict, "#999999")
        ax.barh(0, n, left=left, color=colour, label=label, height=0.8, edgecolor="white")
        if n / total >= 0.07:
            ax.text(
                left + n / 2,
                0,
                f"{n:,}",
                ha="center",
                va="center",
                color="white",
                fontsize=_FONT + 1,
                fontweight="bold",
            )
        left += n
    ax.set_xlim(0, total)
    ax.set_ylim(-0.5, 0.5)
    ax.set_axis_off()  # the segments carry their counts; an axis of log counts adds nothing
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=4,
        frameon=False,
        fontsize=_FONT,
        borderaxespad=0.2,
        handlelength=1.2,
    )
    return fig


def _severity_stack(
    ax: Axes, series: Sequence[dict[str, int]], severities: Sequence[str]
) -> list[float]:
    """Horizontal bars stacked by severity (one per row, first row on top); their ends."""
    ends = [0.0] * len(series)
    for severity in severities:
        widths = [s[severity] for s in series]
        if any(widths):
            ax.barh(
                range(len(series)),
                widths,
                left=ends,
                height=0.72,
                color=SEVERITY_COLOURS[severity],
                label=severity,
            )
        ends = [a + b for a, b in zip(ends, widths, strict=True)]
    return ends


def _kinds_figure(stats: Sequence[_KindStat], logs_ran: int) -> Figure:
    """Left: in how many logs each kind occurs (by its worst severity there); right: how
    often (events by severity). Both matter: one is the fleet's exposure, the other the
    volume a reviewer will face."""
    from matplotlib.ticker import MaxNLocator

    shown = list(stats[:MAX_KIND_BARS])
    fig = _new_figure(_WIDTH, 1.3 + 0.3 * len(shown))
    ax_logs, ax_events = fig.subplots(1, 2, sharey=True, width_ratios=(1, 1))
    ends = _severity_stack(ax_logs, [s.logs for s in shown], _SEVERITIES)
    _bar_labels(ax_logs, ends, [f"{s.total_logs:,}" for s in shown])
    ends = _severity_stack(ax_events, [s.events for s in shown], _SEVERITIES)
    _bar_labels(ax_events, ends, [f"{s.total_events:,}" for s in shown])
    style_axes(ax_logs, xlabel=f"logs (of {logs_ran:,} that ran)", ylabel="")
    style_axes(ax_events, xlabel="findings (events)", ylabel="")
    for ax in (ax_logs, ax_events):
        ax.grid(axis="y", visible=False)
        ax.tick_params(labelsize=_FONT)
        ax.xaxis.label.set_fontsize(_FONT)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_logs.set_yticks(range(len(shown)), [_short(s.kind) for s in shown])
    ax_logs.set_ylim(len(shown) - 0.5, -0.5)
    ax_events.tick_params(axis="y", length=0)
    handles, labels = ax_logs.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper left", ncol=3, frameon=False, fontsize=_FONT)
    return fig


def _logs_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Errors and warnings of the worst logs, so the drives to open first stand out."""
    from matplotlib.ticker import MaxNLocator

    fig = _new_figure(_WIDTH, 1.1 + 0.23 * len(rows))
    ax = fig.add_subplot()
    series = [{"error": r["errors"], "warning": r["warnings"]} for r in rows]
    ends = _severity_stack(ax, series, ("error", "warning"))
    _bar_labels(ax, ends, [f"{r['errors']:,} / {r['warnings']:,}" for r in rows])
    style_axes(ax, xlabel="findings (errors / warnings)", ylabel="")
    ax.grid(axis="y", visible=False)
    ax.tick_params(labelsize=_FONT)
    ax.xaxis.label.set_fontsize(_FONT)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks(range(len(rows)), [_short(r["name"]) for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper left", ncol=2, frameon=False, fontsize=_FONT)
    return fig


def _metrics_figure(kept: dict[_MetricSpec, dict[str, list[_Sample]]]) -> Figure:
    """One panel per metric, one row per topic: every log a dot, a box once there are
    enough logs for quartiles to mean something, and the median as a black tick."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    topics = sorted({t for by_topic in kept.values() for t in by_topic})
    specs = list(kept)
    fig = _new_figure(_WIDTH, 1.1 + 0.34 * len(topics))
    axes = fig.subplots(1, len(specs), sharey=True, squeeze=False)[0]
    rng = np.random.default_rng(0)  # the same jitter every time: pages diff cleanly
    for ax, spec in zip(axes, specs, strict=True):
        by_topic = kept[spec]
        for y, topic in enumerate(topics):
            values = [s.value for s in by_topic.get(topic, [])]
            if not values:
                continue
            if len(values) >= 5:
                grey = {"color": "#8c959f"}
                ax.boxplot(
                    values,
                    positions=[y],
                    orientation="horizontal",
                    widths=0.55,
                    showfliers=False,
                    manage_ticks=False,
                    boxprops=grey,
                    whiskerprops=grey,
                    capprops=grey,
                    medianprops={"color": "none"},
                )
            jitter = rng.uniform(-0.2, 0.2, len(values)) if len(values) > 1 else [0.0]
            ax.scatter(
                values,
                [y + j for j in jitter],
                s=14,
                color="#4c78a8",
                alpha=0.6,
                linewidths=0,
                zorder=3,
            )
            ax.scatter(
                [statistics.median(values)],
                [y],
                marker="|",
                s=220,
                color="#1f2328",
                linewidths=1.6,
                zorder=4,
            )
        style_axes(ax, xlabel=f"{spec.unit}", ylabel="", title=spec.title)
        ax.grid(axis="y", visible=False)
        ax.tick_params(labelsize=_FONT)
        ax.xaxis.label.set_fontsize(_FONT)
        if spec.log_scale:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            low, high = ax.get_xlim()
            ax.set_xlim(low / 1.15, high * 1.15)
        else:
            ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    axes[0].set_yticks(range(len(topics)), [_short(t) for t in topics])
    axes[0].set_ylim(len(topics) - 0.5, -0.5)
    for ax in axes[1:]:
        ax.tick_params(axis="y", length=0)
    return fig


# -- the page --------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word if n == 1 else word + 's'}"


def _figure(img: str, caption: str = "") -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure class="agg">{cap}{img}</figure>'


def _log_link(row: dict[str, Any]) -> str:
    name = _e(row["name"])
    return f'<a href="{_e(row["report"])}">{name}</a>' if row["report"] else name


def _verdict_section(counts: dict[str, int]) -> str:
    tiles = "".join(
        f'<div class="tile v-{v}"><div class="label">{_e(_VERDICT_LABELS[v])}</div>'
        f'<div class="value" data-verdict="{v}">{counts.get(v, 0):,}</div></div>'
        for v in ("pass", "warn", "fail", "failed")
    )
    total = sum(counts.values())
    fig = _verdict_figure(counts) if total else None
    alt = ", ".join(f"{counts.get(v, 0)} {_VERDICT_LABELS[v]}" for v in _VERDICT_RANK)
    body = f'<div class="tiles verdicts">{tiles}</div>'
    if fig is not None:
        body += _figure(_img(fig, f"Verdicts: {alt}"))
    else:
        body += '<p class="empty">No logs in this batch.</p>'
    return _section("verdicts", "Verdicts across logs", body)


def _kinds_section(stats: Sequence[_KindStat], logs_ran: int) -> str:
    if not logs_ran:
        body = '<p class="empty">No findings: no log ran.</p>'
        return _section("findings", "Findings per kind", body)
    if not stats:
        body = f'<p class="empty">No findings in the {_plural(logs_ran, "log")} that ran.</p>'
        return _section("findings", "Findings per kind", body)
    rows = [
        f"<tr><td class=kind>{_e(s.kind)}</td><td class=num>{s.total_logs:,}</td>"
        + "".join(f"<td class=num>{s.events[sev]:,}</td>" for sev in _SEVERITIES)
        + f"<td class=num>{s.total_events:,}</td></tr>"
        for s in stats
    ]
    head = [
        ("Kind", False),
        ("Logs", True),
        ("Errors", True),
        ("Warnings", True),
        ("Info", True),
        ("Events", True),
    ]
    table = _table(head, rows, cls="kinds")
    note = (
        "Kinds that were an error or a warning in the most logs come first. "
        "A log is counted once per kind, under the worst severity it had for it."
    )
    if len(stats) > MAX_KIND_BARS:
        note += f" The figure shows the first {MAX_KIND_BARS}; the table lists all {len(stats)}."
    alt = "; ".join(f"{s.kind}: {s.total_logs} logs, {s.total_events} events" for s in stats[:10])
    fig = _figure(_img(_kinds_figure(stats, logs_ran), f"Findings per kind: {alt}"))
    body = f'<p class="note">{_e(note)}</p><div class="pair">{fig}{table}</div>'
    return _section("findings", "Findings per kind", body)


def _logs_section(rows: Sequence[dict[str, Any]]) -> str:
    ran = [r for r in rows if r["run_dir"] is not None]
    if not ran:
        return ""  # the verdicts already say that nothing ran
    worst = sorted(
        (r for r in ran if r["errors"] or r["warnings"]),
        key=lambda r: (-r["errors"], -r["warnings"], _VERDICT_RANK.get(r["verdict"], 9)),
    )
    if not worst:
        none = f"No errors or warnings in the {_plural(len(ran), 'log')} that ran."
        body = f'<p class="empty">{_e(none)}</p>'
        return _section("worst", "Errors and warnings per log", body)
    shown = worst[:MAX_LOG_BARS]
    note = f"{_plural(len(worst), 'log')} of {len(ran):,} that ran had errors or warnings"
    if len(worst) > len(shown):
        note += f"; the {len(shown)} with the most are shown, {len(worst) - len(shown):,} more"
        note += " are in the table below"
    note += "."
    if failed := len(rows) - len(ran):
        verb = "is" if failed == 1 else "are"
        note += f" {_plural(failed, 'log')} that failed to run {verb} not counted."
    alt = "; ".join(f"{r['name']}: {r['errors']} errors, {r['warnings']} warnings" for r in shown)
    fig = _figure(_img(_logs_figure(shown), f"Errors and warnings per log: {alt}"))
    return _section("worst", "Errors and warnings per log", f'<p class="note">{_e(note)}</p>{fig}')


def _format(value: float) -> str:
    return f"{value:,.2f}"


def _metric_table(spec: _MetricSpec, by_topic: dict[str, list[_Sample]]) -> str:
    rows = []
    for topic, samples in by_topic.items():
        values = [s.value for s in samples]
        ranked = sorted(samples, key=lambda s: s.value, reverse=spec.worse == "high")
        # Naming the "worst" of logs that agree to the shown precision would single out a
        # drive for nothing.
        spread = _format(min(values)) != _format(max(values))
        worst = _log_link(ranked[0].row) if spread else _DASH
        rows.append(
            f"<tr><td class=topic>{_e(topic)}</td><td class=num>{len(values):,}</td>"
            f"<td class=num>{_format(min(values))}</td>"
            f"<td class=num>{_format(statistics.median(values))}</td>"
            f"<td class=num>{_format(max(values))}</td><td class=worst>{worst}</td></tr>"
        )
    head = [
        ("Topic", False),
        ("Logs", True),
        (f"Min ({spec.unit})", True),
        (f"Median ({spec.unit})", True),
        (f"Max ({spec.unit})", True),
        (f"{'Lowest' if spec.worse == 'low' else 'Highest'} in", False),
    ]
    title = f'<h3>{_e(spec.title)} <span class="tag">{_e(spec.stage)}.{_e(spec.metric)}</span></h3>'
    return title + _table(head, rows, cls=f"metric m-{_e(spec.metric)}")


def _metrics_section(rows: Sequence[dict[str, Any]]) -> str:
    logs_ran = sum(1 for r in rows if r["run_dir"] is not None)
    if not logs_ran:
        return ""
    kept = _metric_samples(rows)
    if not kept:
        names = ", ".join(f"{m.stage}.{m.metric}" for m in _METRICS)
        body = f'<p class="empty">None of the logs that ran recorded {_e(names)}.</p>'
        return _section("metrics", "Run-wide metrics across logs", body)
    note = (
        f"Each dot is one of the {_plural(logs_ran, 'log')} that ran, the black tick the median"
        + (", the box the quartiles" if logs_ran >= 5 else "")
        + ". Topics recorded in fewer than half of the logs are left out."
    )
    alt = "Run-wide metrics per topic across logs: " + ", ".join(s.title for s in kept)
    fig = _figure(_img(_metrics_figure(kept), alt))
    tables = "".join(_metric_table(spec, by_topic) for spec, by_topic in kept.items())
    body = f'<p class="note">{_e(note)}</p>{fig}{tables}'
    return _section("metrics", "Run-wide metrics across logs", body)


def _table_section(rows: Sequence[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        link = f'<a href="{_e(row["report"])}">report</a>' if row["report"] else ""
        verdict = row["verdict"]
        body.append(
            f'<tr class="{_e(verdict)}"><td class=path>{_e(row["log"])}</td>'
            f'<td><span class="pill s-{_e(verdict)}">{_e(verdict)}</span></td>'
            f"<td class=num>{row['errors']}</td><td class=num>{row['warnings']}</td>"
            f"<td>{link}</td><td>{_e(row['note'])}</td></tr>"
        )
    head = [
        ("Log", False),
        ("Verdict", False),
        ("Errors", True),
        ("Warnings", True),
        ("Report", False),
        ("Note", False),
    ]
    table = _table(head, body, cls="logs") if rows else '<p class="empty">No logs.</p>'
    return _section("logs", "Logs, worst first", table)


_SUMMARY_CSS = """
main { max-width: 1240px; }
.tiles.verdicts { grid-template-columns: repeat(4, minmax(140px, 1fr)); }
.tile.v-pass .value { color: #1a7f37; }
.tile.v-warn .value { color: #b35900; }
.tile.v-fail .value { color: #cf222e; }
.tile.v-failed .value { color: #6e1020; }
figure.agg { border: none; padding: 0; margin: 4px 0 8px; }
figure.agg img { max-width: 100%; height: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 16px 24px; align-items: flex-start; }
.pair figure.agg { flex: 0 1 auto; }
.pair .scroll { flex: 1 1 340px; min-width: 0; }
td.kind { font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
td.worst { overflow-wrap: anywhere; }
.pill.s-failed { color: #fff; background: #6e1020; }
"""


def summary_html(result: BatchResult) -> str:
    """The page: verdicts, findings per kind, the worst logs and run-wide metrics across the
    batch, then one line per log, worst first (failed to run, fail, warn, pass; then most
    errors)."""
    rows = _summary_rows(result)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    logs_ran = sum(1 for r in rows if r["run_dir"] is not None)
    sections = [
        _verdict_section(counts),
        _kinds_section(_kind_stats(rows), logs_ran),
        _logs_section(rows),
        _metrics_section(rows),
        _table_section(rows),
    ]
    meta = [_plural(len(rows), "log"), f"{len(result.ran):,} run now"]
    if result.skipped:
        meta.append(f"{len(result.skipped):,} done before")
    if result.failures:
        meta.append(f"{len(result.failures):,} failed to run")
    header = (
        '<header class="top"><div><div class="eyebrow">bagscope · batch summary</div>'
        f"<h1>Batch of {_plural(len(rows), 'log')}</h1>"
        f'<div class="meta">{_e(" · ".join(meta))}</div></div></header>'
    )
    body = "\n".join([header, *(s for s in sections if s)])
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>bagscope batch: {_e(_plural(len(rows), 'log'))}</title>\n"
        f"<style>{CSS}{_SUMMARY_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
