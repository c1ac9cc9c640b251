"""``replay run``: run any pipeline file over a log and write its run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bagscope.cli import (
    EndOpt,
    LogPaths,
    MsgPathOpt,
    StartOpt,
    StrictOpt,
    TypestoreOpt,
    open_logs,
    user_errors,
)
from bagscope.commands._running import FailFastOpt, FiguresOpt, JsonReportOpt, OverwriteOpt

PipelineOpt = Annotated[
    Path,
    typer.Option(
        "--pipeline",
        help="Pipeline file (TOML): topics, sync, stages, thresholds, contract.",
        metavar="FILE",
        show_default=False,
    ),
]


def run(
    logs: LogPaths,
    pipeline: PipelineOpt,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Run directory to write.", metavar="DIR", show_default=False),
    ],
    overwrite: OverwriteOpt = False,
    fail_fast: FailFastOpt = False,
    figures: FiguresOpt = True,
    as_json: JsonReportOpt = False,
    start: StartOpt = None,
    end: EndOpt = None,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
    write_bag: Annotated[
        Path | None,
        typer.Option(
            "--write-bag",
            help="Also write the log's messages plus the stages' boxes and points as a bag "
            "(*.mcap; a bare name or *.db3: a rosbag2 directory); --overwrite replaces it.",
            metavar="OUT",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run a pipeline's stages over a log and write the run directory (run.json,
    metrics.parquet, events.jsonl, figures/, report.html, report.json).

    Exit 0 when the run completed (whatever it found), 130 when interrupted (the partial run
    is kept, marked incomplete).
    """
    from bagscope.builtins import BUILTIN_STAGES
    from bagscope.commands._running import execute, exit_code, print_outcome
    from bagscope.errors import BagscopeError
    from bagscope.pipeline.config import build_stages, load_pipeline
    from bagscope.pipeline.registry import check_plugins

    with user_errors():
        config = load_pipeline(pipeline)
        check_plugins()
        stages = build_stages(config, builtins=BUILTIN_STAGES)
        if not stages:
            raise BagscopeError(f"{pipeline}: no [[stages]] to run")
        bag = None
        if write_bag is not None:
            from bagscope.pipeline.results_bag import ResultsBag

            bag = ResultsBag(out=write_bag, overwrite=overwrite)
            stages = [*stages, bag]  # last: it sees every other stage's output
        with open_logs(logs, typestore, msg_path, strict=strict) as log:
            try:
                result, written = execute(
                    log,
                    config,
                    stages,
                    out_dir=out_dir,
                    start=start,
                    end=end,
                    overwrite=overwrite,
                    fail_fast=fail_fast,
                    figures=figures,
                )
            except BaseException:
                if bag is not None:
                    bag.abort()  # a failed run leaves no half-written bag (a placed one stays)
                raise
        report = print_outcome(written, as_json=as_json)
    raise typer.Exit(exit_code(report, fail_on=None, complete=result.complete))
