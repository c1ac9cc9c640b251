"""``report.html``: one self-contained page that says whether a run passed, and why.

The page is written from the run directory alone (``run.json``, ``report.json``,
``events.jsonl``, ``figures/``) and never from a log, so a run from last week or from another
machine renders the same, and this module imports no log reader. It is meant to be mailed,
attached to a ticket or archived by CI, so it depends on nothing outside the file: the CSS is
inline, the figures are base64 data URIs, and there is no script at all (the events filter is
CSS); a Content-Security-Policy forbids scripts and network access outright.

Every value that came from a log (topic names, messages, evidence, paths, error text) can hold
markup, so every one goes through :func:`html.escape` on its way into the page.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.atomic import write_text_atomic
from bagscope.pipeline.rundir import load_run
from bagscope.pipeline.stage import SEVERITIES, Event
from bagscope.replay.timeparse import (
    format_clock,
    format_duration,
    format_epoch,
    format_seconds,
)
from bagscope.viz.page import escape as _e
from bagscope.viz.page import section as _section
from bagscope.viz.page import table as _table
from bagscope.viz.report_template import CSP, CSS, VERDICT_COLOURS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["MAX_EVENT_ROWS", "REPORT_NAME", "VERDICT_COLOURS", "render_report", "write_report"]

REPORT_NAME = "report.html"
# A run with a flapping detector can log hundreds of thousands of events; past this many rows
# the page keeps every error and warning and only the first info events (all of them stay in
# events.jsonl), so the report still opens quickly in a browser.
MAX_EVENT_ROWS = 5000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Integers under an ``*_ns`` key this far from zero are time points, not durations.
_EPOCH_THRESHOLD_NS = 100_000_000 * 1_000_000_000
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
_STATUS_ORDER = ("pass", "warn", "fail", "skip")
_EVIDENCE_PREVIEW = 110  # characters of the one-line evidence summary
_DASH = "—"


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from the run directory's files; return its path.

    The file is written under a temporary name in the same directory and renamed over the
    old one, so a reader (a CI artifact upload, a browser refresh) never sees half a page.
    """
    run_dir = Path(run_dir)
    page = render_report(run_dir)
    out = run_dir / REPORT_NAME
    write_text_atomic(out, page)
    return out


def render_report(run_dir: Path) -> str:
    """The page as a string (what :func:`write_report` writes), for callers that serve it."""
    ctx = _load(Path(run_dir))
    sections = [
        _log_section(ctx),
        _checks_section(ctx),
        _errors_section(ctx),
        _events_section(ctx),
        _tables_section(ctx),
        _figures_section(ctx),
        _timing_section(ctx),
        _frames_section(ctx),
    ]
    body = "\n".join(
        [
            _header(ctx),
            _banners(ctx),
            _toc(ctx),
            _tiles(ctx),
            *(s for s in sections if s),
            _footer(ctx),
        ]
    )
    title = f"{ctx.verdict.upper()} · {_log_title(ctx)} · bagscope report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    """What the sections read: the run directory's files, parsed once."""

    path: Path
    run: dict[str, Any]
    report: dict[str, Any]
    events: list[Event]
    bad_event_lines: int
    events_missing: bool

    @property
    def verdict(self) -> str:
        return str(self.report.get("verdict", "pass"))

    @property
    def complete(self) -> bool:
        return bool(self.report.get("complete", self.run.get("complete", True)))

    @property
    def log(self) -> dict[str, Any]:
        """``run.json``'s log (LogInfo) with ``report.json``'s extent, which is None (not a
        1970 date) for a log without messages."""
        merged = dict(_dict(self.run.get("log")))
        report_log = _dict(self.report.get("log"))
        for key in ("start_ns", "end_ns", "duration_ns"):
            if key in report_log:
                merged[key] = report_log[key]
        if "paths" in report_log:
            merged["paths"] = report_log["paths"]
        return merged

    @property
    def log_start_ns(self) -> int | None:
        """Where event times count from: the log's first message (None for an empty log)."""
        return _int(self.log.get("start_ns"))


