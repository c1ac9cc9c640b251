"""Time synchronisation policies: which messages of several topics belong to one frame.

Frames must be the *same* frames a ROS node would have seen, or analyses done here would not
transfer to the robot. So :class:`ApproximateTimeSync` and :class:`ExactTimeSync` are faithful
ports of ROS 2 ``message_filters``' C++ ``ApproximateTime`` and ``ExactTime`` policies
(``sync_policies/approximate_time.hpp``, ``exact_time.hpp``): fed the same stamps in the same
order, they emit the same sets. :class:`NearestSync` is our own, simpler policy for "one frame per
camera image" replays, where ROS's one-use-per-message rule would starve the slower sensor.

The policies know nothing about logs: items are opaque, time is int nanoseconds, and the caller
feeds messages in arrival (log) order. ``flush()`` is the one addition to ROS's API: a log ends,
a live topic does not, so at the end each policy emits what it still can (for ApproximateTime:
what ROS would have emitted had every topic received one more message in the far future).
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from bagscope.replay.errors import SyncError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "POLICIES",
    "ApproximateTimeSync",
    "ExactTimeSync",
    "NearestSync",
    "SyncPolicy",
    "make_policy",
]

# One default for every policy and the CLI: deep enough that a 30 Hz camera lagging a second
# behind a 10 Hz lidar (or a 200 Hz IMU within a 50 ms slop) never overflows, small enough that
# a stalled topic cannot hold much memory. ROS nodes are often configured with 10; pass that to
# reproduce one exactly.
DEFAULT_QUEUE_SIZE = 100
# `nearest` needs a bound to mean anything; the approximate policy has none unless one is given.
DEFAULT_NEAREST_SLOP_NS = 50_000_000

T = TypeVar("T")

_log = logging.getLogger(__name__)

# Later than any real stamp (int64 ns), so a flush can play "a message arrives in the far future"
# without touching the algorithm; Python ints keep the arithmetic on it exact.
_FAR_FUTURE = 1 << 128


class _Missing:
    """Marks an empty slot; items may legitimately be ``None``."""


_MISSING = _Missing()


class SyncPolicy(Protocol[T]):
    """What the pipeline needs from a policy: feed messages, collect sets, account for losses."""

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics, in the order of the items of every emitted set."""
        ...

    @property
    def used(self) -> dict[str, int]:
        """Per topic, messages that are part of at least one emitted set."""
        ...

    @property
    def not_needed(self) -> dict[str, int]:
        """Per topic, messages never used because a closer one won (a rate difference)."""
        ...

    @property
    def dropped(self) -> dict[str, int]:
        """Per topic, real losses: no set was possible for them, or a queue overflowed."""
        ...

    @property
    def emitted(self) -> int:
        """How many sets were emitted so far."""
        ...

    def add(self, topic: str, stamp_ns: int, item: T) -> list[tuple[T, ...]]:
        """Feed one message; return the sets it completed (oldest first)."""
        ...

    def watch_not_needed(self, hook: Callable[[int, int], None] | None) -> None:
        """Call ``hook(topic_index, stamp_ns)`` whenever a message is counted as not needed."""
        ...

    def flush(self) -> list[tuple[T, ...]]:
        """End of stream: return the sets that can still be completed, then reset."""
        ...


def _check_topics(topics: Sequence[str]) -> tuple[str, ...]:
    result = tuple(topics)
    if len(result) < 2:
        msg = f"a sync policy needs at least 2 topics, got {len(result)}: {list(result)}"
        raise SyncError(msg)
    seen: set[str] = set()
    for topic in result:
        if topic in seen:
            msg = f"topic {topic!r} is listed twice in the sync policy"
            raise SyncError(msg)
        seen.add(topic)
    return result


def _check_queue_size(queue_size: int) -> int:
    if queue_size < 1:
        msg = f"queue_size must be at least 1, got {queue_size}"
        raise SyncError(msg)
    return queue_size


