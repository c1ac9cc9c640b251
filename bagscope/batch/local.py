"""The local batch engine: one process per core, each running whole logs.

Workers are spawned (not forked) so that no reader state, thread or open file of the parent
is shared, and each returns a small JSON-ready summary; the run directory itself is written
by the worker with ``write_run`` (atomic), so the parent never holds a log's metrics.

Ctrl-C belongs to the parent: workers ignore SIGINT, and the parent stops them with SIGTERM,
which a worker turns into KeyboardInterrupt so that a run directory being written is removed
rather than left half-written.
"""

from __future__ import annotations

import itertools
import multiprocessing
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bagscope.batch.engine import Outcome, one_line

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType

__all__ = ["Job", "LocalEngine", "run_job"]


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
        return {"log": job.log, "error": one_line(exc)}
    return {"log": job.log, "run_dir": str(written)}


class LocalEngine:
    """A pool of ``workers`` spawned processes on this machine (the default engine)."""

    def __init__(self, workers: int) -> None:
        self._workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[Future[Any], int] = {}
        self._tickets = itertools.count()

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        if self._pool is None:  # started on first use: a batch with nothing to run spawns none
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=context, initializer=_init_worker
            )
        ticket = next(self._tickets)
        self._pending[self._pool.submit(fn, arg)] = ticket
        return ticket

    def next_done(self) -> list[Outcome]:
        if not self._pending:
            return []
        done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
        outcomes = []
        for future in done:
            ticket = self._pending.pop(future)
            try:
                outcomes.append(Outcome(ticket, value=future.result()))
            except Exception as exc:  # a worker that died (killed, out of memory)
                outcomes.append(Outcome(ticket, error=exc))
        return outcomes

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if exc_type is None:
            pool.shutdown(wait=True)
            return
        for future in self._pending:
            future.cancel()
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker removes what it was writing
        pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
