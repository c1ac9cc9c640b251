"""The look of ``report.html``: colours, CSS and the page shell, apart from what fills them.

Kept out of :mod:`bagscope.viz.report` so the data side reads as a list of sections, and the
design can change without touching code that decides what is shown. Everything here is a
constant: no value from a log is ever formatted into these strings.
"""

from __future__ import annotations

__all__ = ["CSP", "CSS", "SEVERITY_COLOURS", "STATUS_COLOURS", "VERDICT_COLOURS"]

# Solid badge colours, also what the browser test looks for in a screenshot.
VERDICT_COLOURS = {"pass": "#1f883d", "warn": "#d97706", "fail": "#cf222e"}
# (text, background) of the small status pills in the checks table.
STATUS_COLOURS = {
    "pass": ("#116329", "#dafbe1"),
    "warn": ("#7a4100", "#fff1c2"),
    "fail": ("#a40e26", "#ffebe9"),
    "skip": ("#59636e", "#eaeef2"),
}
SEVERITY_COLOURS = {
    "error": ("#a40e26", "#ffebe9"),
    "warning": ("#7a4100", "#fff1c2"),
    "info": ("#0550ae", "#ddf4ff"),
}

# The page needs no script and no network: a policy that forbids both means that even a
# value that slipped past escaping could not run or phone home.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _pill_rules() -> str:
    rules = [
        f".pill.s-{name}{{color:{fg};background:{bg}}}" for name, (fg, bg) in STATUS_COLOURS.items()
    ]
    rules += [
        f".pill.v-{name}{{color:{fg};background:{bg}}}"
        for name, (fg, bg) in SEVERITY_COLOURS.items()
    ]
    rules += [f".verdict.v-{name}{{background:{c}}}" for name, c in VERDICT_COLOURS.items()]
    return "\n".join(rules)