def _load(run_dir: Path) -> _Context:
    found = load_run(run_dir)  # one-line RunDirError for a folder that is not a run
    events: list[Event] = []
    bad = 0
    path = run_dir / "events.jsonl"
    missing = not path.is_file()
    if not missing:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    events.append(Event.from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    bad += 1  # shown as a banner: one bad line must not hide the others
    events.sort(key=lambda e: (e.t_ns, _SEVERITY_RANK.get(e.severity, 3), e.stage, e.kind))
    return _Context(
        path=run_dir,
        run=_dict(found.run),
        report=_dict(found.report),
        events=events,
        bad_event_lines=bad,
        events_missing=missing,
    )


# -- small helpers ---------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    """A JSON number as an int; None for anything else (null, NaN, a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def _count(n: int) -> str:
    return f"{n:,}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{_count(n)} {word if n == 1 else (plural or word + 's')}"


def _ms(ns: int | None) -> str:
    """Nanoseconds in milliseconds with two decimals, exactly (ns·10³ read as seconds is ms)."""
    return _DASH if ns is None else format_seconds(ns * 1000, 2)


def _bytes(n: int | None) -> str:
    if n is None:
        return _DASH
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _ratio_tenths(num: int, den: int) -> str:
    """``num / den`` with one decimal, integers only (real-time factors)."""
    tenths = (num * 10 + den // 2) // den
    return f"{tenths // 10}.{tenths % 10}"


def _rel(ctx: _Context, t_ns: int | None) -> str:
    """A log time as seconds since the log's start (absolute epoch seconds without a start)."""
    if t_ns is None:
        return _DASH
    start = ctx.log_start_ns
    return format_epoch(t_ns) if start is None else format_seconds(t_ns - start)


def _topic(name: object) -> str:
    """An escaped topic name that a narrow column breaks after a slash, not mid-word."""
    return "/<wbr>".join(_e(part) for part in str(name).split("/"))


def _pill(kind: str, name: str) -> str:
    return f'<span class="pill {kind}-{_e(name)}">{_e(name)}</span>'


def _facts(pairs: Iterable[tuple[str, str]]) -> str:
    """Label/value lines (a definition list); the values are markup (escape them before)."""
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="facts">{items}</dl>'


def _short_digest(digest: str) -> str:
    """``sha256-sampled:0123…`` - enough to tell runs apart; the full value is in the title."""
    algo, _, hexpart = digest.rpartition(":")
    return f"{algo}:{hexpart[:12]}…" if len(hexpart) > 16 else digest


def _log_paths(ctx: _Context) -> list[str]:
    logs = [str(_dict(item).get("path", "")) for item in _list(ctx.run.get("logs"))]
    if logs:
        return logs
    paths = _dict(ctx.report.get("log")).get("paths")
    if isinstance(paths, list):
        return [str(p) for p in paths]
    path = _dict(ctx.run.get("log")).get("path")
    if isinstance(path, list):
        return [str(p) for p in path]
    return [str(path)] if path else []


def _log_title(ctx: _Context) -> str:
    names = [Path(p).name or p for p in _log_paths(ctx)]
    if not names:
        return "bagscope run"
    return names[0] if len(names) == 1 else f"{names[0]} + {len(names) - 1} more"


# -- header, banners, navigation, tiles -------------------------------------------------------


def _header(ctx: _Context) -> str:
    verdict = ctx.verdict
    cls = verdict if verdict in VERDICT_COLOURS else "fail"
    # Not the run directory's name: write_run renders the page inside a temporary directory
    # that is renamed afterwards, and the page travels with the folder anyway.
    meta: list[str] = []
    start = _int(ctx.log.get("start_ns"))
    if start is not None:
        meta.append(f"log from {format_clock(start)}")
    if created := ctx.run.get("created"):
        meta.append(f"created {created}")
    stages = _list(ctx.run.get("stages"))
    if stages:
        meta.append(_plural(len(stages), "stage"))
    meta.append(f"bagscope {ctx.run.get('bagscope', '?')}")
    return (
        '<header class="top">\n<div>\n'
        '<div class="eyebrow">bagscope · run report</div>\n'
        f"<h1>{_e(_log_title(ctx))}</h1>\n"
        f'<div class="meta">{" · ".join(_e(m) for m in meta)}</div>\n</div>\n'
        f'<div class="verdict v-{cls}" role="status">{_e(verdict)}'
        "<small>verdict</small></div>\n</header>"
    )


def _banners(ctx: _Context) -> str:
    out = []
    if not ctx.complete:
        out.append(
            '<div class="banner b-fail"><strong>Incomplete run.</strong> '
            "The run was interrupted before the end of the log: every number below covers only "
            "what was read until then.</div>"
        )
    log = ctx.log
    if log.get("complete") is False:
        note = log.get("recovery_note") or "the end of the log could not be read"
        out.append(
            f'<div class="banner b-warn"><strong>The log was cut off.</strong> {_e(note)}</div>'
        )
    if n_errors := _stage_error_total(ctx):
        out.append(
            f'<div class="banner b-warn"><strong>{_e(_plural(n_errors, "stage error"))}.</strong> '
            'A stage raised; its results may be partial - see <a href="#errors">stage errors</a>.'
            "</div>"
        )
    if ctx.events_missing:
        out.append(
            '<div class="banner b-warn"><strong>No events.jsonl.</strong> '
            "The run directory has no events file; the events list below is empty.</div>"
        )
    if ctx.bad_event_lines:
        lines = _plural(ctx.bad_event_lines, "line")
        out.append(
            f'<div class="banner b-warn"><strong>{_e(lines)} of events.jsonl could not be read'
            "</strong> and are left out of the events below.</div>"
        )
    return "\n".join(out)


def _stage_error_total(ctx: _Context) -> int:
    """Errors the stages raised, counting those not kept in run.json (only the first are)."""
    counted = sum(_int(v) or 0 for v in _dict(ctx.run.get("error_counts")).values())
    return max(counted, len(_list(ctx.run.get("errors"))))


def _toc(ctx: _Context) -> str:
    items: list[tuple[str, str, int | None]] = [("log", "Log", None)]
    items.append(("checks", "Checks", len(_list(ctx.report.get("checks")))))
    if n_errors := _stage_error_total(ctx):
        items.append(("errors", "Stage errors", n_errors))
    items.append(("events", "Events", len(ctx.events)))
    if tables := _list(ctx.report.get("tables")):
        items.append(("tables", "Tables", len(tables)))
    if figures := _list(ctx.report.get("figures")):
        items.append(("figures", "Figures", len(figures)))
    if _dict(_dict(ctx.run.get("timings")).get("stages")):
        items.append(("timing", "Timing", None))
    if ctx.run.get("frames"):
        items.append(("frames", "Frames", None))
    links = "".join(
        f'<a href="#{anchor}">{_e(label)}'
        + ("" if n is None else f'<span class="count">{n}</span>')
        + "</a>"
        for anchor, label, n in items
    )
    return f'<nav class="toc">{links}</nav>'


def _tile(label: str, value: str, sub: str = "") -> str:
    """A summary tile; ``sub`` is markup (escape before)."""
    return (
        f'<div class="tile"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div><div class="sub">{sub}</div></div>'
    )


def _replayed_ns(ctx: _Context) -> int:
    """How much log time the run covered: the window, clipped to the log (0 if unknown)."""
    log = ctx.log
    log_start, log_end = _int(log.get("start_ns")), _int(log.get("end_ns"))
    if log_start is None or log_end is None:
        return 0
    window = _dict(ctx.run.get("window"))
    w0, w1 = _int(window.get("start_ns")), _int(window.get("end_ns"))
    start = log_start if w0 is None else max(w0, log_start)
    end = log_end if w1 is None else min(w1, log_end)
    return max(0, end - start)


def _tiles(ctx: _Context) -> str:
    log = ctx.log
    duration = _int(log.get("duration_ns")) or 0
    topics = len(_list(log.get("topics")))
    sub = _e(f"{_count(_int(log.get('message_count')) or 0)} messages")
    if topics:
        sub += _e(f" · {_plural(topics, 'topic')}")
    tiles = [_tile("Log duration", format_duration(duration), sub)]

    checks = [_dict(c) for c in _list(ctx.report.get("checks"))]
    by_status = {s: sum(1 for c in checks if c.get("status") == s) for s in _STATUS_ORDER}
    sub = " · ".join(
        f'<b class="s-{s}">{by_status[s]} {s}</b>' for s in _STATUS_ORDER if by_status[s]
    )
    tiles.append(_tile("Checks", _count(len(checks)), sub or "none"))

    by_sev = {s: sum(1 for e in ctx.events if e.severity == s) for s in SEVERITIES}
    sub = " · ".join(
        f'<b class="v-{s}">{_e(_plural(by_sev[s], s, "info" if s == "info" else None))}</b>'
        for s in ("error", "warning", "info")
        if by_sev[s]
    )
    tiles.append(_tile("Events", _count(len(ctx.events)), sub or "none"))

    frames = _int(ctx.run.get("frames_count"))
    messages = _int(ctx.run.get("messages"))
    tiles.append(
        _tile(
            "Frames",
            _DASH if frames is None else _count(frames),
            "" if messages is None else _e(f"{_count(messages)} messages read"),
        )
    )
    wall = _int(ctx.run.get("wall_ns"))
    if wall:
        span = _replayed_ns(ctx)
        sub = _e(f"{_ratio_tenths(span, wall)}× real time") if span else ""
        tiles.append(_tile("Processing", format_duration(wall), sub))
    return f'<div class="tiles">{"".join(tiles)}</div>'


# -- sections --------------------------------------------------------------------------------


def _log_section(ctx: _Context) -> str:
    log = ctx.log
    pairs: list[tuple[str, str]] = []
    files = [_dict(f) for f in _list(ctx.run.get("logs"))]
    if files:
        lines = []
        for f in files:
            digest = str(f.get("digest") or "")
            lines.append(
                f'<div><code class="path">{_e(f.get("path", ""))}</code> '
                f'<span class="muted">{_e(_bytes(_int(f.get("size_bytes"))))}'
                + (
                    f' · <span class="mono" title="{_e(digest)}">{_e(_short_digest(digest))}</span>'
                    if digest
                    else ""
                )
                + "</span></div>"
            )
        pairs.append(("File" if len(files) == 1 else "Files", "".join(lines)))
    else:
        paths = "".join(f'<div><code class="path">{_e(p)}</code></div>' for p in _log_paths(ctx))
        pairs.append(("Files", paths or _DASH))
    storage = " · ".join(str(log[k]) for k in ("storage", "compression") if log.get(k))
    if storage:
        pairs.append(("Storage", _e(storage)))
    start = _int(log.get("start_ns"))
    end = _int(log.get("end_ns"))
    duration = _int(log.get("duration_ns"))
    if start is not None:
        pairs.append(
            (
                "Start",
                f"{_e(format_clock(start))} <span class=muted>({_e(format_epoch(start))} s)</span>",
            )
        )
    if end is not None:
        pairs.append(
            ("End", f"{_e(format_clock(end))} <span class=muted>({_e(format_epoch(end))} s)</span>")
        )
    if duration is not None:
        pairs.append(("Duration", _e(format_duration(duration))))
    if (count := _int(log.get("message_count"))) is not None:
        pairs.append(("Messages", _e(_count(count))))
    window = _dict(ctx.run.get("window"))
    w0, w1 = _int(window.get("start_ns")), _int(window.get("end_ns"))
    if w0 is not None or w1 is not None:
        a = "start" if w0 is None else f"{_rel(ctx, w0)} s"
        b = "end" if w1 is None else f"{_rel(ctx, w1)} s"
        pairs.append(("Window", _e(f"{a} → {b} (seconds from the log's start)")))
    stages = [str(s) for s in _list(ctx.run.get("stages"))]
    if stages:
        chain = " → ".join(f'<span class="tag">{_e(s)}</span>' for s in stages)
        if pipeline_digest := str(_dict(ctx.run.get("pipeline")).get("digest") or ""):
            chain += (
                f' <span class="mono muted" title="{_e(pipeline_digest)}">'
                f"{_e(_short_digest(pipeline_digest))}</span>"
            )
        pairs.append(("Pipeline", chain))
    body = _facts(pairs) + _topics_details(log)
    return _section("log", "Log", body)


def _topics_details(log: Mapping[str, Any]) -> str:
    topics = [_dict(t) for t in _list(log.get("topics"))]
    if not topics:
        return ""
    rows = []
    for t in topics:
        hz = t.get("frequency_hz")
        gap = _int(t.get("max_gap_ns"))
        rows.append(
            f'<tr><td class="topic">{_topic(t.get("name", ""))}</td>'
            f'<td class="mono">{_e(t.get("msgtype", ""))}</td>'
            f'<td class="num">{_e(_count(_int(t.get("count")) or 0))}</td>'
            f'<td class="num">{_e(_DASH if not isinstance(hz, int | float) else f"{hz:.2f}")}</td>'
            f'<td class="num">{_e(_DASH if gap is None else format_duration(gap))}</td></tr>'
        )
    table = _table(
        [
            ("Topic", False),
            ("Type", False),
            ("Messages", True),
            ("Rate (Hz)", True),
            ("Max gap", True),
        ],
        rows,
    )
    return (
        f'<details style="margin-top:10px"><summary>{_e(_plural(len(topics), "topic"))} in the '
        f"log</summary>{table}</details>"
    )


def _checks_section(ctx: _Context) -> str:
    checks = [_dict(c) for c in _list(ctx.report.get("checks"))]
    if not checks:
        return _section("checks", "Checks", '<p class="empty">No stage reported a check.</p>')
    groups: dict[str, list[dict[str, Any]]] = {}
    for stage in _list(ctx.run.get("stages")):
        groups[str(stage)] = []
    for check in checks:
        groups.setdefault(str(check.get("stage") or ""), []).append(check)
    rows = []
    for stage, items in groups.items():
        if not items:
            continue
        tally = " · ".join(
            f"{n} {s}"
            for s in _STATUS_ORDER
            if (n := sum(1 for c in items if c.get("status") == s))
        )
        rows.append(
            f'<tr class="group"><th colspan="5">{_e(stage or "(no stage)")}'
            f'<span class="muted">{_e(tally)}</span></th></tr>'
        )
        for c in items:
            status = str(c.get("status", "skip"))
            topic = c.get("topic")
            rows.append(
                f"<tr><td>{_pill('s', status)}</td><td>{_e(c.get('name', ''))}</td>"
                f'<td class="topic">{_topic(topic) if topic else _DASH}</td>'
                f'<td class="num">{_e(c.get("value", ""))}</td>'
                f'<td class="num">{_e(c.get("threshold", ""))}</td></tr>'
            )
    head = [
        ("Status", False),
        ("Check", False),
        ("Topic", False),
        ("Value", True),
        ("Threshold", True),
    ]
    return _section("checks", "Checks", _table(head, rows), count=str(len(checks)))


def _errors_section(ctx: _Context) -> str:
    errors = [_dict(e) for e in _list(ctx.run.get("errors"))]
    counts = {str(k): _int(v) or 0 for k, v in _dict(ctx.run.get("error_counts")).items()}
    if not errors and not any(counts.values()):
        return ""
    parts = []
    for err in errors:
        t_ns = _int(err.get("t_ns"))
        when = "" if t_ns is None else f" at {_rel(ctx, t_ns)} s"
        trace = str(err.get("traceback") or "").rstrip()
        parts.append(
            '<div class="stage-error">'
            f'<div class="what"><span class="tag">{_e(err.get("stage", "?"))}</span> '
            f"failed in {_e(err.get('phase', '?'))}{_e(when)}</div>"
            f'<div class="mono">{_e(err.get("error", ""))}</div>'
            + (
                f'<details class="trace"><summary>traceback</summary><pre>{_e(trace)}</pre>'
                "</details>"
                if trace
                else ""
            )
            + "</div>"
        )
    kept: dict[str, int] = {}
    for err in errors:
        kept[str(err.get("stage"))] = kept.get(str(err.get("stage")), 0) + 1
    for stage, n in counts.items():
        if n > kept.get(stage, 0):
            more = n - kept.get(stage, 0)
            parts.append(
                f'<p class="note">{_e(_plural(more, "more error"))} of stage '
                f"<span class=tag>{_e(stage)}</span> not kept (only the first ones are).</p>"
            )
    total = _stage_error_total(ctx)
    return _section("errors", "Stage errors", "\n".join(parts), count=str(total))


def _evidence_value(key: str, value: Any, start: int | None) -> str:
    """One evidence value as plain text, ``*_ns`` integers also in people's units."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and key.endswith("_ns"):
        if abs(value) >= _EPOCH_THRESHOLD_NS:
            return f"{value} (t = {format_seconds(value - start)} s)" if start else str(value)
        return f"{value} ({format_duration(value)})"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def _evidence(evidence: Mapping[str, Any], start: int | None) -> str:
    if not evidence:
        return ""
    items = [(str(k), _evidence_value(str(k), v, start)) for k, v in evidence.items()]
    preview = ", ".join(f"{k}={v}" for k, v in items)
    if len(preview) > _EVIDENCE_PREVIEW:
        preview = preview[: _EVIDENCE_PREVIEW - 1] + "…"
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return (
        f'<details class="evidence"><summary>{_e(preview)}</summary>'
        f"<table><tbody>{rows}</tbody></table></details>"
    )


def _shown_events(events: list[Event]) -> tuple[list[Event], int]:
    """The events to list (all of them up to MAX_EVENT_ROWS) and how many were left out."""
    if len(events) <= MAX_EVENT_ROWS:
        return events, 0
    keep = [e for e in events if e.severity != "info"][:MAX_EVENT_ROWS]
    room = MAX_EVENT_ROWS - len(keep)
    keep += [e for e in events if e.severity == "info"][:room]
    keep.sort(key=lambda e: (e.t_ns, _SEVERITY_RANK.get(e.severity, 3), e.stage, e.kind))
    return keep, len(events) - len(keep)


def _events_section(ctx: _Context) -> str:
    if not ctx.events:
        return _section("events", "Events", '<p class="empty">No events were reported.</p>')
    shown, left_out = _shown_events(ctx.events)
    start = ctx.log_start_ns
    rows = []
    for ev in shown:
        sev = ev.severity if ev.severity in _SEVERITY_RANK else "info"
        span = ev.end_ns - ev.t_ns
        time_cell = _e(_rel(ctx, ev.t_ns))
        if span > 0:
            time_cell += f'<div class="muted">→ {_e(_rel(ctx, ev.end_ns))}</div>'
        rows.append(
            f'<tr class="sev-{sev}"><td class="time">{time_cell}</td>'
            f'<td class="num">{_e(format_duration(span)) if span > 0 else _DASH}</td>'
            f"<td>{_pill('v', sev)}</td>"
            f'<td class="topic">{_topic(ev.topic) if ev.topic else _DASH}</td>'
            f'<td><span class="tag">{_e(ev.kind)}</span></td>'
            f'<td class="msg">{_e(ev.message)}{_evidence(ev.evidence, start)}</td>'
            f'<td class="muted">{_e(ev.stage)}</td></tr>'
        )
    counts = {s: sum(1 for e in shown if e.severity == s) for s in SEVERITIES}
    filters = "".join(
        f'<label><input type="checkbox" id="show-{s}" checked>{_pill("v", s)}'
        f'<span class="muted">{counts[s]}</span></label>'
        for s in ("error", "warning", "info")
        if counts[s]
    )
    note = (
        '<p class="note">Times are seconds since the log\'s first message.'
        + (
            f" {_e(_plural(left_out, 'info event'))} left out to keep the page small; "
            "every event is in <code>events.jsonl</code>."
            if left_out
            else ""
        )
        + "</p>"
    )
    head = [
        ("Time (s)", False),
        ("Duration", True),
        ("Severity", False),
        ("Topic", False),
        ("Kind", False),
        ("Message", False),
        ("Stage", False),
    ]
    body = f'<div class="filters">{filters}</div>{note}{_table(head, rows)}'
    return _section("events", "Events", body, count=str(len(ctx.events)))


def _cell(value: Any) -> tuple[str, bool]:
    """A table value as (text, numeric)."""
    if value is None:
        return _DASH, False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        return (_DASH, True) if math.isnan(value) else (f"{value:.6g}", True)
    if isinstance(value, str):
        return value, False
    return json.dumps(value, separators=(",", ":"), default=str), False


def _tables_section(ctx: _Context) -> str:
    tables = [_dict(t) for t in _list(ctx.report.get("tables"))]
    if not tables:
        return ""
    parts = []
    for table in tables:
        columns = [str(c) for c in _list(table.get("columns"))]
        body_rows = [_list(r) for r in _list(table.get("rows"))]
        cells = [[_cell(v) for v in row] for row in body_rows]
        numeric = [
            bool(cells) and all(row[i][1] or row[i][0] == _DASH for row in cells if i < len(row))
            for i in range(len(columns))
        ]
        rows = [
            "<tr>"
            + "".join(
                f"<td{' class=num' if i < len(numeric) and numeric[i] else ''}>{_e(text)}</td>"
                for i, (text, _) in enumerate(row)
            )
            + "</tr>"
            for row in cells
        ]
        parts.append(
            f'<h3>{_e(table.get("title", ""))} <span class="tag">{_e(table.get("stage", ""))}'
            f"</span></h3>"
            + (
                _table(list(zip(columns, numeric, strict=True)), rows)
                if rows
                else '<p class="empty">(no rows)</p>'
            )
        )
    return _section("tables", "Tables", "\n".join(parts), count=str(len(tables)))


def _figure_uri(ctx: _Context, rel: str) -> tuple[str | None, str]:
    """A figure as a PNG data URI, or None and why it cannot be shown."""
    root = ctx.path.resolve()
    path = (ctx.path / rel).resolve()
    if not path.is_relative_to(root):
        return None, "not inside the run directory"
    try:
        data = path.read_bytes()
    except OSError:
        return None, "file missing"
    if not data.startswith(_PNG_MAGIC):
        return None, "not a PNG file"
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), ""


def _figures_section(ctx: _Context) -> str:
    figures = [_dict(f) for f in _list(ctx.report.get("figures"))]
    if not figures:
        return ""
    groups: dict[str, list[dict[str, Any]]] = {}
    for fig in figures:
        groups.setdefault(str(fig.get("stage") or ""), []).append(fig)
    parts = []
    for stage, items in groups.items():
        parts.append(f"<h3>{_e(stage or '(no stage)')}</h3>")
        figs = []
        for fig in items:
            rel = str(fig.get("path", ""))
            title = str(fig.get("title") or fig.get("name") or rel)
            uri, why = _figure_uri(ctx, rel)
            img = (
                f'<img src="{uri}" alt="{_e(title)}">'
                if uri
                else f'<div class="missing">{_e(rel)}: {_e(why)}</div>'
            )
            figs.append(f"<figure><figcaption>{_e(title)}</figcaption>{img}</figure>")
        parts.append(f'<div class="fig-grid">{"".join(figs)}</div>')
    return _section("figures", "Figures", "\n".join(parts), count=str(len(figures)))


def _budget_cell(ns: int | None, period: int | None) -> str:
    if ns is None or not period:
        return f"<td>{_DASH}</td>"
    pct = ns * 100 // period
    cls = "over" if ns > period else "over-half" if ns * 2 > period else ""
    width = min(100, pct)
    return (
        '<td><div class="nowrap" style="display:flex;align-items:center;gap:8px">'
        f'<div class="bar budget" style="min-width:120px;flex:1">'
        f'<span class="fill {cls}" style="width:{width}%"></span></div>'
        f'<span class="num" style="min-width:48px">{pct} %</span></div></td>'
    )


def _timed_cell(ns: int | None, period: int | None) -> str:
    cls = "num"
    if ns is not None and period:
        cls += " over" if ns > period else " over-half" if ns * 2 > period else ""
    return f'<td class="{cls}">{_e(_ms(ns))}</td>'


def _timing_section(ctx: _Context) -> str:
    timings = _dict(ctx.run.get("timings"))
    stages = _dict(timings.get("stages"))
    if not stages:
        return ""
    period = _int(timings.get("period_ns"))
    rows = []
    for name, raw in stages.items():
        item = _dict(raw)
        pct = _dict(item.get("frame_ns"))
        frames = _int(item.get("frames")) or 0
        p99 = _int(pct.get("p99"))
        rows.append(
            f'<tr><td><span class="tag">{_e(name)}</span></td>'
            f'<td class="num">{_e(_count(frames))}</td>'
            + "".join(_timed_cell(_int(pct.get(k)), period) for k in ("p50", "p95", "p99", "max"))
            + _budget_cell(p99 if frames else None, period)
            + f'<td class="num">{_e(_ms(_int(item.get("message_total_ns"))))}</td>'
            f'<td class="num">{_e(_ms(_int(item.get("finish_ns"))))}</td></tr>'
        )
    total = _dict(timings.get("frame_total_ns"))
    if any(_int(total.get(k)) is not None for k in ("p50", "max")):
        rows.append(
            '<tr class="total"><td>all frame stages</td><td class="num"></td>'
            + "".join(_timed_cell(_int(total.get(k)), period) for k in ("p50", "p95", "p99", "max"))
            + _budget_cell(_int(total.get("p99")), period)
            + "<td></td><td></td></tr>"
        )
    if period:
        hz = _ratio_tenths(1_000_000_000, period)
        note = (
            f"Per frame, in ms. Frames come every {_e(format_duration(period))} "
            f"({_e(hz)} Hz, the median frame spacing): a stage whose p99 goes past that budget "
            "cannot keep up in real time."
        )
    else:
        note = "Per frame, in ms. No frame period is known (fewer than two frames)."
    read = _int(timings.get("read_ns"))
    if read:
        note += f" Reading the log took {_e(format_duration(read))} of the run."
    head = [
        ("Stage", False),
        ("Frames", True),
        ("p50", True),
        ("p95", True),
        ("p99", True),
        ("Max", True),
        ("p99 of the period", False),
        ("On messages", True),
        ("Finish", True),
    ]
    body = f'<p class="note">{note}</p>{_table(head, rows)}'
    return _section("timing", "Timing", body)


_ACCOUNTS = (
    ("used", "used"),
    ("not_needed", "not needed"),
    ("dropped", "dropped"),
    ("decode_errors", "decode errors"),
)


def _frames_section(ctx: _Context) -> str:
    frames = _dict(ctx.run.get("frames"))
    if not frames:
        return ""
    rows = []
    for topic, raw in _dict(frames.get("topics")).items():
        item = _dict(raw)
        messages = _int(item.get("messages")) or 0
        values = {key: _int(item.get(key)) or 0 for key, _ in _ACCOUNTS}
        total = max(messages, sum(values.values()), 1)
        bar = "".join(
            f'<span class="c-{key}" style="width:{values[key] * 100 / total:.2f}%" '
            f'title="{_e(label)}: {values[key]}"></span>'
            for key, label in _ACCOUNTS
            if values[key]
        )
        cells = "".join(
            f'<td class="num{" over" if key == "decode_errors" and values[key] else ""}">'
            f"{_e(_count(values[key]))}</td>"
            for key, _ in _ACCOUNTS
        )
        rows.append(
            f'<tr><td class="topic">{_topic(topic)}</td><td class="num">{_e(_count(messages))}</td>'
            f'{cells}<td style="width:28%"><div class="bar">{bar}</div></td></tr>'
        )
    head = [
        ("Topic", False),
        ("Messages", True),
        *((label, True) for _, label in _ACCOUNTS),
        ("", False),
    ]
    legend = "".join(f'<span><i class="c-{key}"></i>{_e(label)}</span>' for key, label in _ACCOUNTS)
    skew = _dict(frames.get("skew_ns"))
    facts = [("Frames", _e(_count(_int(frames.get("frames")) or 0)))]
    if _int(skew.get("p50")) is not None:
        facts.append(
            (
                "Skew between topics",
                _e(
                    f"p50 {_ms(_int(skew.get('p50')))} ms · p95 {_ms(_int(skew.get('p95')))} ms"
                    f" · max {_ms(_int(skew.get('max')))} ms"
                ),
            )
        )
    reasons = [str(r) for r in _list(frames.get("reasons"))]
    body = _facts(facts) + (
        _table(head, rows) + f'<div class="legend">{legend}</div>' if rows else ""
    )
    if reasons:
        items = "".join(f"<li>{_e(r)}</li>" for r in reasons)
        body += f'<h3>Why messages were not used</h3><ul class="muted">{items}</ul>'
    return _section("frames", "Frame accounting", body)


def _footer(ctx: _Context) -> str:
    versions = _dict(ctx.run.get("versions"))
    parts = [f"{_e(k)} {_e(v)}" for k, v in versions.items()]
    digest = ctx.run.get("log_digest")
    if digest:
        parts.append(
            f'log <span class="mono" title="{_e(digest)}">{_e(_short_digest(str(digest)))}</span>'
        )
    return f"<footer>Written by bagscope from the run directory · {' · '.join(parts)}</footer>"
