"""``replay plot``: any numeric message field over time, from the command line.

``replay plot drive.mcap /imu.linear_acceleration.x /odom.twist.twist.linear.x -o plot.png``
reads the topics once and draws each field on a shared time axis (fields with the same unit
share an axes). The paths are checked against the message types before the log is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import (
    EndOpt,
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
    from matplotlib.figure import Figure

    from bagscope.viz.series import Series

LOG_SUFFIXES = (".bag", ".mcap", ".db3")
FORMATS = (".png", ".svg", ".pdf")
DEFAULT_OUTPUT = "plot.png"


def plot(
    args: Annotated[
        list[str],
        typer.Argument(
            help="The log (several files are read as one), then the fields: TOPIC.FIELD.PATH, "
            "e.g. /imu.linear_acceleration.x, /tf.transforms[0].transform.translation.x, "
            "/scan.ranges[10].",
            metavar="LOG... TOPIC.FIELD...",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the figure here (.png, .svg or .pdf). Without it: a window when there "
            f"is a display, else {DEFAULT_OUTPUT} in the current directory.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    time: Annotated[
        str,
        typer.Option(
            help="Time each sample by its 'header' stamp (the nearest header on the field's "
            "path; log time for types without one) or by its 'log' time.",
            metavar="SOURCE",
        ),
    ] = "header",
    start: StartOpt = None,
    end: EndOpt = None,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Plot numeric message fields over time: one pass over the log, a shared time axis.

    Each field is TOPIC.FIELD.PATH: the longest prefix that is a topic of the log is the topic,
    the rest a path into its messages, with [N] for array elements. Custom types work with
    their definitions in the log or from --msg-path.
    """
    from bagscope.replay.timeparse import resolve_window
    from bagscope.viz.series import collect_series

    with user_errors():
        if time not in ("header", "log"):
            bad_option(f"--time must be 'header' or 'log', not {time!r}")
        logs, specs = split_args(args)
        if output is not None:
            _check_output(output)
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            extent = log.storage.info
            t0, t1 = resolve_window(
                start, end, log_start_ns=extent.start_ns, log_end_ns=extent.end_ns
            )
            series = collect_series(
                log, specs, time="log" if time == "log" else "header", start=t0, end=t1
            )
        title = " + ".join(p.name for p in logs)
        display = output is None and bool(
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        if display:
            _show(series, title=title, start_ns=extent.start_ns, end_ns=extent.end_ns)
            return
        target = output if output is not None else Path(DEFAULT_OUTPUT)
        fig = draw(series, title=title, start_ns=extent.start_ns, end_ns=extent.end_ns)
        save_figure(fig, target)
    for s in series:
        span = (s.times_ns[-1] - s.times_ns[0]) / 1e9
        out.print(f"{s.name}: {len(s)} samples over {span:.3f} s ({s.time_source} times)")
    out.print(f"wrote {target.resolve() if output is None else target}")


def split_args(args: list[str]) -> tuple[list[Path], list[str]]:
    """(logs, field specs): the first argument is a log, and so is every following one that
    names a log file (.bag, .mcap, .db3) or an existing directory (a ROS 2 bag)."""
    if not args:
        bad_option("give a log and at least one field, e.g. drive.mcap /imu.linear_acceleration.x")
    logs = [Path(args[0])]
    rest = list(args[1:])
    while rest and (rest[0].endswith(LOG_SUFFIXES) or Path(rest[0]).is_dir()):
        logs.append(Path(rest.pop(0)))
    if not rest:
        bad_option(
            "name at least one field to plot after the log: TOPIC.FIELD.PATH, "
            "e.g. /imu.linear_acceleration.x"
        )
    return logs, rest


def _check_output(path: Path) -> None:
    """Refuse an output we could not write before the log is read."""
    if path.suffix.lower() not in FORMATS:
        bad_option(f"--output must end in {', '.join(FORMATS)}, not {path.name!r}")
    if not path.parent.is_dir():
        bad_option(f"--output: the directory {str(path.parent)!r} does not exist")


def draw(
    series: list[Series], *, title: str, start_ns: int, end_ns: int, fig: Figure | None = None
) -> Figure:
    """The command's figure, without pyplot (no backend, no global state): one axes per unit
    group, seconds since the log start, the log's name as the title."""
    from matplotlib.figure import Figure

    from bagscope.viz.plots import plot_series, series_groups, time_origin

    if fig is None:
        fig = Figure(figsize=(9, 1.2 + 2.2 * len(series_groups(series))), layout="constrained")
    origin, xlabel = time_origin(series, start_ns=start_ns, end_ns=end_ns)
    return plot_series(series, fig=fig, origin_ns=origin, xlabel=xlabel, title=title)


def save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` atomically: a temporary file beside ``path``, then a rename, so a reader
    (or an interrupted run) never sees half a PNG."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=path.suffix.lower().lstrip(".") or "png", dpi=120)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _show(series: list[Series], *, title: str, start_ns: int, end_ns: int) -> None:
    import matplotlib.pyplot as plt

    from bagscope.viz.plots import series_groups

    fig = plt.figure(figsize=(9, 1.2 + 2.2 * len(series_groups(series))), layout="constrained")
    draw(series, title=title, start_ns=start_ns, end_ns=end_ns, fig=fig)
    plt.show()