CSS = (
    """
:root {
  --fg: #1f2328; --muted: #59636e; --border: #d1d9e0; --soft: #f6f8fa; --card: #ffffff;
  --accent: #0969da; --page: #f3f4f6;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { background: var(--page); }
body {
  margin: 0; color: var(--fg); font-size: 14px; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main { max-width: 1200px; margin: 0 auto; padding: 24px 24px 48px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, .mono { font-family: var(--mono); font-size: 12.5px; }
.muted { color: var(--muted); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.nowrap { white-space: nowrap; }

/* header */
.top {
  display: flex; align-items: center; justify-content: space-between; gap: 24px;
  background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: 20px 24px; margin-bottom: 16px;
}
.eyebrow {
  text-transform: uppercase; letter-spacing: .08em; font-size: 11.5px; font-weight: 600;
  color: var(--muted);
}
h1 { font-size: 24px; margin: 2px 0 4px; word-break: break-all; }
.top .meta { color: var(--muted); font-size: 13px; }
.verdict {
  flex: none; color: #fff; font-weight: 800; font-size: 30px; letter-spacing: .06em;
  text-transform: uppercase; padding: 14px 36px; border-radius: 10px; text-align: center;
  min-width: 190px;
}
.verdict small {
  display: block; font-size: 11.5px; font-weight: 600; letter-spacing: .08em; opacity: .9;
}

/* banners */
.banner {
  border-radius: 8px; padding: 12px 16px; margin-bottom: 16px; font-weight: 500;
  border: 1px solid;
}
.banner.b-fail { background: #ffebe9; border-color: #ff8182; color: #82071e; }
.banner.b-warn { background: #fff8c5; border-color: #d4a72c; color: #4d2d00; }
.banner strong { margin-right: 2px; }

/* navigation */
nav.toc { display: flex; flex-wrap: wrap; gap: 6px; margin: 0 0 16px; }
nav.toc a {
  background: var(--card); border: 1px solid var(--border); border-radius: 999px;
  padding: 3px 12px; font-size: 13px; color: var(--fg);
}
nav.toc a:hover { border-color: var(--accent); color: var(--accent); text-decoration: none; }
nav.toc .count { color: var(--muted); margin-left: 4px; }

/* summary tiles */
.tiles {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
  margin-bottom: 16px;
}
.tile {
  background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: 12px 16px;
}
.tile .label {
  color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .06em;
  font-weight: 600;
}
.tile .value { font-size: 22px; font-weight: 650; margin-top: 2px; white-space: nowrap; }
.tile .sub { color: var(--muted); font-size: 12.5px; }
.tile .sub b.s-fail, .tile .sub b.v-error { color: #cf222e; }
.tile .sub b.s-warn, .tile .sub b.v-warning { color: #b35900; }
.tile .sub b.s-pass { color: #1a7f37; }

/* sections */
section.card {
  background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: 18px 24px 20px; margin-bottom: 16px;
}
h2 {
  font-size: 17px; margin: 0 0 12px; display: flex; align-items: baseline; gap: 10px;
}
h2 .count { font-size: 13px; font-weight: 500; color: var(--muted); }
h3 { font-size: 14.5px; margin: 18px 0 8px; }
h3:first-of-type { margin-top: 4px; }
p.note { color: var(--muted); margin: 6px 0 10px; font-size: 13px; }
.empty { color: var(--muted); font-style: italic; margin: 4px 0; }

/* tables */
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td {
  border-bottom: 1px solid var(--border); padding: 6px 10px; text-align: left;
  vertical-align: top;
}
thead th {
  background: var(--soft); font-weight: 600; color: var(--muted); font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; border-top: 1px solid var(--border);
  white-space: nowrap;
}
thead th.num { text-align: right; }
tbody tr:hover td { background: #f8fafc; }
tr.group th {
  background: #eef1f4; font-size: 13px; font-weight: 650; text-align: left;
  padding: 7px 10px; border-top: 1px solid var(--border);
}
tr.group th .muted { font-weight: 500; margin-left: 8px; }
dl.facts {
  display: grid; grid-template-columns: max-content 1fr; gap: 7px 28px; margin: 0 0 6px;
}
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; min-width: 0; }
code.path { word-break: break-all; }
td.topic, td.path {
  font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; min-width: 150px;
}
td.msg { min-width: 260px; }
td.time { font-family: var(--mono); font-size: 12.5px; white-space: nowrap; }
tr.total td { font-weight: 650; background: var(--soft); }

/* pills */
.pill {
  display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 11.5px;
  font-weight: 650; text-transform: uppercase; letter-spacing: .04em; white-space: nowrap;
}
.tag {
  display: inline-block; border: 1px solid var(--border); border-radius: 6px;
  padding: 0 6px; font-size: 12px; color: var(--muted); background: var(--soft);
  white-space: nowrap;
}

/* events */
tr.sev-error td { background: #fff5f5; }
tr.sev-error td:first-child { box-shadow: inset 3px 0 0 #cf222e; }
tr.sev-warning td { background: #fffbeb; }
tr.sev-warning td:first-child { box-shadow: inset 3px 0 0 #d97706; }
tr.sev-info td:first-child { box-shadow: inset 3px 0 0 #b6c2cf; }
.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin: 0 0 10px; }
.filters label {
  display: inline-flex; align-items: center; gap: 6px; border: 1px solid var(--border);
  border-radius: 999px; padding: 2px 12px 2px 8px; cursor: pointer; user-select: none;
  font-size: 13px; background: var(--card);
}
.filters input { margin: 0; }
#events:has(#show-error:not(:checked)) tr.sev-error,
#events:has(#show-warning:not(:checked)) tr.sev-warning,
#events:has(#show-info:not(:checked)) tr.sev-info { display: none; }
details.evidence { margin-top: 3px; }
details.evidence summary, details.trace summary {
  cursor: pointer; color: var(--muted); font-size: 12px; font-family: var(--mono);
  overflow-wrap: anywhere;
}
details.evidence table { width: auto; margin: 4px 0 2px; font-size: 12px; }
details.evidence td, details.evidence th {
  padding: 2px 10px 2px 0; border: none; font-family: var(--mono); background: none;
}
details.evidence th { color: var(--muted); font-weight: 500; }
pre {
  background: var(--soft); border: 1px solid var(--border); border-radius: 6px;
  padding: 10px 12px; overflow-x: auto; font-family: var(--mono); font-size: 12px;
  margin: 6px 0 0; white-space: pre;
}

/* stage errors */
.stage-error { border-left: 3px solid #cf222e; padding: 6px 0 6px 14px; margin: 10px 0; }
.stage-error .what { font-weight: 600; }

/* figures */
.fig-grid { display: grid; grid-template-columns: 1fr; gap: 14px; }
figure {
  margin: 0; border: 1px solid var(--border); border-radius: 8px; padding: 10px 12px 12px;
  background: #fff;
}
figure figcaption { font-weight: 600; font-size: 13.5px; margin-bottom: 8px; }
figure figcaption .mono { color: var(--muted); font-weight: 400; margin-left: 8px; }
figure img { display: block; width: 100%; height: auto; }
.missing {
  border: 1px dashed var(--border); border-radius: 6px; padding: 18px; color: var(--muted);
  text-align: center;
}

/* bars (frame accounting, timing) */
.bar {
  display: flex; height: 10px; border-radius: 3px; overflow: hidden; background: #eaeef2;
  min-width: 160px;
}
.bar span { display: block; height: 100%; }
.c-used { background: #2da44e; }
.c-not_needed { background: #afb8c1; }
.c-dropped { background: #d97706; }
.c-decode_errors { background: #cf222e; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); margin: 8px 0 14px; }
dl.facts + .scroll { margin-top: 12px; }
.legend i {
  display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px;
}
.budget { position: relative; }
.budget .fill { display: block; height: 100%; background: #2da44e; }
.budget .fill.over-half { background: #d97706; }
.budget .fill.over { background: #cf222e; }
td.over { color: #cf222e; font-weight: 650; }
td.over-half { color: #b35900; }

footer { color: var(--muted); font-size: 12px; margin-top: 20px; text-align: center; }

@media (max-width: 720px) {
  .top { flex-direction: column; align-items: flex-start; }
  main { padding: 12px; }
}
@media print {
  html { background: #fff; }
  nav.toc, .filters { display: none; }
  section.card, .top, .tile { border-color: #bbb; break-inside: avoid; }
}
"""
    + _pill_rules()
    + "\n"
)
