"""Where a batch's tasks run: the seam between the batch (what to run, in which order) and an
engine (a local process pool, or Ray).

A task is a module-level function and one picklable argument, so that any engine can ship it
to another process or machine. The batch submits tasks and takes outcomes as they end; a task
that depends on others (a sharded log's merge waits for its shards) is simply submitted once
they are done, so engines know nothing of dependencies.

An engine is a context manager: leaving it on an exception (Ctrl-C included) cancels what is
queued and stops what is running, and only then lets the exception go on, so no worker is
left writing a run directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["Engine", "Outcome", "one_line"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A task that ended: its ticket, and what it returned or the exception that ended it
    (a worker that died - killed, out of memory - is an exception here too)."""

    ticket: int
    value: Any = None
    error: BaseException | None = None


class Engine(Protocol):
    """What the batch needs of an engine."""

    @property
    def workers(self) -> int:
        """How many tasks run at once."""
        ...

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> int:
        """Queue ``fn(arg)``; the ticket names it in its :class:`Outcome`."""
        ...

    def next_done(self) -> list[Outcome]:
        """Block until at least one submitted task has ended; those that have (each once).
        An empty list when nothing is pending."""
        ...

    def __enter__(self) -> Engine: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def one_line(exc: BaseException) -> str:
    """An exception as the one line ``failures.jsonl`` keeps: a bagscope error is its message
    (the user's problem, already worded), anything else is prefixed with its type."""
    from bagscope.errors import BagscopeError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, BagscopeError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
