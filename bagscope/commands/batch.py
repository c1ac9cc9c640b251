"""``replay batch``: one pipeline over many logs on every core (or a Ray cluster), resumable,
with one summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bagscope.cli import INTERRUPTED_EXIT, MsgPathOpt, StrictOpt, TypestoreOpt, err, user_errors
from bagscope.commands._running import FiguresOpt

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


def batch(
    logs: Annotated[
        list[Path],
        typer.Argument(
            help="Logs: files, directories (searched for .bag/.mcap/.db3 and rosbag2 "
            "directories) or globs ('data/**/*.mcap').",
            metavar="LOGS...",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Results folder: runs/, metrics.parquet, events.parquet, summary.html.",
            metavar="DIR",
            show_default=False,
        ),
    ],
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            help="Pipeline file (TOML); default: the analysis of `replay analyze`.",
            metavar="FILE",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="Logs run at once.", metavar="N", show_default="the cores"),
    ] = None,
    shard_length: Annotated[
        str | None,
        typer.Option(
            "--shard-length",
            help="Split each log longer than this into time shards run in parallel and merged "
            "into the run one read gives (e.g. 60s).",
            metavar="DURATION",
            show_default="no shards",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (a process pool on this machine) | ray (needs bagscope[ray]).",
            metavar="local|ray",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="An existing Ray cluster to run on (host:port or ray://host:port); "
            "--workers is then how many tasks it is given at once.",
            metavar="ADDR",
            show_default="a local Ray instance",
        ),
    ] = None,
    figures: FiguresOpt = True,
    typestore: TypestoreOpt = None,
    msg_path: MsgPathOpt = None,
    strict: StrictOpt = False,
) -> None:
    """Run a pipeline over many logs, one run directory each, in parallel.

    Logs already run with the same pipeline are skipped, so an interrupted batch is finished
    by running it again (a sharded log keeps its finished shards). With --shard-length a long
    log is cut into time shards that run at once: stages that can be split run in the shards,
    the others over the whole log, and the merge equals an unsharded run. A log that cannot
    be read is recorded in failures.jsonl and the others go on. With --engine ray the same
    tasks run on Ray: a local instance started for the batch, or the cluster at --address
    (whose nodes see the logs and --out at the same paths). Exit 0 when every log ran,
    1 when any failed, 130 when interrupted.
    """
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from bagscope.batch import run_batch
    from bagscope.cli import out

    state: dict[str, Any] = {}

    def on_start(to_run: int, skipped: int) -> None:
        if skipped:
            err.print(f"skipped {skipped} logs already run (same log, same pipeline)")
        bar: Progress = state["bar"]
        state["task"] = bar.add_task("batch", total=to_run, frames=0, shards="")

    def on_log(outcome: dict[str, Any]) -> None:
        bar: Progress = state["bar"]
        task: TaskID = state["task"]
        if "error" in outcome:
            bar.console.print(
                f"[red]failed:[/] {escape(outcome['log'])}: {escape(outcome['error'])}"
            )
        state["done_frames"] = state.get("done_frames", 0) + int(outcome.get("frames", 0))
        bar.update(task, advance=1, frames=frames_so_far())

    def frames_so_far() -> int:
        """Live counts (the local engine's workers report as they go) or, where an engine
        reports only finished logs (Ray), those: whichever has got further."""
        return max(int(state.get("done_frames", 0)), int(state.get("live", 0)))

    def on_frames(total: int) -> None:
        state["live"] = total
        if "task" in state:
            state["bar"].update(state["task"], frames=frames_so_far())

    def on_shard(log: str, done: int, count: int) -> None:
        bar: Progress = state["bar"]
        state["shards"] = state.get("shards", 0) + 1
        bar.update(state["task"], shards=f" · {state['shards']} shards done")

    columns = (
        TextColumn("[bold]batch[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("logs · {task.fields[frames]} frames{task.fields[shards]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with user_errors():
        try:
            with Progress(
                *columns, console=err, transient=True, disable=not err.is_terminal
            ) as bar:
                state["bar"] = bar
                result = run_batch(
                    logs,
                    out=out_dir,
                    pipeline=pipeline,
                    workers=workers,
                    figures=figures,
                    typestore=typestore,
                    msg_paths=msg_path or (),
                    strict=strict,
                    on_start=on_start,
                    on_log=on_log,
                    shard_length=shard_length,
                    on_shard=on_shard,
                    engine=engine,
                    address=address,
                    on_frames=on_frames,
                )
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] workers stopped; finished logs are kept, "
                "run the same command again to resume"
            )
            raise typer.Exit(INTERRUPTED_EXIT) from None
    ok = len(result.run_dirs)
    out.print(
        f"{ok} of {len(result.logs)} logs ok ({len(result.ran)} run, {len(result.skipped)} "
        f"skipped), {len(result.failures)} failed · summary: "
        f"{escape(str(result.out / 'summary.html'))}"
    )
    if result.failures:
        out.print(f"failures: {escape(str(result.out / 'failures.jsonl'))}")
    raise typer.Exit(0 if result.ok else 1)
