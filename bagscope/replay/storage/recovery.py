"""What happens when a log was cut off (a robot lost power mid-recording).

Reading what survived is almost always what the user wants, so it is the default and only
*warns*; ``strict`` turns the same finding into an error for pipelines that must not silently
analyse a partial log.
"""

from __future__ import annotations

import warnings

from bagscope.replay.errors import TruncatedLogError


class RecoveredLogWarning(UserWarning):
    """A cut-off log was read up to its last intact message."""


def span_text(count: int, start_ns: int, end_ns: int) -> str:
    """Describe how much survived, in the words the warning uses."""
    if count == 0:
        return "recovered 0 messages"
    return (
        f"recovered {count} messages spanning {(end_ns - start_ns) / 1e9:.3f} s "
        f"({start_ns / 1e9:.3f}..{end_ns / 1e9:.3f})"
    )


def report_recovery(note: str, *, strict: bool) -> None:
    """Warn about a recovered log, or refuse it when ``strict``."""
    if strict:
        msg = f"{note} (strict mode refuses partial logs)"
        raise TruncatedLogError(msg)
    warnings.warn(note, RecoveredLogWarning, stacklevel=3)
