"""What ``replay run`` and ``replay analyze`` share: the progress bar, writing the run
directory with its report, and the pass/warn/fail table printed at the end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bagscope.cli import INTERRUPTED_EXIT, err, out

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bagscope.pipeline.config import PipelineConfig
    from bagscope.pipeline.runner import RunResult
    from bagscope.pipeline.stage import Stage
    from bagscope.replay.log import Log

__all__ = [
    "FailFastOpt",
    "FiguresOpt",
    "JsonReportOpt",
    "OverwriteOpt",
    "default_out",
    "execute",
    "exit_code",
    "print_outcome",
]

OverwriteOpt = Annotated[bool, typer.Option(help="Replace --out if it is a run directory already.")]
FailFastOpt = Annotated[
    bool, typer.Option(help="Stop at the first stage error instead of recording it.")
]
FiguresOpt = Annotated[bool, typer.Option(help="Draw the figures (--no-figures is faster).")]
JsonReportOpt = Annotated[
    bool, typer.Option("--json", help="Print report.json instead of the table.")
]

_STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
_VERDICT_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red"}


def default_out(logs: Sequence[Path], *, root: Path = Path("runs")) -> Path:
    """``runs/<log name>``, or ``runs/<log name>-2`` (-3, ...) when taken: never overwrite."""
    first = logs[0]
    stem = first.name
    for suffix in (".mcap", ".db3", ".bag"):
        stem = stem.removesuffix(suffix)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem) or "run"
    candidate = root / stem
    n = 2
    while candidate.exists():
        candidate = root / f"{stem}-{n}"
        n += 1
    return candidate


def execute(
    log: Log,
    config: PipelineConfig,
    stages: Sequence[Stage],
    *,
    out_dir: Path,
    start: str | None = None,
    end: str | None = None,
    sync_all_sensors: bool = False,
    also_sync: Sequence[str] = (),
    overwrite: bool = False,
    fail_fast: bool = False,
    figures: bool = True,
) -> tuple[RunResult, Path]:
    """Run with a progress bar, then write the run directory and its report (atomically).

    ``start``/``end`` (as typed) win over the pipeline file's window; without a ``[sync]``
    section, ``sync_all_sensors`` syncs every cloud with every image (``analyze``).
    Ctrl-C stops the read; the stages still finish and the partial run is written, marked
    incomplete; then the command exits 130.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from bagscope.pipeline.rundir import RunDirError, write_run
    from bagscope.pipeline.session import auto_sync, run_pipeline, window_for
    from bagscope.viz.report import write_report

    if out_dir.exists() and not overwrite:
        raise RunDirError(f"{out_dir} already exists; give another --out or --overwrite")
    info = log.info()
    start_ns, end_ns = window_for(log, config, start=start, end=end)
    sync = config.sync or (auto_sync(log, also=also_sync) if sync_all_sensors else None)
    origin = start_ns if start_ns is not None else info.start_ns
    total = max((end_ns if end_ns is not None else info.end_ns) - origin, 1)
    columns = (
        TextColumn("[bold]analysing[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[frames]} frames · {task.fields[fps]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    import time

    began = time.perf_counter()
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("run", total=total, frames=0, fps="-")

        def progress(t_ns: int, frames: int) -> None:
            spent = time.perf_counter() - began
            fps = f"{frames / spent:.1f} frames/s" if frames and spent > 0 else "-"
            bar.update(task, completed=t_ns - origin, frames=frames, fps=fps)

        result = run_pipeline(
            log,
            config,
            stages,
            sync=sync,
            start_ns=start_ns,
            end_ns=end_ns,
            fail_fast=fail_fast,
            progress=progress,
        )
    if result.interrupted:
        err.print("[yellow]interrupted:[/] writing what was seen so far, marked incomplete")
    try:
        written = write_run(
            result,
            out_dir,
            pipeline=config.to_json(),
            overwrite=overwrite,
            figures=figures,
            finish=write_report,
        )
    except KeyboardInterrupt:
        err.print("[yellow]interrupted:[/] nothing written")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    return result, written


def print_outcome(run_dir: Path, *, as_json: bool) -> dict[str, Any]:
    """The checks table, stage errors and the verdict line; returns report.json."""
    from rich.markup import escape
    from rich.table import Table

    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    if as_json:
        out.print_json(json.dumps({"run_dir": str(run_dir), **report}))
        return report
    checks = report["checks"]
    if checks:
        table = Table(show_edge=False, header_style="bold")
        for column in ("Check", "Topic", "Status", "Value", "Threshold"):
            table.add_column(column)
        for c in checks:
            style = _STATUS_STYLE.get(c["status"], "")
            table.add_row(
                escape(f"{c['stage']}: {c['name']}"),
                escape(c["topic"] or "-"),
                f"[{style}]{c['status']}[/]",
                escape(c["value"]),
                escape(c["threshold"]),
            )
        out.print(table)
    run = json.loads((run_dir / "run.json").read_text())
    first: dict[str, dict[str, Any]] = {}
    for error in run["errors"]:
        first.setdefault(error["stage"], error)
    for stage, error in first.items():
        times = run["error_counts"].get(stage, 1)
        count = f" ×{times}" if times > 1 else ""
        out.print(
            f"[red]stage error:[/] {escape(stage)} ({error['phase']}){count}, first: "
            f"{escape(error['error'])}"
        )
    counts = report["event_counts"]
    verdict = report["verdict"]
    incomplete = "" if report["complete"] else " [yellow](incomplete run)[/]"
    out.print(
        f"verdict: [{_VERDICT_STYLE[verdict]}]{verdict.upper()}[/]{incomplete} · "
        f"{counts['error']} errors, {counts['warning']} warnings, {counts['info']} notes · "
        f"report: {escape(str(run_dir / 'report.html'))}"
    )
    return report


def exit_code(report: dict[str, Any], *, fail_on: str | None, complete: bool) -> int:
    """0 when the analysis ran; 1 when ``fail_on`` severities were found; 130 if cut short."""
    if not complete:
        return INTERRUPTED_EXIT
    counts = report["event_counts"]
    if fail_on == "error" and counts["error"]:
        return 1
    if fail_on == "warning" and (counts["error"] or counts["warning"]):
        return 1
    return 0
