"""``replay frames``: stream synced frames and account for every message of the synced topics."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import (
    SYNC,
    EndOpt,
    LogPaths,
    MsgPathOpt,
    StartOpt,
    StrictOpt,
    TypestoreOpt,
    bad_option,
    err,
    open_logs,
    out,
    user_errors,
)

if TYPE_CHECKING:
    from rich.console import Console

    from bagscope.replay.framing import FrameStats, FrameStream
    from bagscope.replay.pacing import Pacer

# Kept in step with bagscope.replay.sync.DEFAULT_QUEUE_SIZE (a test checks), without importing
# the sync module just to show --help.
DEFAULT_QUEUE_SIZE = 100


def frames(
    logs: LogPaths,
    sync: Annotated[
        str,
        typer.Option(
            "--sync",
            help="Topics to sync, comma-separated; the first is the reference.",
            metavar="TOPICS",
            show_default=False,
        ),
    ],
    policy: Annotated[
        str,
        typer.Option(
            help="approximate (ROS message_filters ApproximateTime) | exact | nearest "
            "(one frame per reference message).",
            metavar="NAME",
            rich_help_panel=SYNC,
        ),
    ] = "approximate",
    slop: Annotated[
        str | None,
        typer.Option(
            help="nearest: largest distance to the reference (default 50ms). approximate: "
            "largest spread of a set; without --slop it has no limit, as in ROS.",
            metavar="DURATION",
            rich_help_panel=SYNC,
        ),
    ] = None,
    queue_size: Annotated[
        int,
        typer.Option(
            help="Messages a policy may hold per topic (ROS nodes often use 10).",
            metavar="N",
            rich_help_panel=SYNC,
        ),
    ] = DEFAULT_QUEUE_SIZE,
    stamp: Annotated[
        str,
        typer.Option(
            help="Sync on the header stamp or the log time: 'header', 'log', or per topic "
            "'/cam/image=log,/lidar=header' (unlisted topics use header stamps).",
            metavar="SOURCE",
            rich_help_panel=SYNC,
        ),
    ] = "header",
    start: StartOpt = None,
    end: EndOpt = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Play at real time × RATE instead of as fast as possible.", metavar="RATE"
        ),
    ] = None,
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="One JSON line per frame on stdout.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run summary as one JSON object.")
    ] = False,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Stream synced frames and summarise them: frames, skew, and what became of each message.

    Per synced topic: used in a frame, not needed (a closer one won: a rate difference),
    dropped (a real loss: no frame possible, or a queue overflowed), or a decode error.
    """
    from bagscope.replay.framing import parse_stamp_source
    from bagscope.replay.pacing import Pacer
    from bagscope.replay.sync import POLICIES, make_policy
    from bagscope.replay.timeparse import parse_duration, resolve_window

    with user_errors():
        topics = [t.strip() for t in sync.split(",") if t.strip()]
        if len(topics) < 2:
            bad_option(f"--sync needs at least two topics, the first one the reference: {sync!r}")
        if policy not in POLICIES:
            bad_option(f"--policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if queue_size < 1:
            bad_option(f"--queue-size must be at least 1, not {queue_size}")
        slop_ns = parse_duration(slop) if slop is not None else None
        if slop_ns is not None and slop_ns < 0:
            bad_option(f"--slop must not be negative, not {slop}")
        if slop_ns is not None and policy == "exact":
            bad_option("--slop does not apply to --policy exact (it matches identical stamps)")
        if rate is not None and not rate > 0:
            bad_option(f"--rate must be positive, not {rate}")
        stamp_source = parse_stamp_source(stamp)
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            recorded = [log.resolve_topic(t) for t in topics]
            summary = log.storage.info
            t0, t1 = resolve_window(
                start, end, log_start_ns=summary.start_ns, log_end_ns=summary.end_ns
            )
            policy_obj = make_policy(policy, recorded, slop_ns=slop_ns, queue_size=queue_size)
            stream = log.frames(policy_obj, start=t0, end=t1, stamp_source=stamp_source)
            origin = t0 if t0 is not None else summary.start_ns
            total = max((t1 if t1 is not None else summary.end_ns) - origin, 1)
            _run(stream, origin=origin, total=total, pacer=Pacer(rate=rate), jsonl=jsonl)
        if as_json:
            (err if jsonl else out).print_json(json.dumps(stream.stats.to_json()))
        else:
            print_summary(stream.stats, to=err if jsonl else out)


def _run(stream: FrameStream, *, origin: int, total: int, pacer: Pacer, jsonl: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("[bold]frames[/] {task.fields[n]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    write = sys.stdout.write
    shown = err.is_terminal  # piped output gets no bar, and pays nothing for one
    with Progress(*columns, console=err, transient=True, disable=not shown) as bar:
        task = bar.add_task("frames", total=total, n=0)
        for frame in stream:
            pacer.wait(frame.t_ns)
            if jsonl:
                record = {"index": frame.index, "t_ns": frame.t_ns, "stamps_ns": frame.stamps_ns}
                write(json.dumps(record) + "\n")
            if shown and frame.index % 16 == 0:  # rich redraws 10x a second anyway
                bar.update(task, completed=frame.t_ns - origin, n=frame.index + 1)


def print_summary(stats: FrameStats, *, to: Console) -> None:
    """Frames and skew on one line, the per-topic accounting as a table, then the reasons."""
    from rich.markup import escape
    from rich.table import Table

    from bagscope.replay.timeparse import format_duration

    skew = stats.skew_percentiles()
    shown = {k: format_duration(v) if v is not None else "-" for k, v in skew.items()}
    to.print(
        f"[bold]{stats.frames}[/] frames · skew p50 {shown['p50']}, p95 {shown['p95']}, "
        f"max {shown['max']}"
    )
    table = Table(show_edge=False, header_style="bold")
    columns = ("Topic", "Messages", "Used", "Not needed", "Dropped", "Decode errors")
    for column in columns:
        table.add_column(column, justify="left" if column == "Topic" else "right")
    for topic, row in stats.to_json()["topics"].items():
        values = (row[k] for k in ("messages", "used", "not_needed", "dropped", "decode_errors"))
        table.add_row(escape(topic), *(str(v) for v in values))
    to.print(table)
    for topic, first in stats.first_decode_error.items():
        count = stats.decode_errors[topic]
        to.print(f"[yellow]{escape(topic)}[/]: {count} corrupt, first: {escape(first)}")
    for reason in stats.reasons:
        to.print(f"[yellow]why:[/] {escape(reason)}")
