"""``replay compare A B``: what changed between two runs of the same log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import out, user_errors

if TYPE_CHECKING:
    from bagscope.compare import BatchComparison, Comparison

_STATUS_STYLE = {
    "regression": "bold red",
    "improvement": "bold green",
    "worse": "red",
    "better": "green",
    "changed": "cyan",
    "only_a": "dim",
    "only_b": "dim",
    "same": "dim",
}


def compare(
    run_a: Annotated[
        Path,
        typer.Argument(help="The baseline: a run directory (or a batch folder).", metavar="A"),
    ],
    run_b: Annotated[
        Path,
        typer.Argument(help="The candidate: a run directory (or a batch folder).", metavar="B"),
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Folder to write compare.html into.", metavar="DIR"),
    ] = Path("compare"),
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="How far a metric may move the bad way before it is a regression: "
            "METRIC=5% (relative) or METRIC=0.02 (absolute), METRIC a name or STAGE.METRIC, "
            "'*' for all; repeatable. Default 5%.",
            metavar="METRIC=LIMIT",
        ),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option(help="Exit 1 when there is any regression: for CI.")
    ] = False,
    allow_different_logs: Annotated[
        bool, typer.Option(help="Compare runs over different logs too.")
    ] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List unchanged metrics in the table too.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON instead of the table.")
    ] = False,
) -> None:
    """Compare run B with run A (two run directories over the same log, from `replay run` or
    `replay analyze`): metric deltas judged better/worse, new and resolved events, and
    compare.html with the figures side by side.

    A regression is a metric moving the bad way by more than its threshold, or a new warning
    or error event. Exit 0 (1 with --fail-on-regression when there are regressions).
    """
    from bagscope.compare import BatchComparison, compare_paths, parse_thresholds
    from bagscope.viz.compare_report import write_compare

    with user_errors():
        thresholds = parse_thresholds(threshold or [])
        result = compare_paths(
            run_a, run_b, thresholds=thresholds, allow_different_logs=allow_different_logs
        )
        page = write_compare(result, out_dir)
    if as_json:
        out.print_json(json.dumps({"compare_html": str(page), **result.to_json()}))
    else:
        pairs = result.pairs if isinstance(result, BatchComparison) else [result]
        for pair in pairs:
            _print_pair(pair, show_all=show_all, heading=len(pairs) > 1)
        if isinstance(result, BatchComparison):
            _print_unpaired(result)
        style = "bold red" if result.regressions else "bold green"
        from rich.markup import escape

        out.print(f"[{style}]{escape(result.verdict_line())}[/] · report: {escape(str(page))}")
    raise typer.Exit(1 if fail_on_regression and result.regressions else 0)


def _print_pair(c: Comparison, *, show_all: bool, heading: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from bagscope.viz.compare_report import fmt_relative, fmt_value

    if heading:
        out.print(f"[bold]{escape(str(c.a))} → {escape(str(c.b))}[/]")
    if not c.same_log:
        out.print("[yellow]note:[/] the runs read different logs")
    rows = [m for m in c.metrics if show_all or m.direction != "same"]
    hidden = len(c.metrics) - len(rows)
    if rows:
        table = Table(show_edge=False, header_style="bold")
        for column in ("Metric", "Topic", "Label", "A", "B", "Δ", "Δ %", "Status", "Threshold"):
            table.add_column(
                column, justify="right" if column in ("A", "B", "Δ", "Δ %") else "left"
            )
        for m in rows:
            status = (
                "regression" if m.regression else "improvement" if m.improvement else m.direction
            )
            shown = {"only_a": "only in A", "only_b": "only in B"}.get(status, status)
            table.add_row(
                escape(f"{m.stage}: {m.metric}"),
                escape(m.topic or "-"),
                escape(m.label or "-"),
                fmt_value(m.a),
                fmt_value(m.b),
                fmt_value(m.delta, signed=True),
                fmt_relative(m.relative),
                f"[{_STATUS_STYLE.get(status, '')}]{shown}[/]",
                escape(str(m.threshold)),
            )
        out.print(table)
    if hidden:
        out.print(f"[dim]{hidden} unchanged metrics not shown (--all lists them)[/]")
    for title, events, style in (
        ("new", c.new_events, "red"),
        ("resolved", c.resolved_events, "green"),
    ):
        for e in events:
            out.print(
                f"[{style}]{title}[/] {e.severity} {escape(e.kind)} on "
                f"{escape(e.topic or '-')}: {escape(e.message)}"
            )


def _print_unpaired(batch: BatchComparison) -> None:
    from rich.markup import escape

    for path in batch.only_a:
        out.print(f"[dim]only in A (no run of its log in B): {escape(str(path))}[/]")
    for path in batch.only_b:
        out.print(f"[dim]only in B (no run of its log in A): {escape(str(path))}[/]")
