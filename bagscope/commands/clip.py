"""``replay clip``: a window (and some topics) of a log, or one clip per event of a run, as
new self-contained logs; the copying lives in :mod:`bagscope.clip`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import (
    EndOpt,
    LogPaths,
    MsgPathOpt,
    StartOpt,
    StrictOpt,
    TypestoreOpt,
    bad_option,
    open_logs,
    out,
    user_errors,
)

if TYPE_CHECKING:
    from bagscope.clip import ClipResult

FORMAT_CHOICES = ("mcap", "db3", "bag")

OutOpt = Annotated[
    Path,
    typer.Option(
        "-o",
        "--out",
        help="The log to write (with --events: the directory the clips go into).",
        metavar="OUT",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format", help="mcap | db3 | bag (default: from OUT's name; mcap).", metavar="FMT"
    ),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output log.")]
CompressionOpt = Annotated[
    str,
    typer.Option(
        "--compression",
        help="mcap: zstd | lz4; bag: lz4 | bz2; or none.",
        metavar="KIND",
    ),
]


def check_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in FORMAT_CHOICES:
        bad_option(f"--format {fmt!r} is not one of {' | '.join(FORMAT_CHOICES)}")


def describe(result: ClipResult) -> str:
    """One line per written log: where, what and how much."""
    carried = sum(result.carried.values())
    extra = f" (+{carried} carried in at the window start)" if carried else ""
    conv = f", {result.converted} converted" if result.converted else ""
    written = result.message_count - carried
    return f"wrote {result.out} ({result.fmt}): {written} messages{extra}{conv}"


def clip(
    logs: LogPaths,
    output: OutOpt,
    start: StartOpt = None,
    end: EndOpt = None,
    topics: Annotated[
        str | None,
        typer.Option(
            "--topics", help="Comma-separated topics to keep (default: all).", metavar="T,.."
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help="A run's events.jsonl: one clip per (merged) event window into OUT/.",
            metavar="FILE",
        ),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="With --events: only events of this kind.")
    ] = None,
    severity: Annotated[
        str | None,
        typer.Option("--severity", help="With --events: only events at least this severe."),
    ] = None,
    pad: Annotated[
        str, typer.Option("--pad", help="With --events: time kept before and after each event.")
    ] = "2s",
    fmt: FormatOpt = None,
    compression: CompressionOpt = "none",
    overwrite: OverwriteOpt = False,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Write messages with start <= log time < end (of --topics) as a new, self-contained log.

    /tf_static and the latest CameraInfo before the window are carried in at the window's
    start log time (their header stamps as recorded). With --events, one clip per event window
    [t - pad, end + pad) goes into OUT/, listed in OUT/clips.jsonl.
    """
    from bagscope.clip import clip_events, clip_log, load_events
    from bagscope.replay.timeparse import parse_duration, resolve_window
    from bagscope.sim.errors import OutputExistsError

    with user_errors():
        check_format(fmt)
        wanted = [t.strip() for t in topics.split(",") if t.strip()] if topics else None
        if events is None and (kind is not None or severity is not None):
            bad_option("--kind and --severity select events; give --events too")
        if events is not None and (start is not None or end is not None):
            bad_option("--events picks the windows; leave out --start/--end")
        try:
            with open_logs(logs, typestore, msg_path, strict=strict) as log:
                if events is not None:
                    pad_ns = parse_duration(pad)
                    if pad_ns < 0:
                        bad_option(f"--pad {pad} is negative")
                    picked = load_events(events, kind=kind, severity=severity)
                    done = clip_events(
                        log,
                        picked,
                        output,
                        pad_ns=pad_ns,
                        fmt=fmt or "mcap",
                        topics=wanted,
                        compression=compression,
                        overwrite=overwrite,
                    )
                    for _, result in done:
                        out.print(describe(result))
                    out.print(f"wrote {output / 'clips.jsonl'} ({len(done)} clips)")
                    return
                info = log.info()
                t0, t1 = resolve_window(
                    start, end, log_start_ns=info.start_ns, log_end_ns=info.end_ns
                )
                result = clip_log(
                    log,
                    output,
                    fmt=fmt,
                    start_ns=t0,
                    end_ns=t1,
                    topics=wanted,
                    compression=compression,
                    overwrite=overwrite,
                )
                out.print(describe(result))
        except OutputExistsError as err:
            bad_option(f"{err.path} already exists; pass --overwrite to replace it")
