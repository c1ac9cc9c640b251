"""The local batch engine: one process per core, each running whole logs.

Workers are spawned (not forked) so that no reader state, thread or open file of the parent
is shared, and each returns a small JSON-ready summary; the run directory itself is written
by the worker with ``write_run`` (atomic), so the parent never holds a log's metrics.

Ctrl-C belongs to the parent: workers ignore SIGINT, and the parent stops them with SIGTERM,
which a worker turns into KeyboardInterrupt so that a run directory being written is removed
rather than left half-written.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import FrameType

__all__ = ["Job", "run_job", "run_local"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One log to run: everything a worker needs, picklable."""

    log: str
    run_dir: str
    pipeline_path: str | None
    figures: bool = True
    typestore: str | None = None
    msg_paths: tuple[str, ...] = ()
    strict: bool = False


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)


def _one_line(exc: BaseException) -> str:
    from bagscope.errors import BagscopeError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BagscopeError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def run_job(job: Job) -> dict[str, Any]:
    """Run one log and write its run directory; never raises for a bad log.

    Returns ``{"log", "run_dir", "verdict", "counts"}`` or ``{"log", "error"}``. An
    interrupted run is not written (it could not be resumed from anyway).
    """
    from bagscope.api import execute, resolve_pipeline
    from bagscope.pipeline.rundir import write_run
    from bagscope.replay.log import open_log
    from bagscope.viz.report import write_report

    try:
        spec = resolve_pipeline(job.pipeline_path)
        with open_log(
            [Path(job.log)], typestore=job.typestore, msg_paths=job.msg_paths, strict=job.strict
        ) as log:
            result = execute(log, spec)
        if result.interrupted:
            raise KeyboardInterrupt
        written = write_run(
            result,
            Path(job.run_dir),
            pipeline=spec.config.to_json(),
            overwrite=True,  # only an unusable run dir is ever replaced (the caller checks)
            figures=job.figures,
            finish=write_report,
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return {"log": job.log, "error": _one_line(exc)}
    return {"log": job.log, "run_dir": str(written)}


def run_local(
    jobs: Sequence[Job],
    *,
    workers: int,
    on_done: Callable[[dict[str, Any]], None],
    runner: Callable[[Job], dict[str, Any]] = run_job,
) -> None:
    """Run ``jobs`` on ``workers`` spawned processes; ``on_done`` gets each outcome as it ends.

    On KeyboardInterrupt the queued jobs are cancelled, the running ones are stopped, and the
    interrupt is raised again once every worker is gone.
    """
    if not jobs:
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(jobs))), mp_context=context, initializer=_init_worker
    )
    pending: dict[Future[dict[str, Any]], Job] = {}
    try:
        pending = {pool.submit(runner, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # a worker that died (killed, out of memory)
                    outcome = {"log": job.log, "error": _one_line(exc)}
                on_done(outcome)
    except BaseException:
        for future in pending:
            future.cancel()
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
