"""How the analyzers turn what they measured into findings: runs of bad frames or sweeps, the
``skip`` row of a check that had nothing to judge, a check decided by its events, a result made
topic by topic, and the ``corrupt`` event and ``decodable`` check of a topic whose payloads do
not decode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from bagscope.pipeline.stage import Check, Event, StageResult, status_of

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable, Mapping

    from numpy.typing import NDArray

__all__ = [
    "Decoded",
    "corrupt_findings",
    "note_corrupt",
    "per_topic_result",
    "report_check",
    "runs",
    "skip_check",
]

_State = TypeVar("_State")

_MAX_TIMES = 50  # times listed in a corrupt event's evidence


class Decoded(Protocol):
    """A topic's tally of decoding: every message seen, the log times of those that failed and
    the first failure's reason."""

    messages: int
    corrupt_times: array[int]
    first_error: str


def runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """``(first, last)`` index of every run of True in ``mask`` (inclusive)."""
    if not mask.any():
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def skip_check(name: str, topic: str | None, value: str, *, threshold: str = "") -> Check:
    """The row of a check that was not judged: ``value`` says what was seen (or why not)."""
    return Check(name=name, topic=topic, status="skip", value=value, threshold=threshold)


def report_check(
    result: StageResult,
    events: list[Event],
    *,
    name: str,
    topic: str | None,
    value: str,
    threshold: str,
) -> None:
    """Add ``events`` to ``result`` and the check they decide (pass, warn or fail)."""
    result.events.extend(events)
    result.checks.append(
        Check(name=name, topic=topic, status=status_of(events), value=value, threshold=threshold)
    )


def per_topic_result(
    topics: Mapping[str, _State],
    finish_topic: Callable[[StageResult, str, _State], None],
    *,
    name: str,
    none: str,
) -> StageResult:
    """The result of ``finish_topic`` run on every topic's state in turn; with no topic at all,
    the one ``skip`` row ``name`` saying so (``none``)."""
    result = StageResult()
    if not topics:
        result.checks.append(skip_check(name, None, none))
        return result
    for topic, state in topics.items():
        finish_topic(result, topic, state)
    return result


def note_corrupt(tally: Decoded, t_ns: int, error: Exception) -> None:
    """Count a message (logged at ``t_ns``) that failed to decode; the first reason is kept."""
    tally.corrupt_times.append(t_ns)
    if not tally.first_error:
        tally.first_error = str(error)


def corrupt_findings(result: StageResult, topic: str, tally: Decoded, *, noun: str) -> None:
    """The ``corrupt`` event (error) of a topic some of whose payloads failed to decode (one per
    topic: the count and times; ``noun`` names its messages, "images" or "clouds") and its
    ``decodable`` check."""
    corrupt = np.frombuffer(tally.corrupt_times, dtype=np.int64)
    messages, first_error = tally.messages, tally.first_error
    events: list[Event] = []
    if corrupt.size:
        share = corrupt.size / messages
        events.append(
            Event(
                t_ns=int(corrupt[0]),
                end_ns=int(corrupt[-1]),
                topic=topic,
                kind="corrupt",
                severity="error",
                message=(
                    f"{topic}: {corrupt.size} of {messages} {noun} ({share:.1%}) cannot be "
                    f"decoded: {first_error}"
                ),
                evidence={
                    "corrupt": int(corrupt.size),
                    "messages": messages,
                    "share": share,
                    "first_error": first_error,
                    "times_ns": corrupt[:_MAX_TIMES].tolist(),
                },
            )
        )
    report_check(
        result,
        events,
        name="decodable",
        topic=topic,
        value=f"{corrupt.size} of {messages} corrupt",
        threshold="0 corrupt",
    )
