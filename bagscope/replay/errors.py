"""One small error hierarchy for the reading side.

Every error a *user* can cause (a wrong path, a log we cannot read, an unknown topic or message
type, a bad duration) derives from :class:`ReplayError`, so the CLI can turn exactly those into
one red line and exit code 2 while real bugs keep their traceback
(:class:`bagscope.errors.BagscopeError` is the root above this one and the simulator's).
"""

from __future__ import annotations

from bagscope.errors import BagscopeError


class ReplayError(BagscopeError):
    """A problem with the user's input: the CLI reports it in one line."""


class LogOpenError(ReplayError):
    """The path is missing, is not a log we recognise, or is unreadable."""


class TruncatedLogError(ReplayError):
    """A log was cut off and ``strict`` forbids reading what survived."""


class UnknownTypeError(ReplayError):
    """A message type has no definition in the log nor in the chosen typestore."""


class TopicError(ReplayError):
    """A requested topic is not in the log."""


class DecodeError(ReplayError):
    """A message payload disagrees with itself (sizes, steps, encodings)."""


class TransformError(ReplayError):
    """A transform cannot be looked up: unknown frame, disconnected tree, or extrapolation."""


class SyncError(ReplayError):
    """A sync policy was configured inconsistently."""


class DurationError(ReplayError):
    """A duration or time string could not be parsed."""


class WindowError(ReplayError):
    """A ``--start``/``--end`` window that cannot hold any message of the log."""
