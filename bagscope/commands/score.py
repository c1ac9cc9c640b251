"""``replay score``: a run's events against the simulator's fault sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bagscope.cli import out, user_errors


def score(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory (from run or analyze).", metavar="RUN")
    ],
    truth: Annotated[
        Path,
        typer.Option(
            "--truth",
            help="The simulator's sidecar: DRIVE.truth.json beside the log.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the score as JSON.")] = False,
) -> None:
    """Score a run's events against the faults the simulator injected: per fault found or
    missed (with the matching event and its time error), plus false alarms."""
    from rich.markup import escape
    from rich.table import Table

    from bagscope.pipeline.rundir import load_run
    from bagscope.replay.timeparse import format_duration
    from bagscope.scoring import read_faults
    from bagscope.scoring import score as score_events

    with user_errors():
        run = load_run(run_dir)
        faults, _ = read_faults(truth)
        result = score_events(run.events, faults)
    if as_json:
        doc = result.to_json()
        doc.pop("false_alarm_events")
        for item in doc["faults"]:
            item.pop("event")
        out.print_json(json.dumps(doc))
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("Fault", "Topic", "Found", "Event", "Time error"):
        table.add_column(column)
    for item in result.faults:
        found = {True: "[green]yes[/]", False: "[red]no[/]", None: "[dim]n/a[/]"}[item.found]
        event = item.event
        table.add_row(
            item.fault.kind,
            escape(item.fault.topic),
            found,
            escape(f"{event.stage}: {event.kind}") if event else "-",
            format_duration(item.time_error_ns) if item.time_error_ns is not None else "-",
        )
    out.print(table)
    for event in result.false_alarms:
        out.print(f"[yellow]false alarm:[/] {escape(event.kind)}: {escape(event.message)}")
    out.print(
        f"found {result.found} of {result.found + result.missed} faults, "
        f"{len(result.false_alarms)} false alarms"
    )
