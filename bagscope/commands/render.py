"""``replay render``: a log (and its pipeline's outputs) as an MP4, a folder of PNGs or one PNG."""

from __future__ import annotations

import contextlib
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
    err,
    open_logs,
    user_errors,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from bagscope.pipeline.stage import Event
    from bagscope.replay.log import Log
    from bagscope.viz.view import ViewSpec

__all__ = ["check_camera", "check_run", "render", "render_log"]


def check_camera(log: Log, spec: ViewSpec) -> None:
    """A ``camera:/topic`` view must name an image topic of the log (the error lists them)."""
    from bagscope.replay.decode import types_in_slot
    from bagscope.viz.scene import match_topic
    from bagscope.viz.view import ViewError

    topic = spec.camera_topic
    if topic is None:
        return
    images = types_in_slot("image")
    have = [t.name for t in log.info().topics if t.msgtype in images]
    if match_topic(topic, have) is None:
        msg = f"--view camera:{topic}: not an image topic of the log (image topics: "
        msg += (", ".join(have) or "none") + ")"
        raise ViewError(msg)


def check_run(run_dir: Path, log_paths: Sequence[Path]) -> list[Event]:
    """The run's events, after checking it was made from this log (by the logs' digest)."""
    from bagscope.pipeline.rundir import load_run, log_digest
    from bagscope.viz.view import ViewError

    run = load_run(run_dir)
    recorded = run.run.get("log_digest")
    if recorded is not None and recorded != log_digest(list(log_paths)):
        names = ", ".join(str(entry.get("path")) for entry in run.run.get("logs", []))
        msg = f"run directory {run_dir} is of another log ({names or 'unknown'})"
        raise ViewError(msg)
    return run.events


def render_log(
    log: Log,
    *,
    out: Path,
    spec: ViewSpec,
    fps: float,
    start_ns: int,
    end_ns: int,
    pipeline: Path | None = None,
    events: Sequence[Event] = (),
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Render ``log`` from ``start_ns`` to ``end_ns`` (exclusive) at ``fps`` into ``out``;
    returns the number of frames written."""
    from bagscope.builtins import BUILTIN_STAGES
    from bagscope.pipeline.config import PipelineConfig, build_stages, load_pipeline
    from bagscope.viz.frames_source import OutputTimes, box_stages, choose_sync, play
    from bagscope.viz.render import SceneRenderer, compose, open_writer, renderer_size
    from bagscope.viz.scene import build_scene
    from bagscope.viz.view import PRESETS

    config = load_pipeline(pipeline) if pipeline is not None else PipelineConfig()
    stages = build_stages(config, builtins=BUILTIN_STAGES) if pipeline is not None else []
    check_camera(log, spec)
    _, truth = choose_sync(log, config)
    times = OutputTimes(start_ns=start_ns, end_ns=end_ns, fps=fps)
    info = log.info()
    log_start = info.start_ns
    # the timeline is the whole log, so one shot still shows where in the drive it is
    span = (info.start_ns, info.end_ns)
    needs_panels = spec.view not in PRESETS
    state: dict[str, SceneRenderer] = {}
    writer = open_writer(out, size=spec.size, fps=fps, overwrite=overwrite)

    def emit(frame: object, k: int) -> None:
        from bagscope.replay.frame import Frame

        assert isinstance(frame, Frame)
        scene = build_scene(
            frame,
            spec,
            boxes=box_stages(frame),
            truth=truth,
            panels=needs_panels,
            log_start_ns=log_start,
        )
        renderer = None
        if spec.camera_topic is None:
            size = renderer_size(spec, [p.image.shape[:2] for p in scene.panels])
            renderer = state.get("r")
            if renderer is None or renderer.size != size:
                renderer = state["r"] = SceneRenderer(size=size, point_size=spec.point_size)
        image = compose(scene, spec, renderer=renderer, span=span, events=events)
        writer.write(image, t_ns=times.at(k))
        if progress is not None:
            progress(k + 1, len(times))

    try:
        play(log, config, stages, times=times, emit=emit)
        if writer.count == 0:
            from bagscope.viz.view import ViewError

            msg = "no synced frame in the chosen window: nothing rendered"
            raise ViewError(msg)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.count


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A rich bar (frames, ETA) on stderr when it is a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "rendering", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as bar:
        task = bar.add_task("render", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def render(
    logs: LogPaths,
    out: Annotated[
        Path,
        typer.Option(
            "-o",
            "--out",
            help="OUT.mp4, a directory of <t_ns>.png, or shot.png (with --at).",
            metavar="OUT",
            show_default=False,
        ),
    ],
    view: Annotated[
        str,
        typer.Option(help="bev, chase, sensor, camera:/TOPIC or grid.", metavar="VIEW"),
    ] = "chase",
    pipeline: Annotated[
        Path | None,
        typer.Option(
            help="Pipeline file: its stages run and their boxes are drawn.", metavar="FILE"
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            "--run", help="Run directory of this log: its events on the timeline.", metavar="DIR"
        ),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    at: Annotated[
        str | None,
        typer.Option(help="Render one frame at this time (offset or epoch s).", metavar="TIME"),
    ] = None,
    fps: Annotated[float, typer.Option(help="Output frames per second of log time.")] = 10.0,
    size: Annotated[str, typer.Option(help="Output WIDTHxHEIGHT.", metavar="WxH")] = "1280x720",
    color_by: Annotated[
        str, typer.Option(help="height, intensity, range, ring or a point field.", metavar="FIELD")
    ] = "height",
    point_size: Annotated[float, typer.Option(help="Point size in pixels.")] = 2.0,
    fixed_frame: Annotated[
        str, typer.Option(help="The frame everything is drawn in.", metavar="FRAME")
    ] = "odom",
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Render a log as video or images: the 3D scene (clouds, ground truth and the pipeline's
    boxes, the ego's trail), the camera images with lidar and boxes drawn in, or all of it in
    a grid with the run's events on a timeline."""
    from bagscope.cli import bad_option
    from bagscope.replay.timeparse import parse_time_point, resolve_window
    from bagscope.viz.render import parse_size
    from bagscope.viz.view import ViewSpec, parse_view

    with user_errors():
        spec = ViewSpec(
            view=parse_view(view),
            color_by=color_by,
            point_size=point_size,
            fixed_frame=fixed_frame,
            size=parse_size(size),
        )
        if not fps > 0 or fps > 240:
            bad_option(f"--fps {fps:g}: must be above 0 and at most 240")
        if at is not None and (start is not None or end is not None):
            bad_option("--at renders one frame: it does not go with --start/--end")
        events = check_run(run_dir, logs) if run_dir is not None else []
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            info = log.info()
            if at is not None:
                t = parse_time_point(at, log_start_ns=info.start_ns)
                start_ns, end_ns = t, t + max(1, round(1e9 / fps))
            else:
                s, e = resolve_window(
                    start, end, log_start_ns=info.start_ns, log_end_ns=info.end_ns
                )
                start_ns = info.start_ns if s is None else s
                end_ns = info.end_ns if e is None else e
            total = max(0, -(-(end_ns - start_ns) // max(1, round(1e9 / fps))))
            with _progress(total) as progress:
                count = render_log(
                    log,
                    out=out,
                    spec=spec,
                    fps=fps,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    pipeline=pipeline,
                    events=events,
                    overwrite=overwrite,
                    progress=progress,
                )
        err.print(f"wrote {out} ({count} frame{'s' if count != 1 else ''})")
