"""The local batch engine: one process per core, each running tasks (a log, or one time shard
of a log, or a sharded log's merge: :mod:`bagscope.batch.tasks`).

Workers are spawned (not forked) so that no reader state, thread or open file of the parent
is shared, and each returns a small summary (or a shard's states); the run directory itself is
written by the worker with ``write_run`` (atomic), so the parent never holds a log's metrics.

Ctrl-C belongs to the parent: workers ignore SIGINT, and the parent stops them with SIGTERM,
which a worker turns into KeyboardInterrupt so that a run directory being written is removed
rather than left half-written.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import queue
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from bagscope.batch.engine import Outcome
from bagscope.batch.tasks import Job, run_job
from bagscope.errors import BagscopeError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType, TracebackType

__all__ = ["Job", "LocalEngine", "run_job"]

_PROGRESS_POLL_S = 0.25  # how often the parent looks at the workers' progress
_DIED = "its worker died twice running it (killed, or out of memory)"


class WorkerDiedError(BagscopeError):
    """A task whose worker process died under it, again when it was run a second time."""


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
        self._tasks: dict[int, tuple[Callable[[Any], Any], Any]] = {}  # until they end
        # after a worker died: the tasks it may have been running, run again one at a time
        self._suspects: collections.deque[int] = collections.deque()
        self._alone: int | None = None  # the suspect running now, alone in the pool
        self._held: list[int] = []  # tasks submitted meanwhile, started once suspects are done
        self._tickets = itertools.count()

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        ticket = next(self._tickets)
        self._tasks[ticket] = (fn, arg)
        if self._alone is None and not self._suspects:
            self._start(ticket)
        else:
            self._held.append(ticket)
        return ticket

    def _start(self, ticket: int) -> None:
        if self._pool is None:  # started on first use: a batch with nothing to run spawns none
            context = multiprocessing.get_context("spawn")
            if self._on_progress is not None and self._queue is None:
                self._queue = context.Queue()
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(self._queue,),
            )
        fn, arg = self._tasks[ticket]
        self._pending[self._pool.submit(fn, arg)] = ticket

    def next_done(self) -> list[Outcome]:
        if not self._pending and not self._suspects and not self._held:
            return []
        while True:
            timeout = None if self._queue is None else _PROGRESS_POLL_S
            done, _ = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
            self._drain()
            if done:
                break
        if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
            outcomes = self._after_a_death()
        else:
            outcomes = [self._outcome(future) for future in done]
        self._advance()
        return outcomes or self.next_done()

    def _outcome(self, future: Future[Any]) -> Outcome:
        ticket = self._pending.pop(future)
        del self._tasks[ticket]
        if ticket == self._alone:
            self._alone = None
        try:
            return Outcome(ticket, value=future.result())
        except Exception as exc:
            return Outcome(ticket, error=exc)

    def _after_a_death(self) -> list[Outcome]:
        """A worker died (killed, out of memory) and took the pool with it: every task it
        held ends with BrokenProcessPool, the innocent with the guilty. Those are run again,
        one at a time and alone, so that a second death names its task: that one fails, and
        a log that kills its worker fails alone instead of taking the batch down."""
        wait(self._pending)  # a broken pool fails everything it still holds, at once
        outcomes = []
        for future in list(self._pending):
            if not isinstance(future.exception(), BrokenProcessPool):
                outcomes.append(self._outcome(future))
                continue
            ticket = self._pending.pop(future)
            if ticket == self._alone:
                self._alone = None
                del self._tasks[ticket]
                outcomes.append(Outcome(ticket, error=WorkerDiedError(_DIED)))
            else:
                self._suspects.append(ticket)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return outcomes

    def _advance(self) -> None:
        """The next suspect alone, or once there are none, the tasks held back meanwhile."""
        if self._alone is not None:
            return
        if self._suspects:
            self._alone = self._suspects.popleft()
            self._start(self._alone)
            return
        held, self._held = self._held, []
        for ticket in held:
            self._start(ticket)

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
        self._tasks.clear()
        self._suspects.clear()
        self._held.clear()
        self._close_queue()

    def _close_queue(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue.join_thread()
            self._queue = None
