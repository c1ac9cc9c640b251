"""``replay view``: look at a log frame by frame in a window (Open3D gui), or save one view."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bagscope.cli import (
    USER_ERROR_EXIT,
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
    from bagscope.pipeline.config import SyncConfig
    from bagscope.pipeline.stage import Event, Stage
    from bagscope.replay.log import Log
    from bagscope.viz.view import ViewSpec

VIEW = "View"


def view(
    logs: LogPaths,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            help="Pipeline file: its [sync] makes the frames and its stages run on each one "
            "(their boxes are drawn).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A run directory of this log: its events mark the timeline (stages not rerun).",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    start: StartOpt = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Open at this time (offset or epoch s); with --screenshot: the frame to save.",
            metavar="TIME",
            rich_help_panel=VIEW,
        ),
    ] = None,
    screenshot: Annotated[
        Path | None,
        typer.Option(
            "--screenshot",
            help="Save what the window shows as a PNG and exit.",
            metavar="PNG",
            rich_help_panel=VIEW,
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        str,
        typer.Option(help="Window (and screenshot) size.", metavar="WxH", rich_help_panel=VIEW),
    ] = "1600x900",
    view_name: Annotated[
        str,
        typer.Option("--view", help="bev | chase | sensor.", metavar="NAME", rich_help_panel=VIEW),
    ] = "chase",
    color_by: Annotated[
        str,
        typer.Option(
            help="height | intensity | range | ring | any point field.",
            metavar="FIELD",
            rich_help_panel=VIEW,
        ),
    ] = "height",
    point_size: Annotated[
        float, typer.Option(help="Point size in pixels.", metavar="PX", rich_help_panel=VIEW)
    ] = 2.0,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Open a window on the log: the 3D view (points, boxes, ego trail, TF axes), camera
    panels, info, layer toggles, a timeline with the run's events, play/pause and stepping.

    Keys: space play/pause, left/right step, [ ] speed, n/p next/previous event, h help.
    Needs a display (run it under xvfb-run on a headless machine).
    """
    from bagscope.viz.viewer import needs_display

    reason = needs_display()
    if reason is not None:
        err.print(f"[red]error:[/] {reason}")
        raise typer.Exit(USER_ERROR_EXIT)
    with user_errors():
        spec = _spec(view_name, color_by=color_by, point_size=point_size, size=size)
        if at is not None and start is not None:
            bad_option("give --at or --start, not both (they both say where to open)")
        if screenshot is not None and screenshot.suffix.lower() != ".png":
            bad_option(f"--screenshot writes a PNG: name it *.png, not {screenshot.name!r}")
        events = _events(run_dir)
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            sync, stages = _sync_and_stages(log, pipeline, rerun=run_dir is None)
            when = at if at is not None else start
            from bagscope.replay.timeparse import parse_time_point

            t_ns = parse_time_point(when, log_start_ns=log.info().start_ns) if when else None
            shot = _show(
                log,
                sync=sync,
                stages=stages,
                spec=spec,
                events=events,
                t_ns=t_ns,
                screenshot=screenshot,
            )
    if shot is not None:
        out.print(str(shot))


def _spec(view_name: str, *, color_by: str, point_size: float, size: str) -> ViewSpec:
    from bagscope.viz.view import PRESETS, ViewSpec, parse_view

    name = parse_view(view_name)
    if name not in PRESETS:
        bad_option(
            f"replay view shows {', '.join(PRESETS)}; {name!r} is for replay render "
            "(the window has every camera panel beside the 3D view already)"
        )
    width, _, height = size.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or not (
        320 <= int(width) <= 8192 and 240 <= int(height) <= 8192
    ):
        bad_option(f"--size takes WIDTHxHEIGHT between 320x240 and 8192x8192, not {size!r}")
    if not point_size > 0:
        bad_option(f"--point-size must be positive, not {point_size}")
    return ViewSpec(
        view=name, color_by=color_by, point_size=point_size, size=(int(width), int(height))
    )


def _events(run_dir: Path | None) -> list[Event]:
    if run_dir is None:
        return []
    from bagscope.pipeline.rundir import load_run

    return load_run(run_dir).events


def _sync_and_stages(
    log: Log, pipeline: Path | None, *, rerun: bool
) -> tuple[SyncConfig, list[Stage]]:
    """The frames' sync (the file's, else every cloud and camera plus ground truth) and the
    stages to run on them (none with --run: its results are already on disk)."""
    from bagscope.errors import BagscopeError
    from bagscope.pipeline.session import auto_sync, truth_topics

    stages: list[Stage] = []
    sync = None
    if pipeline is not None:
        from bagscope.builtins import BUILTIN_STAGES
        from bagscope.pipeline.config import build_stages, load_pipeline
        from bagscope.pipeline.registry import check_plugins

        config = load_pipeline(pipeline)
        sync = config.sync
        if rerun:
            check_plugins()
            stages = list(build_stages(config, builtins=BUILTIN_STAGES))
    if sync is None:
        sync = auto_sync(log, also=truth_topics(log))
    if sync is None:
        msg = "nothing to view: the log has no point cloud with a camera or another topic to sync"
        raise BagscopeError(msg)
    if stages:
        from bagscope.viz.playback import setup_stages

        setup_stages(log, stages, sync=sync)
    return sync, stages


def _show(
    log: Log,
    *,
    sync: SyncConfig,
    stages: list[Stage],
    spec: ViewSpec,
    events: list[Event],
    t_ns: int | None,
    screenshot: Path | None,
) -> Path | None:
    from open3d.visualization import gui

    from bagscope.errors import BagscopeError
    from bagscope.pipeline.session import truth_topics
    from bagscope.viz.playback import FrameSource
    from bagscope.viz.viewer import Viewer

    truths = truth_topics(log)
    source = FrameSource(log, sync, stages=stages)
    gui.Application.instance.initialize()
    viewer = Viewer(
        source,
        spec,
        events=events,
        boxes=[s.name for s in stages],
        truth=truths[0] if truths else None,
        title=f"replay view - {log.info().paths[0].name}",
    )
    try:
        start = t_ns if t_ns is not None else log.info().start_ns
        if not viewer.seek(start):
            raise BagscopeError(f"no frame at or after {(start - log.info().start_ns) / 1e9:g}s")
        if screenshot is not None:
            return viewer.screenshot(screenshot)
        viewer.run()
        return None
    finally:
        viewer.close()
