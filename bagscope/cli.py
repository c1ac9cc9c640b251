"""The ``replay`` command line: parsing and printing only; the work lives in the package.

Heavy modules (open3d, matplotlib, even the readers) are imported inside the commands so that
``replay --help`` answers instantly.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console

if TYPE_CHECKING:
    from bagscope.replay.framing import StampSource
    from bagscope.replay.log import Log, LogInfo
    from bagscope.replay.message import Message
    from bagscope.replay.sync import SyncPolicy

app = typer.Typer(
    name="replay",
    help="Replay robot sensor logs (ROS1 .bag, ROS2 .db3/.mcap) as synced camera + lidar frames.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output (files, CI logs) gets a wide console so tables keep their full topic names.
_PIPE_WIDTH = 160
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)

USER_ERROR_EXIT = 2
READING = "Reading"
SYNC = "Sync"
F = TypeVar("F", bound=Callable[..., Any])

LogPaths = Annotated[
    list[Path], typer.Argument(help="Log file(s): .bag, .mcap, .db3 or a ROS2 bag directory.")
]
TypestoreOpt = Annotated[
    str | None,
    typer.Option(
        "--typestore",
        help="Fallback message definitions: humble, jazzy, iron, foxy, noetic, ...",
        rich_help_panel=READING,
    ),
]
MsgPathOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--msg-path",
        help="Directory of custom .msg/.idl definitions (repeatable).",
        rich_help_panel=READING,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", help="Fail on cut-off logs and corrupt messages.", rich_help_panel=READING
    ),
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake into one red line and exit code 2; keep tracebacks for our bugs."""
    from bagscope.replay.errors import ReplayError

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        err.print(f"[yellow]warning:[/] {message}")

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    except ReplayError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(USER_ERROR_EXIT) from None
    finally:
        warnings.showwarning = previous


def _open(
    paths: list[Path], typestore: str | None, msg_paths: list[Path] | None, *, strict: bool
) -> Log:
    from bagscope.replay.log import open_log

    return open_log(paths, typestore=typestore, msg_paths=msg_paths or (), strict=strict)


