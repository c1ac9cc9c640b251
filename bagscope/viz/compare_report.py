"""``compare.html``: one self-contained page that says what changed between two runs.

Written from a :class:`~bagscope.compare.Comparison` (or a batch of them) and the two run
directories' PNGs, never from a log. Like ``report.html`` it is meant to be attached to a
ticket or a merge request: the CSS is inline, the figures are base64 data URIs, there is no
script, and the page's Content-Security-Policy forbids scripts and network access. Topic
names, labels, messages and paths came from logs or users and can hold markup, so every one is
escaped on its way in.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING

from bagscope.atomic import write_text_atomic
from bagscope.viz.report_template import CSP, CSS

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bagscope.compare import BatchComparison, Comparison, MetricDelta
    from bagscope.pipeline.stage import Event

__all__ = ["COMPARE_NAME", "fmt_relative", "fmt_value", "render_compare", "write_compare"]

COMPARE_NAME = "compare.html"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_DASH = "—"
# What the comparison adds to report.html's look: figures side by side, highlighted rows.
_EXTRA_CSS = """
.side { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.side figure { margin: 0; }
.side .which { font-size: 12px; font-weight: 700; color: var(--muted); margin-bottom: 4px; }
tr.regression td { background: #fff5f5; }
tr.regression td:first-child { box-shadow: inset 3px 0 0 #cf222e; }
tr.improvement td { background: #f0fff4; }
tr.improvement td:first-child { box-shadow: inset 3px 0 0 #1f883d; }
.d-worse, .d-regression { color: #cf222e; font-weight: 650; }
.d-better, .d-improvement { color: #1a7f37; font-weight: 650; }
.d-changed { color: #0550ae; }
.d-same, .d-only_a, .d-only_b { color: var(--muted); }
.cmp-verdict { font-size: 18px; font-weight: 700; }
.cmp-verdict.bad { color: #cf222e; } .cmp-verdict.good { color: #1a7f37; }
details.unchanged summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
h3.pair { margin-top: 28px; word-break: break-all; }
"""


def write_compare(comparison: Comparison | BatchComparison, out_dir: Path) -> Path:
    """Write ``out_dir/compare.html`` (creating ``out_dir``); return its path.

    Written under a temporary name and renamed, so a reader never sees half a page.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = render_compare(comparison)
    path = out_dir / COMPARE_NAME
    write_text_atomic(path, page)
    return path


def render_compare(comparison: Comparison | BatchComparison) -> str:
    """The page as a string (what :func:`write_compare` writes)."""
    from bagscope.compare import BatchComparison

    if isinstance(comparison, BatchComparison):
        pairs = comparison.pairs
        bad = comparison.regressions > 0
        verdict = comparison.verdict_line()
        extra = _unpaired(comparison)
        title = f"{len(pairs)} pairs of runs"
    else:
        pairs = [comparison]
        bad = comparison.regressions > 0
        verdict = comparison.verdict_line()
        extra = ""
        title = f"{comparison.a.name} → {comparison.b.name}"
    body = [
        '<header class="top"><div>'
        '<div class="eyebrow">bagscope · run comparison</div>'
        f"<h1>{_e(title)}</h1>"
        f'<div class="cmp-verdict {"bad" if bad else "good"}" role="status">{_e(verdict)}</div>'
        "</div></header>",
        extra,
    ]
    for pair in pairs:
        if len(pairs) > 1:
            body.append(f'<h3 class="pair">{_e(pair.a)} → {_e(pair.b)}</h3>')
        body.append(_pair(pair))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(verdict)} · bagscope compare</title>\n"
        f"<style>{CSS}{_EXTRA_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{''.join(b for b in body if b)}\n</main>\n</body>\n</html>\n"
    )


def _pair(c: Comparison) -> str:
    return "\n".join(s for s in (_summary(c), _metrics(c.metrics), _events(c), _figures(c)) if s)


def _summary(c: Comparison) -> str:
    banners = []
    if not c.same_log:
        banners.append(
            '<div class="banner b-warn"><strong>Different logs.</strong> These runs read '
            "different logs; the differences below say as much about the logs as about the "
            "pipeline.</div>"
        )
    for side, complete in zip("AB", c.complete, strict=True):
        if not complete:
            banners.append(
                f'<div class="banner b-fail"><strong>Run {side} is incomplete.</strong> '
                "It was interrupted before the end of the log.</div>"
            )
    facts = [
        (
            "A",
            f"<code>{_e(c.a)}</code> · {_e(c.log_names[0] or _DASH)} · verdict {_e(c.verdicts[0])}",
        ),
        (
            "B",
            f"<code>{_e(c.b)}</code> · {_e(c.log_names[1] or _DASH)} · verdict {_e(c.verdicts[1])}",
        ),
        ("Verdict", _e(c.verdict_line())),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    tiles = "".join(
        f'<div class="tile"><div class="label">{_e(label)}</div>'
        f'<div class="value">{value}</div></div>'
        for label, value in (
            ("Regressions", c.regressions),
            ("Improvements", len(c.improvements)),
            ("New events", _by_sev(c.new_events)),
            ("Resolved events", _by_sev(c.resolved_events)),
        )
    )
    return _section(
        "Summary",
        "\n".join(
            [*banners, f'<dl class="facts">{items}</dl>', f'<div class="tiles">{tiles}</div>']
        ),
    )


def _by_sev(events: Sequence[Event]) -> str:
    """``3`` plus a small breakdown by severity (markup)."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e.severity] = counts.get(e.severity, 0) + 1
    parts = [f"{counts[s]} {s}" for s in ("error", "warning", "info") if counts.get(s)]
    sub = f'<div class="sub">{_e(", ".join(parts))}</div>' if parts else ""
    return f"{len(events)}{sub}"


def _metrics(rows: Sequence[MetricDelta]) -> str:
    if not rows:
        return _section("Metrics", '<p class="muted">Neither run has run-wide metrics.</p>')
    head = (
        "<tr><th>Stage</th><th>Metric</th><th>Topic</th><th>Label</th><th class=num>A</th>"
        "<th class=num>B</th><th class=num>Δ</th><th class=num>Δ %</th><th>Direction</th>"
        "<th>Threshold</th></tr>"
    )
    moved = [m for m in rows if m.direction != "same"]
    same = [m for m in rows if m.direction == "same"]
    parts = []
    if moved:
        parts.append(_table(head, (_metric_row(m) for m in moved)))
    else:
        parts.append('<p class="muted">No metric changed.</p>')
    if same:
        parts.append(
            f'<details class="unchanged"><summary>{len(same)} unchanged</summary>'
            f"{_table(head, (_metric_row(m) for m in same))}</details>"
        )
    return _section("Metrics", "\n".join(parts))


def _metric_row(m: MetricDelta) -> str:
    status = "regression" if m.regression else "improvement" if m.improvement else m.direction
    cls = f' class="{status}"' if status in ("regression", "improvement") else ""
    label = {"only_a": "only in A", "only_b": "only in B"}.get(status, status)
    cells = [
        _e(m.stage),
        _e(m.metric),
        _e(m.topic) if m.topic is not None else _DASH,
        _e(m.label) if m.label is not None else _DASH,
    ]
    nums = [
        fmt_value(m.a),
        fmt_value(m.b),
        fmt_value(m.delta, signed=True),
        fmt_relative(m.relative),
    ]
    return (
        f"<tr{cls}>"
        + "".join(f"<td>{c}</td>" for c in cells)
        + "".join(f'<td class="num">{_e(n)}</td>' for n in nums)
        + f'<td class="d-{_e(status)}">{_e(label)}</td><td>{_e(m.threshold)}</td></tr>'
    )


def _events(c: Comparison) -> str:
    head = (
        "<tr><th>Severity</th><th class=num>t (s)</th><th>Kind</th><th>Topic</th>"
        "<th>Stage</th><th>Message</th></tr>"
    )
    parts = []
    for title, events, start in (
        ("New in B", c.new_events, c.b_start_ns),
        ("Resolved (only in A)", c.resolved_events, c.a_start_ns),
    ):
        parts.append(f"<h3>{_e(title)} <span class=count>{len(events)}</span></h3>")
        if not events:
            parts.append('<p class="muted">None.</p>')
            continue
        rows = (
            f'<tr class="sev-{_e(e.severity)}">'
            f'<td><span class="pill v-{_e(e.severity)}">{_e(e.severity)}</span></td>'
            f'<td class="num">{(e.t_ns - start) / 1e9:.3f}</td><td>{_e(e.kind)}</td>'
            f"<td>{_e(e.topic) if e.topic is not None else _DASH}</td><td>{_e(e.stage)}</td>"
            f"<td>{_e(e.message)}</td></tr>"
            for e in events
        )
        parts.append(_table(head, rows))
    return _section("Events", "\n".join(parts))


def _figures(c: Comparison) -> str:
    if not c.figures:
        return ""
    parts = []
    for fig in c.figures:
        sides = "".join(
            f'<figure><div class="which">{side}</div>{_img(path, fig.title)}</figure>'
            for side, path in (("A", fig.a), ("B", fig.b))
        )
        parts.append(
            f"<h3>{_e(fig.title)} <span class=mono>{_e(fig.stage)}</span></h3>"
            f'<div class="side">{sides}</div>'
        )
    return _section("Figures", "\n".join(parts))


def _img(path: Path, title: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        return f'<div class="missing">{_e(path.name)}: {_e(err.strerror or err)}</div>'
    if not data.startswith(_PNG_MAGIC):
        return f'<div class="missing">{_e(path.name)}: not a PNG file</div>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<img src="{uri}" alt="{_e(title)}">'


def _unpaired(batch: BatchComparison) -> str:
    if not batch.only_a and not batch.only_b:
        return ""
    items = [f"<li>only in A: <code>{_e(p)}</code></li>" for p in batch.only_a]
    items += [f"<li>only in B: <code>{_e(p)}</code></li>" for p in batch.only_b]
    return _section("Unpaired runs", f"<ul>{''.join(items)}</ul>")


# -- helpers -----------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _section(title: str, body: str) -> str:
    return f'<section class="card">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _table(head: str, rows: Iterable[str]) -> str:
    body = "".join(rows)
    return f'<div class="scroll"><table><thead>{head}</thead><tbody>{body}</tbody></table></div>'


def fmt_value(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return _DASH
    if math.isnan(value):
        return "nan"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def fmt_relative(value: float | None) -> str:
    return _DASH if value is None or not math.isfinite(value) else f"{value * 100:+.1f} %"
