"""``replay info``: a log's extent, storage and topics, like ``ros2 bag info``, plus the
per-topic rate and largest gap."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import (
    LogPaths,
    MsgPathOpt,
    StrictOpt,
    TypestoreOpt,
    err,
    open_logs,
    out,
    user_errors,
)

if TYPE_CHECKING:
    from bagscope.replay.log import LogInfo


def info(
    logs: LogPaths,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    gaps: Annotated[
        bool,
        typer.Option(
            help="Read every message time for the largest gap per topic (from the index where "
            "the format has one); --no-gaps reads only each topic's first and last time.",
        ),
    ] = True,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Show a log's extent, storage and topics, like `ros2 bag info`, plus rates and gaps.

    Rate = (count - 1) / the topic's own first-to-last span ("-" for fewer than 2 messages).
    """
    from rich.progress import Progress

    with user_errors(), open_logs(logs, typestore, msg_path, strict=strict) as log:
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("reading message times", total=None)
            summary = log.info(
                gaps=gaps,
                progress=lambda done, total: bar.update(task, completed=done, total=total or None),
            )
        if as_json:
            out.print_json(json.dumps(summary.to_json()))
            return
        print_info(summary)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def print_info(summary: LogInfo) -> None:
    """The header lines and the topic table."""
    from rich.markup import escape
    from rich.table import Table

    from bagscope.replay.timeparse import format_clock, format_duration, format_epoch

    empty = summary.message_count == 0  # no extent to show, rather than 1970

    def when(ns: int) -> str:
        return "-" if empty else f"{format_clock(ns)} ({format_epoch(ns)})"

    rows = [
        ("Files", ", ".join(str(p) for p in summary.paths)),
        ("Storage", f"{summary.storage} (compression: {summary.compression})"),
        ("Size", _size(summary.size_bytes)),
        ("Duration", "-" if empty else format_duration(summary.duration_ns)),
        (
            "Start",
            "-"
            if empty
            else f"{format_clock(summary.start_ns)} ({format_epoch(summary.start_ns)})",
        ),
        (
            "End",
            "-" if empty else f"{format_clock(summary.end_ns)} ({format_epoch(summary.end_ns)})",
        ),
        ("Messages", str(summary.message_count)),
    ]
    for key, value in rows:
        out.print(f"[bold]{key + ':':<10}[/] {escape(value)}")
    if not summary.complete:
        note = escape(summary.recovery_note or "log was cut off")
        out.print(f"[yellow bold]Incomplete:[/] {note}")
    table = Table(title=None, show_edge=False, header_style="bold")
    for column in ("Topic", "Type", "Count", "Conns", "Rate"):
        table.add_column(column, justify="left" if column in ("Topic", "Type") else "right")
    if summary.gaps_scanned:
        table.add_column("Max gap", justify="right")
    for topic in summary.topics:
        hz = topic.rate_hz
        row = [escape(topic.name), topic.msgtype, str(topic.count), str(topic.connections)]
        row.append(f"{hz:.2f} Hz" if hz is not None else "-")
        if summary.gaps_scanned:
            gap = topic.max_gap_ns
            row.append(format_duration(gap) if gap is not None else "-")
        table.add_row(*row)
    out.print(table)
