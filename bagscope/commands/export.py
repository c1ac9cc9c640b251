"""``replay export``: a log's synced frames as a KITTI or Parquet data set for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bagscope.cli import (
    INTERRUPTED_EXIT,
    EndOpt,
    LogPaths,
    MsgPathOpt,
    StartOpt,
    StrictOpt,
    TypestoreOpt,
    err,
    open_logs,
    out,
    user_errors,
)


def export(
    logs: LogPaths,
    out_dir: Annotated[
        Path,
        typer.Option(
            "-o", "--out", help="Data set folder to write.", metavar="DATASET", show_default=False
        ),
    ],
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            help="Pipeline file (TOML): its [sync] makes the frames (default: every cloud with "
            "every image and the ground truth) and its stages run first (for --labels STAGE).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="kitti (object layout) or parquet.", metavar="FORMAT"),
    ] = "kitti",
    clouds: Annotated[
        str,
        typer.Option(
            "--clouds",
            help="KITTI velodyne/ files: bin (KITTI's float32 x,y,z,intensity), pcd (PCD v0.7, "
            "the same points, for PCL / Open3D tools) or both.",
            metavar="KIND",
        ),
    ] = "bin",
    every: Annotated[
        int, typer.Option("--every", help="Write every N-th synced frame.", metavar="N")
    ] = 1,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Boxes to label with: a synced Detection3DArray topic or a stage giving Boxes "
            "(default: the ground-truth topic, when synced).",
            metavar="TOPIC|STAGE",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace DATASET if it exists.")] = False,
    start: StartOpt = None,
    end: EndOpt = None,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Write the synced frames as a training data set: KITTI (velodyne/ .bin and/or .pcd,
    image_2/, calib/, label_2/, index.csv) or Parquet (frames.parquet, objects.parquet).

    The data set is written into a temporary folder and renamed into place when complete;
    Ctrl-C leaves nothing behind (exit 130).
    """
    from rich.markup import escape

    from bagscope.builtins import BUILTIN_STAGES
    from bagscope.export import export_log
    from bagscope.pipeline.config import PipelineConfig, build_stages, load_pipeline
    from bagscope.pipeline.registry import check_plugins
    from bagscope.pipeline.session import window_for

    with user_errors():
        config = load_pipeline(pipeline) if pipeline is not None else PipelineConfig()
        check_plugins()
        stages = build_stages(config, builtins=BUILTIN_STAGES)
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            start_ns, end_ns = window_for(log, config, start=start, end=end)
            try:
                summary = export_log(
                    log,
                    config,
                    stages,
                    out=out_dir,
                    fmt=fmt.lower(),
                    clouds=clouds.lower(),
                    every=every,
                    labels=labels,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    overwrite=overwrite,
                )
            except KeyboardInterrupt:
                err.print("[yellow]interrupted:[/] nothing written")
                raise typer.Exit(INTERRUPTED_EXIT) from None
    for note in summary.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    source = f" from {escape(summary.labels)}" if summary.labels else ", no labels"
    out.print(
        f"wrote {summary.samples} samples ({summary.frames} synced frames, every "
        f"{every}) and {summary.objects} objects{source} as {summary.fmt}: "
        f"{escape(str(summary.out))}"
    )
