"""Why a replay produced no frames, or lost most of a topic, said in one line each.

Zero frames is the most confusing result a replay can give, and the causes are few and
recognisable from the stamps alone: a topic with nothing in the window, payloads that do not
decode, sensors stamped by different clocks, partners always further apart than the slop, exact
stamps that never coincide, a queue too short for how far one topic lags. Each gets a sentence
that names the numbers and, where there is one, the option that fixes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bagscope.replay.sync import ApproximateTimeSync, ExactTimeSync, NearestSync
from bagscope.replay.timeparse import format_duration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from bagscope.replay.framing import FrameStats

__all__ = ["explain", "nearest_distances"]

_DIFFERENT_CLOCKS_NS = 3600 * 1_000_000_000  # stamps an hour apart are not one clock
_MOST = 0.5  # "most of a topic" lost


def nearest_distances(ref: NDArray[np.int64], other: NDArray[np.int64]) -> NDArray[np.int64]:
    """For each ``ref`` stamp, the distance to the nearest ``other`` stamp (both any order)."""
    if ref.size == 0 or other.size == 0:
        return np.empty(0, dtype=np.int64)
    b = np.sort(other)
    idx = np.searchsorted(b, ref)
    after = b[np.minimum(idx, b.size - 1)]
    before = b[np.maximum(idx - 1, 0)]
    out: NDArray[np.int64] = np.minimum(np.abs(after - ref), np.abs(ref - before))
    return out


def _span(ns: int) -> str:
    """A long distance in the unit people think in (years, days, hours)."""
    days = ns / 86_400e9
    if days >= 365:
        return f"{days / 365.25:.0f} years"
    if days >= 1:
        return f"{days:.0f} days"
    return f"{ns / 3600e9:.1f} hours"


def explain(
    stats: FrameStats,
    policy: Any,
    *,
    stamps: Mapping[str, NDArray[np.int64]],
    stamp_sources: Mapping[str, str],
    windowed: bool = False,
) -> list[str]:
    """One line per cause when no frame came out or a topic lost most of its messages."""
    topics = list(stats.topics)
    lossy = [
        t
        for t in topics
        if stats.messages.get(t, 0)
        and stats.dropped.get(t, 0) + stats.decode_errors.get(t, 0) > _MOST * stats.messages[t]
    ]
    if stats.frames and not lossy:
        return []
    reasons: list[str] = []
    for topic in topics:
        if not stats.messages.get(topic, 0):
            where = "in this window" if windowed else "in the log"
            reasons.append(f"{topic} has no messages {where}")
        elif stats.decode_errors.get(topic, 0) > _MOST * stats.messages[topic]:
            first = stats.first_decode_error.get(topic, "")
            reasons.append(
                f"{stats.decode_errors[topic]} of {stats.messages[topic]} messages on {topic} "
                f"failed to decode (first: {first})"
            )
    if reasons:
        return reasons
    ref = topics[0]
    for other in topics[1:]:
        a, b = stamps[ref], stamps[other]
        if not (a.size and b.size):
            continue
        apart = abs(int(np.median(a)) - int(np.median(b)))
        if apart >= _DIFFERENT_CLOCKS_NS:
            hint = (
                "; try --stamp log"
                if "header" in (stamp_sources[ref], stamp_sources[other])
                else ""
            )
            reasons.append(
                f"{ref} and {other} stamps are {_span(apart)} apart: different clocks{hint}"
            )
    if reasons:
        return reasons
    reasons += _policy_reasons(stats, policy, stamps=stamps)
    if not reasons and not stats.frames:
        reasons.append("no set of messages satisfied the sync policy")
    return reasons


def _policy_reasons(
    stats: FrameStats, policy: Any, *, stamps: Mapping[str, NDArray[np.int64]]
) -> list[str]:
    topics = list(stats.topics)
    ref = topics[0]
    # Per other topic: each reference stamp's distance to that topic's nearest stamp.
    near = {o: d for o in topics[1:] if (d := nearest_distances(stamps[ref], stamps[o])).size}
    closest = {o: int(d.min()) for o, d in near.items()}
    out: list[str] = []
    if isinstance(policy, NearestSync):
        slop = format_duration(policy.slop)
        for other, distances in near.items():
            missed = int((distances > policy.slop).sum())
            if closest[other] > policy.slop:
                out.append(
                    f"nearest {other} was {format_duration(closest[other])} from any {ref} "
                    f"(slop {slop}); widen --slop"
                )
            elif missed > _MOST * distances.size:
                out.append(
                    f"{missed} of {distances.size} {ref} messages had no {other} within {slop} "
                    f"(median distance {format_duration(int(np.median(distances)))})"
                )
    elif (
        isinstance(policy, ExactTimeSync) and not stats.frames and min(closest.values(), default=0)
    ):
        out.append(
            f"exact policy: stamps never coincide (closest {format_duration(min(closest.values()))}"
            " apart) — try --policy approximate"
        )
    elif isinstance(policy, ApproximateTimeSync) and policy.max_interval is not None:
        out += [
            f"closest {ref} and {other} stamps are {format_duration(gap)} apart, wider than the "
            f"slop {format_duration(policy.max_interval)}"
            for other, gap in closest.items()
            if gap > policy.max_interval
        ]
    for topic in topics:
        lost = policy.dropped.get(topic, 0)  # the policy's own losses: overflows (see below)
        # A nearest reference is dropped for want of a partner (said above), not overflow.
        overflow = not isinstance(policy, NearestSync) or topic != ref
        if overflow and lost > _MOST * stats.messages.get(topic, 0):
            out.append(
                f"{lost} messages on {topic} overflowed the queue "
                f"(--queue-size {policy.queue_size}); a partner topic lags behind it"
            )
    return out
