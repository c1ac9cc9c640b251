"""``replay analyze``: every health analyzer that applies to the log, a verdict, a report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    user_errors,
)
from bagscope.commands._running import FailFastOpt, FiguresOpt, JsonReportOpt, OverwriteOpt

if TYPE_CHECKING:
    from bagscope.pipeline.config import PipelineConfig
    from bagscope.replay.log import Log


def analyze(
    logs: LogPaths,
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            help="Pipeline file: thresholds ([thresholds.<analyzer>]), a recording contract, "
            "the topics to sync, and extra stages (models) to run.",
            metavar="FILE",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run directory to write.",
            metavar="DIR",
            show_default="runs/<log name>, or -2, -3, ... when taken",
        ),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            help="Exit 1 when events of this severity (error | warning) were found: for CI.",
            metavar="SEVERITY",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            help="Run only these analyzers (comma-separated names, or 'health': stamps and "
            "bytes only, no pixel or point decoding; or 'quality').",
            metavar="NAMES",
        ),
    ] = None,
    detect: Annotated[
        bool,
        typer.Option(
            help="Also run the built-in lidar detector (voxel, ground, clustering, tracker) "
            "and evaluate it against the log's ground truth (vision_msgs/Detection3DArray).",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    fail_fast: FailFastOpt = False,
    figures: FiguresOpt = True,
    as_json: JsonReportOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Check a log's health: rates, gaps, drops, latency and clocks, stamps, sync, TF and
    pose, frozen sensors, point-cloud and image quality, the recording contract.

    Prints a pass/warn/fail table with each threshold and one verdict, and writes a run
    directory with report.html. Exit 0 when the analysis ran, whatever it found (1 with
    --fail-on when such events exist; 130 when interrupted).
    """
    from bagscope.analyzers import DEFAULT_ANALYSIS, HEALTH, QUALITY
    from bagscope.builtins import BUILTIN_STAGES
    from bagscope.commands._running import (
        default_out,
        execute,
        exit_code,
        print_outcome,
    )
    from bagscope.pipeline.config import PipelineConfig, build_stages, load_pipeline
    from bagscope.pipeline.registry import check_plugins

    with user_errors():
        if fail_on is not None and fail_on not in ("error", "warning"):
            bad_option(f"--fail-on must be 'error' or 'warning', not {fail_on!r}")
        names = _chosen(
            only, analyzers=DEFAULT_ANALYSIS, groups={"health": HEALTH, "quality": QUALITY}
        )
        chosen = [n for n in DEFAULT_ANALYSIS if n in names]
        config = load_pipeline(pipeline) if pipeline is not None else PipelineConfig()
        if config.stages:
            check_plugins()  # a broken plugin is named even when this file does not use it
        target = out_dir if out_dir is not None else default_out(logs)
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            truth: str | None = None
            if detect:
                config, truth = _with_detection(config, log=log)
            stages = build_stages(config, builtins=BUILTIN_STAGES, defaults=chosen)
            # stage_timing reads the others' timings: it finishes last whatever the file lists
            stages.sort(key=lambda s: s.name == "stage_timing")
            result, written = execute(
                log,
                config,
                stages,
                out_dir=target,
                start=start,
                end=end,
                sync_all_sensors=True,
                also_sync=(truth,) if truth else (),
                overwrite=overwrite,
                fail_fast=fail_fast,
                figures=figures,
            )
        report = print_outcome(written, as_json=as_json)
    raise typer.Exit(exit_code(report, fail_on=fail_on, complete=result.complete))


def _chosen(
    only: str | None, *, analyzers: Sequence[str], groups: Mapping[str, tuple[str, ...]]
) -> set[str]:
    """The analyzer names ``--only`` asks for (all of them without it)."""
    if only is None:
        return set(analyzers)
    names: set[str] = set()
    for item in (p.strip() for p in only.split(",") if p.strip()):
        if item in groups:
            names.update(groups[item])
        elif item in analyzers:
            names.add(item)
        else:
            known = ", ".join([*groups, *analyzers])
            bad_option(f"--only: unknown analyzer {item!r}; choose from {known}")
    if not names:
        bad_option("--only names no analyzer")
    return names


def _with_detection(config: PipelineConfig, *, log: Log) -> tuple[PipelineConfig, str]:
    """``config`` plus the built-in detector and its evaluation against the ground truth.

    The truth topic is the pipeline's own detection stage's ``truth`` if it lists one, else
    the log's first Detection3DArray topic; a log without one is a one-line error.
    """
    from dataclasses import replace

    from bagscope.errors import BagscopeError
    from bagscope.models import DETECTION_PIPELINE, DETECTOR, TRUTH_MIN_POINTS
    from bagscope.pipeline.config import StageConfig
    from bagscope.pipeline.session import truth_topics

    listed = {s.name for s in config.stages}
    found = truth_topics(log)
    if not found:
        msg = (
            "--detect needs ground truth (a vision_msgs/msg/Detection3DArray topic); "
            "this log has none"
        )
        raise BagscopeError(msg)
    added = [
        StageConfig(use=use, name=use, params=dict(params))
        for use, params in DETECTION_PIPELINE
        if use not in listed
    ]
    if "detection" not in listed:
        added.append(
            StageConfig(
                use="detection",
                name="detection",
                params={"detector": DETECTOR, "truth": found[0], "min_points": TRUTH_MIN_POINTS},
            )
        )
    return replace(config, stages=(*config.stages, *added)), found[0]