def _clock(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@app.command()
def info(
    logs: LogPaths,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
    gaps: Annotated[
        bool,
        typer.Option(help="Scan message times for the largest gap per topic (reads the log)."),
    ] = True,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Show a log's extent, storage and topics, like `ros2 bag info`, plus rates and gaps."""
    with user_errors(), _open(logs, typestore, msg_path, strict=strict) as log:
        summary = log.info()
        if as_json:
            out.print_json(json.dumps(summary.to_json()))
            return
        _print_info(summary, _scan_times(log, summary) if gaps else {})


@dataclass
class _TopicTimes:
    """What one pass over the log's times says per topic: rate from its own span, worst gap."""

    first: int
    last: int
    count: int = 1
    max_gap: int = 0

    @property
    def rate_hz(self) -> float | None:
        span = self.last - self.first
        return (self.count - 1) / span * 1e9 if self.count > 1 and span > 0 else None


def _scan_times(log: Log, summary: LogInfo) -> dict[str, _TopicTimes]:
    from rich.progress import Progress

    times: dict[str, _TopicTimes] = {}
    total = max(summary.duration_ns, 1)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("scanning", total=total)
        for i, msg in enumerate(log.messages()):
            t = msg.log_time_ns
            seen = times.get(msg.topic)
            if seen is None:
                times[msg.topic] = _TopicTimes(first=t, last=t)
            else:
                seen.max_gap = max(seen.max_gap, t - seen.last)
                seen.last = t
                seen.count += 1
            if i % 512 == 0:
                bar.update(task, completed=t - summary.start_ns)
    return times


def _print_info(summary: LogInfo, scanned: dict[str, _TopicTimes]) -> None:
    from rich.table import Table

    from bagscope.replay.timeparse import format_duration

    paths = ", ".join(str(p) for p in summary.paths)
    rows = [
        ("Files", paths),
        ("Storage", f"{summary.storage} (compression: {summary.compression})"),
        ("Size", _size(summary.size_bytes)),
        ("Duration", format_duration(summary.duration_ns)),
        ("Start", f"{_clock(summary.start_ns)} ({summary.start_ns / 1e9:.9f})"),
        ("End", f"{_clock(summary.end_ns)} ({summary.end_ns / 1e9:.9f})"),
        ("Messages", str(summary.message_count)),
    ]
    for key, value in rows:
        out.print(f"[bold]{key + ':':<10}[/] {value}")
    if not summary.complete:
        out.print(f"[yellow bold]Incomplete:[/] {summary.recovery_note or 'log was cut off'}")
    table = Table(title=None, show_edge=False, header_style="bold")
    table.add_column("Topic")
    table.add_column("Type")
    table.add_column("Count", justify="right")
    table.add_column("Conns", justify="right")
    table.add_column("Rate", justify="right")
    if scanned:
        table.add_column("Max gap", justify="right")
    for topic in summary.topics:
        seen = scanned.get(topic.name)
        # A scan measures each topic over its own span; the index only knows the log's.
        hz = seen.rate_hz if seen is not None else topic.frequency_hz
        row = [topic.name, topic.msgtype, str(topic.count), str(topic.connections)]
        row.append(f"{hz:.2f} Hz" if hz is not None else "-")
        if scanned:
            row.append(format_duration(seen.max_gap) if seen and seen.count > 1 else "-")
        table.add_row(*row)
    out.print(table)


@app.command()
def frames(
    logs: LogPaths,
    sync: Annotated[
        str,
        typer.Option("--sync", help="Topics to sync, comma-separated; the first is the reference."),
    ],
    policy: Annotated[
        str, typer.Option(help="approximate | exact | nearest", rich_help_panel=SYNC)
    ] = "approximate",
    slop: Annotated[
        str | None,
        typer.Option(
            help="nearest: max distance to the reference (default 50ms); "
            "approximate: max interval of a set.",
            rich_help_panel=SYNC,
        ),
    ] = None,
    queue_size: Annotated[int, typer.Option(help="Per-topic queue.", rich_help_panel=SYNC)] = 10,
    stamp: Annotated[
        str,
        typer.Option(
            help="Sync on the header stamp or the log time: 'header', 'log', or per topic "
            "'/cam/image=log,/lidar=header' (unlisted topics use header stamps).",
            rich_help_panel=SYNC,
        ),
    ] = "header",
    start: Annotated[
        str | None, typer.Option(help="Seconds from the log start (or absolute epoch s).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Seconds from the log start (or absolute epoch s).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Play at real time × RATE instead of as fast as possible.")
    ] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON line per frame.")] = False,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Stream synced frames and summarise them: frames, drops per topic, skew."""
    from bagscope.replay.pacing import Pacer
    from bagscope.replay.timeparse import parse_time_point

    with user_errors(), _open(logs, typestore, msg_path, strict=strict) as log:
        topics = [t.strip() for t in sync.split(",") if t.strip()]
        policy_obj = _make_policy(policy, topics, slop=slop, queue_size=queue_size)
        stamp_source = _parse_stamp_source(stamp)
        summary = log.info()
        t0 = parse_time_point(start, log_start_ns=summary.start_ns) if start else None
        t1 = parse_time_point(end, log_start_ns=summary.start_ns) if end else None
        stream = log.frames(policy_obj, start=t0, end=t1, stamp_source=stamp_source)
        pacer = Pacer(rate=rate)
        _run_frames(stream, summary, pacer=pacer, jsonl=jsonl, start_ns=t0)
        _print_frame_summary(stream.stats, topics, to=err if jsonl else out)


def _parse_stamp_source(text: str) -> StampSource:
    choices = ("header", "log")
    if text in choices:
        return text  # type: ignore[return-value]
    per_topic: dict[str, Literal["header", "log"]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        topic, _, source = part.rpartition("=")
        if not topic or source not in choices:
            _bad_option(f"--stamp takes header, log or TOPIC=header|log pairs, not {part!r}")
        per_topic[topic] = source  # type: ignore[assignment]
    return per_topic


def _bad_option(message: str) -> None:
    from bagscope.replay.errors import ReplayError

    raise ReplayError(message)


def _make_policy(
    name: str, topics: list[str], *, slop: str | None, queue_size: int
) -> SyncPolicy[Message]:
    from bagscope.replay import sync as sync_mod
    from bagscope.replay.timeparse import parse_duration

    slop_ns = parse_duration(slop) if slop is not None else None
    if len(topics) < 1:
        _bad_option("--sync needs at least one topic")
    if name == "approximate":
        return sync_mod.ApproximateTimeSync(topics, queue_size=queue_size, max_interval=slop_ns)
    if name == "exact":
        return sync_mod.ExactTimeSync(topics, queue_size=queue_size)
    if name == "nearest":
        return sync_mod.NearestSync(
            topics[0], topics[1:], slop=slop_ns if slop_ns is not None else 50_000_000
        )
    _bad_option(f"--policy must be approximate, exact or nearest, not {name!r}")
    raise AssertionError  # pragma: no cover - _bad_option raises


def _run_frames(
    stream: Any, summary: LogInfo, *, pacer: Any, jsonl: bool, start_ns: int | None
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    origin = start_ns if start_ns is not None else summary.start_ns
    total = max(summary.end_ns - origin, 1)
    columns = (
        TextColumn("[bold]frames[/] {task.fields[n]}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("frames", total=total, n=0)
        for frame in stream:
            pacer.wait(frame.t)
            if jsonl:
                record = {"index": frame.index, "t_ns": frame.t, "stamps_ns": dict(frame.stamps)}
                sys.stdout.write(json.dumps(record) + "\n")
            bar.update(task, completed=frame.t - origin, n=frame.index + 1)


def _print_frame_summary(stats: Any, topics: list[str], *, to: Console) -> None:
    from rich.table import Table

    from bagscope.replay.timeparse import format_duration

    skew = stats.skew_percentiles()
    to.print(
        f"[bold]{stats.frames}[/] frames · skew p50 {format_duration(int(skew['p50']))}, "
        f"p95 {format_duration(int(skew['p95']))}, max {format_duration(int(skew['max']))}"
    )
    table = Table(show_edge=False, header_style="bold")
    for column in ("Topic", "Messages", "Dropped", "Decode errors"):
        table.add_column(column, justify="left" if column == "Topic" else "right")
    for topic in topics:
        table.add_row(
            topic,
            str(stats.messages.get(topic, 0)),
            str(stats.dropped.get(topic, 0)),
            str(stats.decode_errors.get(topic, 0)),
        )
    to.print(table)
    for topic, first in stats.first_decode_error.items():
        to.print(f"[yellow]{topic}[/]: {stats.decode_errors[topic]} corrupt, first: {first}")


@app.command()
def simulate(
    out_path: Annotated[Path, typer.Argument(help="Log to write (.mcap, .bag, or a db3 bag dir).")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="mcap | db3 | bag (default: from the suffix).")
    ] = None,
    duration: Annotated[str, typer.Option(help="Length of the drive.")] = "20s",
    seed: Annotated[int, typer.Option(help="Everything random follows from it.")] = 0,
    scenario: Annotated[str, typer.Option(help="urban | highway | parking")] = "urban",
    faults: Annotated[
        str | None,
        typer.Option(help='Faults to inject, e.g. "drop:/lidar/points=0.1,delay:/imu=20ms".'),
    ] = None,
    beams: Annotated[int | None, typer.Option(help="Lidar beams: 16, 32, 64 or 128.")] = None,
    camera_size: Annotated[
        str | None, typer.Option(help="Camera resolution WIDTHxHEIGHT, e.g. 1280x720.")
    ] = None,
    raw_images: Annotated[
        bool, typer.Option("--raw-images", help="Publish sensor_msgs/Image instead of JPEG.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Simulate a camera + lidar drive with ground truth (and faults) and write it as a bag."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from bagscope.replay.timeparse import format_duration, parse_duration

    with user_errors():
        from bagscope.sim.simulate import simulate as run_simulation

        size = _parse_size(camera_size) if camera_size else None
        duration_ns = parse_duration(duration)
        chosen = fmt or _format_from_suffix(out_path)
        columns = (
            TextColumn("[bold]simulating[/]"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("sim", total=duration_ns)
            result = run_simulation(
                out_path,
                fmt=chosen,
                scenario=scenario,
                duration_ns=duration_ns,
                seed=seed,
                faults=faults,
                camera_size=size,
                beams=beams,
                raw_images=raw_images,
                overwrite=overwrite,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        out.print(
            f"wrote [bold]{result.log_path}[/] ({format_duration(duration_ns)} of {scenario}, "
            f"{sum(result.message_counts.values())} messages) in {result.wall_s:.1f} s "
            f"= {result.realtime_factor:.2f}× real time; truth: {result.truth_path}"
        )


def _parse_size(text: str) -> tuple[int, int]:
    from bagscope.replay.errors import ReplayError

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"--camera-size must look like 1280x720, not {text!r}"
        raise ReplayError(msg) from None
    if width <= 0 or height <= 0:
        msg = f"--camera-size must be positive, not {text!r}"
        raise ReplayError(msg)
    return width, height


def _format_from_suffix(path: Path) -> str:
    return {".bag": "bag", ".db3": "db3"}.get(path.suffix, "mcap")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
