"""What happens when a log was cut off (a robot lost power mid-recording).

Reading what survived is almost always what the user wants, so it is the default and only
*warns*; ``strict`` turns the same finding into an error for pipelines that must not silently
analyse a partial log.
"""

from __future__ import annotations

import warnings

from bagscope.replay.errors import TruncatedLogError
from bagscope.replay.timeparse import format_seconds


class RecoveredLogWarning(UserWarning):
    """A cut-off log was read up to its last intact message."""


def span_text(count: int, start_ns: int, end_ns: int) -> str:
    """Describe how much survived, in the words the warning uses."""
    if count == 0:
        return "recovered 0 messages"
    return (
        f"recovered {count} messages spanning {format_seconds(end_ns - start_ns)} s "
        f"({format_seconds(start_ns)}..{format_seconds(end_ns)})"
    )


def report_recovery(note: str, *, strict: bool) -> None:
    """Warn about a recovered log, or refuse it when ``strict``."""
    if strict:
        msg = f"{note} (strict mode refuses partial logs)"
        raise TruncatedLogError(msg)
    warnings.warn(note, RecoveredLogWarning, stacklevel=3)
