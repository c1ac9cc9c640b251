"""``summary.html``: the batch at a glance, one line per log with the worst first.

Read from the run directories the batch wrote (their ``report.json``), never from memory, so
a resumed batch's page covers the logs run before as well as those run now.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bagscope.batch import BatchResult

__all__ = ["summary_html"]

_VERDICT_RANK = {"failed": 0, "fail": 1, "warn": 2, "pass": 3}


def _summary_rows(result: BatchResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for log in (str(p) for p in result.logs):
        run_dir = result.run_dirs.get(log)
        if run_dir is None:
            error = result.failures.get(log, "not run")
            rows.append({"log": log, "verdict": "failed", "errors": 0, "warnings": 0,
                         "note": error, "report": None})  # fmt: skip
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
            }
        )
    rows.sort(key=lambda r: (_VERDICT_RANK.get(r["verdict"], 9), -r["errors"], -r["warnings"]))
    return rows


def summary_html(result: BatchResult) -> str:
    """One line per log, worst first (failed to run, fail, warn, pass; then most errors)."""
    e = html.escape
    rows = _summary_rows(result)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: _VERDICT_RANK.get(kv[0], 9))
    totals = " · ".join(f"{n} {e(v)}" for v, n in ordered)
    body = []
    for row in rows:
        link = f'<a href="{e(row["report"], quote=True)}">report</a>' if row["report"] else ""
        body.append(
            f'<tr class="{e(row["verdict"], quote=True)}"><td>{e(row["log"])}</td>'
            f"<td>{e(row['verdict'])}</td><td class=n>{row['errors']}</td>"
            f"<td class=n>{row['warnings']}</td><td>{link}</td><td>{e(row['note'])}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bagscope batch: {len(rows)} logs</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.failed td, tr.fail td:nth-child(2) {{ color: #b00020; font-weight: 600; }}
tr.warn td:nth-child(2) {{ color: #a66a00; font-weight: 600; }}
tr.pass td:nth-child(2) {{ color: #1b7f3b; }}
</style></head><body>
<h1>Batch of {len(rows)} logs</h1>
<p>{totals}</p>
<table><thead><tr><th>Log</th><th>Verdict</th><th>Errors</th><th>Warnings</th><th>Report</th>
<th>Note</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
