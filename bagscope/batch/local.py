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
import queue
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from bagscope.batch.engine import Outcome
from bagscope.batch.tasks import Job, run_job

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType

__all__ = ["Job", "LocalEngine", "run_job"]

_PROGRESS_POLL_S = 0.25  # how often the parent looks at the workers' progress


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _init_worker(progress: Any = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    if progress is not None:
        from bagscope.batch.tasks import set_progress_queue

        set_progress_queue(progress)


class LocalEngine:
    """A pool of ``workers`` spawned processes on this machine (the default engine)."""

    def __init__(
        self, workers: int, *, on_progress: Callable[[str, int], None] | None = None
    ) -> None:
        """``on_progress(task key, frames so far)`` is called, in this process, as workers
        report (about every 50 ms of each run)."""
        self._workers = max(1, workers)
        self._on_progress = on_progress
        self._queue: Any = None
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[Future[Any], int] = {}
        self._tickets = itertools.count()

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        if self._pool is None:  # started on first use: a batch with nothing to run spawns none
            context = multiprocessing.get_context("spawn")
            if self._on_progress is not None:
                self._queue = context.Queue()
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self._queue,),
            )
        ticket = next(self._tickets)
        self._pending[self._pool.submit(fn, arg)] = ticket
        return ticket

    def next_done(self) -> list[Outcome]:
        if not self._pending:
            return []
        while True:
            timeout = None if self._queue is None else _PROGRESS_POLL_S
            done, _ = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
            self._drain()
            if done:
                break
        outcomes = []
        for future in done:
            ticket = self._pending.pop(future)
            try:
                outcomes.append(Outcome(ticket, value=future.result()))
            except Exception as exc:  # a worker that died (killed, out of memory)
                outcomes.append(Outcome(ticket, error=exc))
        return outcomes

    def _drain(self) -> None:
        if self._queue is None or self._on_progress is None:
            return
        while True:
            try:
                key, frames = self._queue.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            self._on_progress(key, frames)

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
            self._drain()
            self._close_queue()
            return
        for future in self._pending:
            future.cancel()
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker removes what it was writing
        pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._close_queue()

    def _close_queue(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue.join_thread()
            self._queue = None
