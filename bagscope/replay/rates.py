"""Per-topic message times: counts, spans, rates and the largest gap, computed in bulk.

``replay info``, the analyzers and the report all speak of a topic's rate, so it is defined
here once: ``(count - 1) / (last - first)`` over the topic's *own* span, None for fewer than two
messages. Times come from the storage's indexes as arrays (no payload is read where the format
indexes its messages), and gaps are one numpy ``diff`` per topic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import NDArray

    from bagscope.replay.storage.base import Connection, Storage

__all__ = ["TopicTimes", "rate_hz", "times_summary", "topic_times"]

_NS_PER_S = 1_000_000_000


def rate_hz(count: int, first_ns: int, last_ns: int) -> float | None:
    """``(count - 1)`` intervals over ``last - first``; None when that is not a rate."""
    span = last_ns - first_ns
    if count < 2 or span <= 0:
        return None
    return (count - 1) * _NS_PER_S / span


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicTimes:
    """What a topic's log times say: how many, from when to when, and its worst gap."""

    count: int
    first_ns: int | None
    last_ns: int | None
    max_gap_ns: int | None = None
    max_gap_start_ns: int | None = None

    @property
    def rate_hz(self) -> float | None:
        if self.first_ns is None or self.last_ns is None:
            return None
        return rate_hz(self.count, self.first_ns, self.last_ns)


def times_summary(times: NDArray[np.int64], *, count: int | None = None) -> TopicTimes:
    """Summarise sorted times; ``count`` overrides the array's size (ends-only arrays)."""
    n = int(times.size) if count is None else count
    if times.size == 0:
        return TopicTimes(count=n, first_ns=None, last_ns=None)
    first, last = int(times[0]), int(times[-1])
    if count is not None or times.size < 2:
        return TopicTimes(count=n, first_ns=first, last_ns=last)
    steps = np.diff(times)
    worst = int(np.argmax(steps))
    return TopicTimes(
        count=n,
        first_ns=first,
        last_ns=last,
        max_gap_ns=int(steps[worst]),
        max_gap_start_ns=int(times[worst]),
    )


def topic_times(
    storage: Storage,
    *,
    gaps: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, TopicTimes]:
    """Per topic (as recorded): count, first/last log time, and with ``gaps`` the worst gap.

    Without ``gaps`` only each topic's first and last time are read, and the count comes from
    the index; with ``gaps`` every time is read and counted.
    """
    by_topic: dict[str, list[Connection]] = defaultdict(list)
    for conn in storage.connections:
        by_topic[conn.topic].append(conn)
    arrays = storage.times(None, ends_only=not gaps, progress=progress)
    out: dict[str, TopicTimes] = {}
    empty = np.empty(0, dtype=np.int64)
    for topic, conns in by_topic.items():
        parts = [arrays.get(c.id, empty) for c in conns]
        times = parts[0] if len(parts) == 1 else np.sort(np.concatenate(parts), kind="stable")
        count = None if gaps else sum(c.count for c in conns)
        out[topic] = times_summary(times, count=count)
    return out