def _index_of(index: Mapping[str, int], topic: str) -> int:
    try:
        return index[topic]
    except KeyError:
        msg = f"topic {topic!r} is not synchronised by this policy (topics: {list(index)})"
        raise SyncError(msg) from None


class _Scale:
    """``rclcpp::Duration * double``: the product truncated toward zero, in integer ns.

    rclcpp multiplies in ``long double``; we multiply by the double's exact binary fraction,
    which agrees except when the exact product lies within ~1e-19 (relative) below an integer.
    ROS 1 (``ros::Duration``, double seconds) can differ from both by a nanosecond on ties.
    """

    __slots__ = ("_den", "_num")

    def __init__(self, factor: float) -> None:
        self._num, self._den = factor.as_integer_ratio()

    def __call__(self, duration: int) -> int:
        if duration >= 0:
            return duration * self._num // self._den
        return -(-duration * self._num // self._den)


class _Bookkeeping:
    """What every policy reports: its topics, the fate of each message per topic, how many sets.

    Every message fed in ends up counted once in exactly one of ``used``, ``not_needed`` and
    ``dropped`` (once the policy has decided; ``flush()`` decides the rest).
    """

    _topics: tuple[str, ...]
    _used: list[int]
    _not_needed: list[int]
    _dropped: list[int]
    _emitted: int

    def _start_books(self) -> None:
        n = len(self._topics)
        self._used = [0] * n
        self._not_needed = [0] * n
        self._dropped = [0] * n
        self._emitted = 0
        self._watch: Callable[[int, int], None] | None = None

    def watch_not_needed(self, hook: Callable[[int, int], None] | None) -> None:
        """Call ``hook(topic_index, stamp_ns)`` for every message counted as not needed.

        A frame stream uses it to tell a message that merely lost to a closer one from one
        that fell where no frame was made at all.
        """
        self._watch = hook

    def _not_need(self, i: int, stamp: int, item: object) -> None:
        if item is _MISSING:
            return
        self._not_needed[i] += 1
        if self._watch is not None:
            self._watch(i, stamp)

    _queue_size: int

    @property
    def topics(self) -> tuple[str, ...]:
        return self._topics

    @property
    def queue_size(self) -> int:
        return self._queue_size

    @property
    def used(self) -> dict[str, int]:
        return dict(zip(self._topics, self._used, strict=True))

    @property
    def not_needed(self) -> dict[str, int]:
        return dict(zip(self._topics, self._not_needed, strict=True))

    @property
    def dropped(self) -> dict[str, int]:
        return dict(zip(self._topics, self._dropped, strict=True))

    @property
    def emitted(self) -> int:
        return self._emitted


class ApproximateTimeSync(_Bookkeeping, Generic[T]):
    """ROS ``message_filters`` ApproximateTime: the best set per pivot, each message used once.

    The algorithm (``sync_policies/approximate_time.hpp``) keeps, per topic, a deque of unused
    messages and a "past" list of messages already tried for the current candidate. A candidate
    is one message per topic; the *pivot* is the topic whose message ends the candidate's
    interval. Newer candidates replace it while their interval is shorter (ages weighted by
    ``1 + age_penalty``); it is emitted once no later message could make a better one, a proof
    that ``inter_message_lower_bound`` (minimum spacing per topic) can make earlier. Sets wider
    than ``max_interval`` are never formed. A topic holding more than ``queue_size`` messages
    loses its oldest and cannot be the next pivot until the others catch up. The port keeps the
    original's structure step by step, including its tie-breaking: the earliest head goes to the
    lowest topic index, the latest head to the highest.
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_interval: int | None = None,
        age_penalty: float = 0.1,
        inter_message_lower_bound: Mapping[str, int] | None = None,
    ) -> None:
        self._topics = _check_topics(topics)
        self._queue_size = _check_queue_size(queue_size)
        if max_interval is not None and max_interval < 0:
            msg = f"max_interval must not be negative, got {max_interval} ns"
            raise SyncError(msg)
        if not math.isfinite(age_penalty) or age_penalty < 0:
            msg = f"age_penalty must be a finite number >= 0, got {age_penalty}"
            raise SyncError(msg)
        n = len(self._topics)
        self._index = {topic: i for i, topic in enumerate(self._topics)}
        self._lower_bounds = [0] * n
        for topic, bound in (inter_message_lower_bound or {}).items():
            if topic not in self._index:
                msg = f"inter_message_lower_bound names {topic!r}, which is not a synced topic"
                raise SyncError(msg)
            if bound < 0:
                msg = f"inter_message_lower_bound for {topic!r} must be >= 0, got {bound} ns"
                raise SyncError(msg)
            self._lower_bounds[self._index[topic]] = bound
        self._max_interval = max_interval
        self._scale = _Scale(1.0 + age_penalty)
        self._n = n
        self._deques: list[deque[tuple[int, T]]] = [deque() for _ in range(n)]
        self._past: list[list[tuple[int, T]]] = [[] for _ in range(n)]
        self._num_non_empty = 0
        self._candidate: tuple[tuple[int, T], ...] | None = None
        self._candidate_start = 0
        self._candidate_end = 0
        self._pivot: int | None = None
        self._pivot_time = 0
        self._has_dropped = [False] * n
        self._warned = [False] * n
        self._start_books()
        self._out: list[tuple[tuple[int, T], ...]] = []

    @property
    def max_interval(self) -> int | None:
        """The widest set allowed (ns), None when unbounded."""
        return self._max_interval

    @property
    def bound_warnings(self) -> tuple[str, ...]:
        """Topics seen out of order or closer than their lower bound (ROS warns once each)."""
        return tuple(t for t, warned in zip(self._topics, self._warned, strict=True) if warned)

    def add(self, topic: str, stamp_ns: int, item: T) -> list[tuple[T, ...]]:
        self._add(_index_of(self._index, topic), (stamp_ns, item), check_queue=True)
        return self._take_output()

    def flush(self) -> list[tuple[T, ...]]:
        """Emit what ROS would after one far-future message per topic (queue limit waived)."""
        # A far-future message per topic lets the ROS algorithm settle everything it holds;
        # sets that would contain one of those stand-ins are not real and are discarded.
        stand_in = cast("T", _MISSING)
        for i in range(self._n):
            self._add(i, (_FAR_FUTURE, stand_in), check_queue=False)
        result: list[tuple[T, ...]] = []
        for members in self._out:
            if any(item is _MISSING for _, item in members):
                # Published with a stand-in: not a real set, so its real members were not used.
                for i, (stamp, item) in enumerate(members):
                    self._used[i] -= 1
                    self._not_need(i, stamp, item)
                self._emitted -= 1
            else:
                result.append(tuple(item for _, item in members))
        self._out.clear()
        for i in range(self._n):
            for stamp, item in (*self._past[i], *self._deques[i]):
                self._not_need(i, stamp, item)
            self._deques[i].clear()
            self._past[i].clear()
        self._num_non_empty = 0
        self._candidate = None
        self._pivot = None
        self._has_dropped = [False] * self._n
        return result

    # -- the port of approximate_time.hpp ------------------------------------------------------

    def _add(self, i: int, message: tuple[int, T], *, check_queue: bool) -> None:
        queue = self._deques[i]
        queue.append(message)
        if len(queue) == 1:
            self._num_non_empty += 1
            if self._num_non_empty == self._n:
                self._process()
        else:
            self._check_inter_message_bound(i)
        past = self._past[i]
        if check_queue and len(queue) + len(past) > self._queue_size:
            # Cancel the ongoing candidate search, drop the topic's oldest, and start over.
            self._num_non_empty = 0
            for j in range(self._n):
                self._recover(j, len(self._past[j]))
            queue.popleft()
            self._dropped[i] += 1  # a queue overflow is a real loss
            self._has_dropped[i] = True
            if self._pivot is not None:
                self._candidate = None
                self._pivot = None
                self._process()

    def _check_inter_message_bound(self, i: int) -> None:
        if self._warned[i]:
            return
        queue = self._deques[i]
        stamp = queue[-1][0]
        if len(queue) == 1:
            if not self._past[i]:
                return
            previous = self._past[i][-1][0]
        else:
            previous = queue[-2][0]
        if stamp < previous:
            _log.warning("messages on %s arrived out of order", self._topics[i])
            self._warned[i] = True
        elif stamp - previous < self._lower_bounds[i]:
            _log.warning(
                "messages on %s arrived %d ns apart, closer than the lower bound %d ns",
                self._topics[i],
                stamp - previous,
                self._lower_bounds[i],
            )
            self._warned[i] = True

    def _delete_front(self, i: int) -> None:
        queue = self._deques[i]
        stamp, item = queue.popleft()
        # Too far from the other topics' heads for any set: later messages fit them better.
        self._not_need(i, stamp, item)
        if not queue:
            self._num_non_empty -= 1

    def _move_front_to_past(self, i: int) -> None:
        queue = self._deques[i]
        self._past[i].append(queue.popleft())
        if not queue:
            self._num_non_empty -= 1

    def _make_candidate(self) -> None:
        self._candidate = tuple(queue[0] for queue in self._deques)
        # Everything tried before this better candidate is now useless: a closer one won.
        for i, past in enumerate(self._past):
            for stamp, item in past:
                self._not_need(i, stamp, item)
            past.clear()

    def _recover(self, i: int, count: int) -> None:
        past = self._past[i]
        queue = self._deques[i]
        for _ in range(count):
            queue.appendleft(past.pop())
        if queue:
            self._num_non_empty += 1

    def _publish_candidate(self) -> None:
        assert self._candidate is not None
        self._out.append(self._candidate)
        self._emitted += 1
        for i in range(self._n):
            self._used[i] += 1
        self._candidate = None
        self._pivot = None
        self._num_non_empty = 0
        for i in range(self._n):
            past = self._past[i]
            queue = self._deques[i]
            while past:
                queue.appendleft(past.pop())
            queue.popleft()  # the member just published
            if queue:
                self._num_non_empty += 1

    def _candidate_boundary(self, *, end: bool) -> tuple[int, int]:
        index = 0
        time = self._deques[0][0][0]
        for i in range(1, self._n):
            stamp = self._deques[i][0][0]
            if (stamp < time) ^ end:
                time = stamp
                index = i
        return index, time

    def _virtual_time(self, i: int) -> int:
        queue = self._deques[i]
        if queue:
            return queue[0][0]
        lower = self._past[i][-1][0] + self._lower_bounds[i]
        return max(lower, self._pivot_time)

    def _virtual_boundaries(self) -> tuple[int, int, int, int]:
        times = [self._virtual_time(i) for i in range(self._n)]
        start_index = end_index = 0
        start_time = end_time = times[0]
        for i in range(1, self._n):
            if times[i] < start_time:
                start_time, start_index = times[i], i
            if times[i] >= end_time:
                end_time, end_index = times[i], i
        return start_index, start_time, end_index, end_time

    def _process(self) -> None:
        n = self._n
        while self._num_non_empty == n:
            end_index, end_time = self._candidate_boundary(end=True)
            start_index, start_time = self._candidate_boundary(end=False)
            for i in range(n):
                if i != end_index:
                    # No dropped message could have beaten the ones we hold, so this topic
                    # may be a pivot again.
                    self._has_dropped[i] = False
            if self._pivot is None:
                if self._max_interval is not None and end_time - start_time > self._max_interval:
                    self._delete_front(start_index)
                    continue
                if self._has_dropped[end_index]:
                    self._delete_front(start_index)
                    continue
                self._make_candidate()
                self._candidate_start = start_time
                self._candidate_end = end_time
                self._pivot = end_index
                self._pivot_time = end_time
                self._move_front_to_past(start_index)
            else:
                if self._scale(end_time - self._candidate_end) < start_time - self._candidate_start:
                    self._make_candidate()
                    self._candidate_start = start_time
                    self._candidate_end = end_time
                self._move_front_to_past(start_index)
            age_check = self._scale(end_time - self._candidate_end)
            if start_index == self._pivot or age_check >= self._pivot_time - self._candidate_start:
                # Either every candidate for this pivot was tried, or any later one would have
                # to span [pivot_time, end_time], which is already too wide: this one is best.
                self._publish_candidate()
            elif self._num_non_empty < n:
                self._virtual_search()

    def _virtual_search(self) -> None:
        """Use the rate bounds to prove optimality before the next messages arrive."""
        moves = [0] * self._n
        while True:
            start_index, start_time, _, end_time = self._virtual_boundaries()
            age = self._scale(end_time - self._candidate_end)
            if age >= self._pivot_time - self._candidate_start:
                self._publish_candidate()  # also undoes the virtual moves
                return
            if age < start_time - self._candidate_start:
                # An optimistic future candidate beats ours: wait for real messages.
                self._num_non_empty = 0
                for i in range(self._n):
                    self._recover(i, moves[i])
                return
            self._move_front_to_past(start_index)
            moves[start_index] += 1

    def _take_output(self) -> list[tuple[T, ...]]:
        if not self._out:
            return []
        result = [tuple(item for _, item in members) for members in self._out]
        self._out.clear()
        return result


class ExactTimeSync(_Bookkeeping, Generic[T]):
    """ROS ``message_filters`` ExactTime: a set per stamp that every topic has, oldest pruned.

    Port of ``sync_policies/exact_time.hpp``: partial sets are kept per stamp; when one completes
    it is emitted and every older partial set is dropped (those frames can no longer complete in
    a time-ordered stream); beyond ``queue_size`` partial sets the oldest go first. A second
    message with the same stamp on the same topic replaces the first, as in ROS.
    """

    def __init__(self, topics: Sequence[str], *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._topics = _check_topics(topics)
        self._queue_size = _check_queue_size(queue_size)
        self._index = {topic: i for i, topic in enumerate(self._topics)}
        self._n = len(self._topics)
        self._sets: dict[int, list[T]] = {}
        self._stamps: list[int] = []  # the keys of _sets, sorted
        self._start_books()

    def add(self, topic: str, stamp_ns: int, item: T) -> list[tuple[T, ...]]:
        i = _index_of(self._index, topic)
        slots = self._sets.get(stamp_ns)
        if slots is None:
            slots = [cast("T", _MISSING)] * self._n
            self._sets[stamp_ns] = slots
            insort(self._stamps, stamp_ns)
        # The same stamp again on this topic: the newer message replaces the older one.
        self._not_need(i, stamp_ns, slots[i])
        slots[i] = item
        out: list[tuple[T, ...]] = []
        if all(slot is not _MISSING for slot in slots):
            out.append(tuple(slots))
            self._emitted += 1
            for k in range(self._n):
                self._used[k] += 1
            del self._sets[stamp_ns]
            self._stamps.remove(stamp_ns)
            # Older partial sets can no longer complete: their stamps had no partner.
            self._discard_oldest(bisect_right(self._stamps, stamp_ns), overflow=False)
        if len(self._stamps) > self._queue_size:
            self._discard_oldest(len(self._stamps) - self._queue_size, overflow=True)
        return out

    def flush(self) -> list[tuple[T, ...]]:
        """No partial set can complete without more messages: none of them is needed."""
        self._discard_oldest(len(self._stamps), overflow=False)
        return []

    def _discard_oldest(self, count: int, *, overflow: bool) -> None:
        for stamp in self._stamps[:count]:
            for i, slot in enumerate(self._sets.pop(stamp)):
                if overflow:
                    self._dropped[i] += slot is not _MISSING
                else:
                    self._not_need(i, stamp, slot)
        del self._stamps[:count]


@dataclass(slots=True)
class _Held(Generic[T]):
    """A buffered partner message; ``used`` tells a drop from a message already in a set."""

    stamp: int
    item: T
    used: bool = False


class NearestSync(_Bookkeeping, Generic[T]):
    """One set per reference message, with each other topic's nearest message within ``slop``.

    Unlike ROS's policies a partner may serve several references (a 10 Hz lidar pairs with each
    of three 30 Hz images), so the slower sensor never starves the reference. A reference waits
    until every other topic has a stamp beyond ``ref + slop`` (assuming stamps grow per topic),
    so the choice never changes afterwards; ``flush()`` decides the rest. A reference without a
    partner on some topic within ``slop`` is dropped. Ties go to the earlier stamp.

    ``queue_size`` bounds memory when a topic stalls: beyond it, the oldest pending reference is
    decided with what is known, and the oldest buffered partner is discarded.
    """

    def __init__(
        self,
        reference: str,
        others: Sequence[str],
        *,
        slop: int,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self._topics = _check_topics((reference, *others))
        if slop < 0:
            msg = f"slop must not be negative, got {slop} ns"
            raise SyncError(msg)
        self._queue_size = _check_queue_size(queue_size)
        self._slop = slop
        self._index = {topic: i for i, topic in enumerate(self._topics)}
        n_others = len(self._topics) - 1
        self._pending: deque[tuple[int, int, T]] = deque()  # (arrival number, stamp, item)
        # The pending stamps' running minimum (a monotonic queue), so pruning never scans them.
        self._lows: deque[tuple[int, int]] = deque()
        self._arrivals = 0
        self._buffers: list[deque[_Held[T]]] = [deque() for _ in range(n_others)]
        self._newest: list[int | None] = [None] * n_others
        self._last_reference: int | None = None
        self._start_books()

    @property
    def slop(self) -> int:
        """The largest distance (ns) from the reference to a partner."""
        return self._slop

    def add(self, topic: str, stamp_ns: int, item: T) -> list[tuple[T, ...]]:
        i = _index_of(self._index, topic)
        out: list[tuple[T, ...]] = []
        if i == 0:
            self._push_reference(stamp_ns, item)
            if len(self._pending) > self._queue_size:
                self._decide(self._pop_reference(), out)
        else:
            k = i - 1
            buffer = self._buffers[k]
            buffer.append(_Held(stamp_ns, item))
            newest = self._newest[k]
            if newest is None or stamp_ns > newest:
                self._newest[k] = stamp_ns
            if len(buffer) > self._queue_size:
                self._discard_front(k, overflow=True)
        decided = False
        while self._pending and self._is_final(self._pending[0][1]):
            self._decide(self._pop_reference(), out)
            decided = True
        if i == 0 or decided:
            self._prune()  # the pending references changed: every buffer may shrink
        else:
            self._prune_buffer(i - 1)  # only the buffer that grew
        return out

    def flush(self) -> list[tuple[T, ...]]:
        out: list[tuple[T, ...]] = []
        while self._pending:
            self._decide(self._pop_reference(), out)
        for k, buffer in enumerate(self._buffers):
            while buffer:
                self._discard_front(k, overflow=False)
        self._newest = [None] * len(self._buffers)
        self._last_reference = None
        return out

    def _push_reference(self, stamp: int, item: T) -> None:
        self._arrivals += 1
        self._pending.append((self._arrivals, stamp, item))
        lows = self._lows
        while lows and lows[-1][1] >= stamp:
            lows.pop()
        lows.append((self._arrivals, stamp))
        self._last_reference = stamp

    def _pop_reference(self) -> tuple[int, T]:
        arrival, stamp, item = self._pending.popleft()
        if self._lows and self._lows[0][0] == arrival:
            self._lows.popleft()
        return stamp, item

    def _is_final(self, stamp: int) -> bool:
        horizon = stamp + self._slop
        for newest in self._newest:  # noqa: SIM110 -- a plain loop: this runs per message
            if newest is None or newest <= horizon:
                return False
        return True

    def _decide(self, reference: tuple[int, T], out: list[tuple[T, ...]]) -> None:
        stamp, item = reference
        partners: list[_Held[T]] = []
        for buffer in self._buffers:
            best: _Held[T] | None = None
            best_distance = self._slop + 1
            for held in buffer:
                distance = abs(held.stamp - stamp)
                if distance < best_distance or (
                    best is not None and distance == best_distance and held.stamp < best.stamp
                ):
                    best, best_distance = held, distance
            if best is None:
                self._dropped[0] += 1  # no partner within slop: no frame is possible
                return
            partners.append(best)
        for k, held in enumerate(partners):
            if not held.used:
                held.used = True
                self._used[k + 1] += 1
        self._used[0] += 1
        out.append((item, *(held.item for held in partners)))
        self._emitted += 1

    def _prune(self) -> None:
        """Forget partners that no pending or later reference can pick (stamps grow per topic)."""
        for k in range(len(self._buffers)):
            self._prune_buffer(k)

    def _prune_buffer(self, k: int) -> None:
        if self._lows:
            low = self._lows[0][1]
        elif self._last_reference is not None:
            low = self._last_reference
        else:
            return
        buffer = self._buffers[k]
        oldest_useful = low - self._slop
        while buffer:
            front = buffer[0].stamp
            too_old = front < oldest_useful
            beaten = len(buffer) > 1 and front < buffer[1].stamp <= low
            if not (too_old or beaten):
                break
            self._discard_front(k, overflow=False)

    def _discard_front(self, k: int, *, overflow: bool) -> None:
        held = self._buffers[k].popleft()
        if held.used:
            return
        if overflow:  # pushed out by a full queue: a loss
            self._dropped[k + 1] += 1
        else:  # a closer partner won every reference that could have used it
            self._not_need(k + 1, held.stamp, held.item)


def _approximate(topics: Sequence[str], *, slop_ns: int | None, queue_size: int) -> SyncPolicy[T]:
    return ApproximateTimeSync(topics, queue_size=queue_size, max_interval=slop_ns)


def _exact(topics: Sequence[str], *, slop_ns: int | None, queue_size: int) -> SyncPolicy[T]:
    if slop_ns is not None:
        msg = "the exact policy matches identical stamps and takes no slop"
        raise SyncError(msg)
    return ExactTimeSync(topics, queue_size=queue_size)


def _nearest(topics: Sequence[str], *, slop_ns: int | None, queue_size: int) -> SyncPolicy[T]:
    slop = DEFAULT_NEAREST_SLOP_NS if slop_ns is None else slop_ns
    return NearestSync(topics[0], topics[1:], slop=slop, queue_size=queue_size)


# Policies by the name users (the CLI, pipeline files, batch) give them: a new policy is one class
# above and one entry here. `slop_ns` is the policy's tolerance: approximate's largest set spread
# (None: unbounded, as in ROS), nearest's largest distance to the reference (default 50 ms).
POLICIES: Mapping[str, Callable[..., SyncPolicy[Any]]] = MappingProxyType(
    {"approximate": _approximate, "exact": _exact, "nearest": _nearest}
)


def make_policy(
    name: str,
    topics: Sequence[str],
    *,
    slop_ns: int | None = None,
    queue_size: int = DEFAULT_QUEUE_SIZE,
) -> SyncPolicy[Any]:
    """A sync policy by name over ``topics`` (the first is the reference where one matters)."""
    factory = POLICIES.get(name)
    if factory is None:
        msg = f"unknown sync policy {name!r}; choose one of: {', '.join(POLICIES)}"
        raise SyncError(msg)
    return factory(topics, slop_ns=slop_ns, queue_size=queue_size)
