"""Ctrl-C at the wrong instant: the few steps that must not be cut in half.

Creating a temporary folder and remembering its name, or removing it again, are two steps
each; a KeyboardInterrupt between them leaves a stray hidden folder beside the user's output.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["deferred_interrupt"]


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then raise it.

    Python runs signal handlers in the main thread between bytecodes, so a handler that only
    records the signal keeps KeyboardInterrupt out of the block; elsewhere than the main
    thread nothing can be installed and the block runs as is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
